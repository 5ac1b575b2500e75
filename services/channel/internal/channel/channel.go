// Package channel is the domain of the channel service: a tenant's channels and their
// subscriptions (which agents belong to a channel, with a role), who may act on them,
// the max_channels limit and the plan's history bounds, and the use cases (Service)
// that keep the multi-item invariants (channel item, subscription items, counters,
// stream subjects) without transactions.
//
// The domain speaks the contract's shapes (channelv1). Stored messages live in the
// MESSAGES stream (messagev1), reached through Messages; the domain never sees a NATS
// message.
package channel

import (
	"context"
	"encoding/json"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Channel is a channel as the repository reads it: the wire resource with its
// subscriber_count (from its counter item; total_messages and last_message_at are
// filled from the stream for replies), plus the store version read.
type Channel struct {
	channelv1.Channel
	// Version is the store version read, for optimistic concurrency.
	Version int64
}

// Stats are what the stream says about a channel now: the messages stored and when the
// last one was published (nil when none is stored).
type Stats struct {
	TotalMessages int64
	LastMessageAt *time.Time
}

// HistoryQuery selects stored messages of a channel, oldest first. AfterSeq and
// BeforeSeq are exclusive; BeforeSeq alone selects the Limit messages just below it.
type HistoryQuery struct {
	AfterSeq  uint64
	BeforeSeq uint64
	Limit     int
}

// HistoryPage is one page of messages, each the message object's JSON (messagev1
// Message) with the data exactly as published. NextAfterSeq, when not 0, continues the
// read.
type HistoryPage struct {
	Messages     []json.RawMessage
	NextAfterSeq uint64
}

// Repository keeps channels, subscriptions and counters of a tenant.
type Repository interface {
	// Get returns a channel with its subscriber count (one read).
	Get(ctx context.Context, tenantID, id string) (Channel, error)
	// GetWithRole returns a channel and the role of agentID in it ("" when the agent has
	// no subscription, or agentID is ""), in one read.
	GetWithRole(ctx context.Context, tenantID, id, agentID string) (Channel, string, error)
	// Create writes c if absent and sets c.Version.
	Create(ctx context.Context, c *Channel) error
	// Update writes c over old if the stored version is still old.Version (ErrConflict
	// otherwise) and sets c.Version.
	Update(ctx context.Context, old Channel, c *Channel) error
	// Delete deletes c if the stored version is still c.Version and reports whether this
	// call deleted it.
	Delete(ctx context.Context, c Channel) (bool, error)
	// List pages through the tenant's channels in id order, with their subscriber counts.
	List(ctx context.Context, tenantID string, limit int, cursor string) ([]Channel, string, error)
	// AddTotal adds delta to the channel counter atomically, failing with ErrConflict
	// when the result would exceed max (nil: no bound); it returns the new count.
	AddTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error)
	// Total reads the channel counter.
	Total(ctx context.Context, tenantID string) (int64, error)

	// AddSubscription writes s if no subscription of its agent to its channel exists
	// (ErrConflict otherwise).
	AddSubscription(ctx context.Context, tenantID string, s channelv1.Subscription) error
	// RemoveSubscription deletes the subscription of agentID to channelID (ErrNotFound
	// when there is none).
	RemoveSubscription(ctx context.Context, tenantID, channelID, agentID string) error
	// ListSubscriptions pages through a channel's subscriptions in agent id order.
	ListSubscriptions(ctx context.Context, tenantID, channelID string, limit int, cursor string) ([]channelv1.Subscription, string, error)
	// AddSubscribers adds delta to a channel's subscriber counter.
	AddSubscribers(ctx context.Context, tenantID, channelID string, delta int64) error
	// RemoveChannelItems deletes a channel's subscriptions (with their agents' index
	// entries) and subscriber counter (idempotent; the channel item goes first, through
	// Delete).
	RemoveChannelItems(ctx context.Context, tenantID, channelID string) error

	// PutAgentIndex writes agentID's index entry for channelID (idempotent). It is
	// written before the subscription, so every subscription is reachable from its agent.
	PutAgentIndex(ctx context.Context, tenantID, agentID, channelID string) error
	// RemoveAgentIndex deletes that entry (idempotent), after the subscription.
	RemoveAgentIndex(ctx context.Context, tenantID, agentID, channelID string) error
	// AgentChannels returns up to limit channel ids of agentID's index entries, in order;
	// an entry may have no subscription (a crash between writes).
	AgentChannels(ctx context.Context, tenantID, agentID string, limit int) ([]string, error)

	// Purge deletes every item of the tenant (idempotent).
	Purge(ctx context.Context, tenantID string) error
}

// Messages is the MESSAGES stream as the domain uses it.
type Messages interface {
	// History reads stored messages of a channel.
	History(ctx context.Context, tenantID, channelID string, q HistoryQuery) (HistoryPage, error)
	// Stats returns the stats of the tenant's channels ids (absent: nothing stored). It
	// may lag up to a few seconds and never fails: when the stream cannot answer it
	// returns what it knew.
	Stats(ctx context.Context, tenantID string, ids []string) map[string]Stats
	// PurgeChannel removes every stored message of a channel.
	PurgeChannel(ctx context.Context, tenantID, channelID string) error
	// PurgeTenant removes every stored message of every channel of a tenant.
	PurgeTenant(ctx context.Context, tenantID string) error
}

// Agents is the agent service as the channel service uses it.
type Agents interface {
	// Lookup answers whether agentID is a live agent of tenantID: nil, an ErrNotFound,
	// an ErrUnavailable, or another error to return as it is.
	Lookup(ctx context.Context, tenantID, agentID string) error
}

// Events publishes tenant events of channels (eventsv1), which also keep gateways'
// channel caches fresh. Losing one only delays caches by their TTL.
type Events interface {
	Created(ctx context.Context, c channelv1.Channel)
	Updated(ctx context.Context, c channelv1.Channel)
	Deleted(ctx context.Context, c channelv1.Channel)
	// SubscriptionAdded and SubscriptionRemoved announce an agent's record in a channel
	// (gateways forget the agent's cached role; on removal they end the agent's live
	// subscriptions to a private channel).
	SubscriptionAdded(ctx context.Context, tenantID string, sub channelv1.Subscription)
	SubscriptionRemoved(ctx context.Context, tenantID, channelID, agentID string)
}

// Actor is who asks (domain.Actor), with the channel service's access rules.
type Actor domain.Actor

// ActorFrom is the actor of a request context.
func ActorFrom(ctx context.Context) Actor { return Actor(domain.ActorFrom(ctx)) }

func (a Actor) tenant() (string, error)   { return domain.Actor(a).Tenant() }
func (a Actor) plan() (plans.Plan, error) { return domain.Actor(a).TenantPlan() }

// access says what an actor may do (SPEC §13): viewers, API keys and agents read
// channels, messages and subscriptions; members and API keys manage them.
type access int

const (
	accessRead access = iota + 1
	accessManage
)

func (a Actor) may(want access) error {
	switch a.Kind {
	case natsrpc.KindSystem:
		return nil
	case natsrpc.KindUser, natsrpc.KindAPIKey:
		need := natsrpc.RoleViewer
		if want == accessManage {
			need = natsrpc.RoleMember
		}
		if natsrpc.RoleRank(a.Role) < natsrpc.RoleRank(need) {
			if want == accessManage {
				return errorf(ErrForbidden, "managing channels needs the member role or higher")
			}
			return errorf(ErrForbidden, "reading channels needs a role in the tenant")
		}
		return nil
	case natsrpc.KindAgent:
		if want == accessManage {
			return errorf(ErrForbidden, "agents may read channels but not change them")
		}
		return nil
	}
	return errorf(ErrForbidden, "this caller may not use channel operations")
}

// resolveHistory applies the plan's bounds to a requested history: a 0 (or absent)
// field takes the plan's bound (0 when the plan has none: unlimited); more than the plan
// allows is a field error.
func resolveHistory(p plans.Plan, in *channelv1.History) (channelv1.History, error) {
	var h channelv1.History
	if in != nil {
		h = *in
	}
	var ve ValidationError
	bound := func(field string, v *int64, limit *int64, unit string) {
		switch {
		case *v < 0:
			ve.add(field, "must not be negative")
		case *v == 0:
			if limit != nil {
				*v = *limit
			}
		case limit != nil && *v > *limit:
			ve.add(field, "must be at most %d %s on the %s plan", *limit, unit, p.ID)
		}
	}
	bound("history.max_messages", &h.MaxMessages, p.Limits.MaxHistoryMessages, "messages")
	bound("history.max_age_seconds", &h.MaxAgeSeconds, p.Limits.MaxHistoryAgeSeconds, "seconds")
	if err := ve.err(); err != nil {
		return channelv1.History{}, err
	}
	return h, nil
}

// normalize gives optional collections their empty value, so the wire never shows null
// for them, and the status its only value.
func normalize(c *channelv1.Channel) {
	if c.Metadata == nil {
		c.Metadata = map[string]any{}
	}
	if c.Status == "" {
		c.Status = channelv1.StatusActive
	}
}
