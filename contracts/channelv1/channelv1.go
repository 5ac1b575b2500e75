// Package channelv1 is the contract of the channel service: channels, their
// subscriptions (which agents belong to them) and history reads. Tenant-scoped
// operations take the tenant from the caller's natsrpc.Identity. Publishing is not here:
// the gateway publishes to JetStream directly (messagev1).
package channelv1

import (
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Service is the micro service name; Version is the contract version in its metadata.
const (
	Service = "channel"
	Version = "1.0.0"
	Group   = "svc.channel.v1"
)

// Endpoints, each served at Group + "." + name.
const (
	OpCreate              = "create"               // CreateRequest → ChannelResponse (201)
	OpList                = "list"                 // ListRequest → ListResponse
	OpGet                 = "get"                  // GetRequest → ChannelResponse
	OpUpdate              = "update"               // UpdateRequest → ChannelResponse
	OpDelete              = "delete"               // DeleteRequest → Empty (history purged, subscribers told)
	OpSubscriptionsList   = "subscriptions_list"   // SubscriptionsListRequest → SubscriptionsListResponse
	OpSubscriptionsAdd    = "subscriptions_add"    // SubscriptionsAddRequest → SubscriptionResponse (201)
	OpSubscriptionsRemove = "subscriptions_remove" // SubscriptionsRemoveRequest → Empty
	OpHistory             = "history"              // HistoryRequest → HistoryResponse

	// OpLookup is for the gateway's channel cache (publish and subscribe checks):
	// LookupRequest → Lookup; 404 for an unknown or deleted channel.
	OpLookup = "lookup"

	// OpAgentRemoved is for the agent service's delete flow: AgentRemovedRequest → Empty.
	// It removes every subscription record of a deleted agent of the caller's tenant
	// (counts drop, subscriptions.removed is sent for each); idempotent.
	OpAgentRemoved = "agent_removed"
)

// Subject returns the full subject of op.
func Subject(op string) string { return Group + "." + op }

// Channel types and subscription roles.
const (
	TypePublic  = "public"
	TypePrivate = "private"

	RoleSubscriber = "subscriber"
	RolePublisher  = "publisher"
	RoleAdmin      = "admin"

	StatusActive = "active"
)

// History bounds a channel's stored messages. On create, absent values take the plan's
// bound; asking for more than the plan allows is 422. 0 means "the plan's bound".
type History struct {
	MaxAgeSeconds int64 `json:"max_age_seconds" minimum:"0"`
	MaxMessages   int64 `json:"max_messages" minimum:"0"`
}

// Channel is the channel resource (SPEC §4.5).
type Channel struct {
	ID              string         `json:"id" doc:"ULID, upper-case"`
	ChannelID       string         `json:"channel_id"`
	TenantID        string         `json:"tenant_id" format:"uuid"`
	Name            string         `json:"name"`
	Description     string         `json:"description"`
	Type            string         `json:"type" enum:"public,private"`
	Status          string         `json:"status" enum:"active"`
	Metadata        map[string]any `json:"metadata"`
	History         History        `json:"history"`
	SubscriberCount int64          `json:"subscriber_count"`
	TotalMessages   int64          `json:"total_messages" doc:"messages stored in history now; may lag up to 5 s"`
	LastMessageAt   *time.Time     `json:"last_message_at" doc:"may lag up to 5 s"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
}

// Subscription says an agent belongs to a channel, with a role.
type Subscription struct {
	ID             string    `json:"id"`
	SubscriptionID string    `json:"subscription_id"`
	ChannelID      string    `json:"channel_id"`
	AgentID        string    `json:"agent_id"`
	Role           string    `json:"role" enum:"subscriber,publisher,admin"`
	CreatedAt      time.Time `json:"created_at"`
}

// Empty is the reply of operations that return nothing.
type Empty struct{}

// NormalizeID upper-cases a channel (or agent) id and reports whether it is a ULID.
func NormalizeID(id string) (string, bool) {
	id = strings.ToUpper(id)
	return id, validation.IsULID(id)
}

// CreateBody is the body of POST /channels.
type CreateBody struct {
	Name        string         `json:"name" minLength:"1" maxLength:"128"`
	Description string         `json:"description,omitempty" maxLength:"1024"`
	Type        string         `json:"type,omitempty" enum:"public,private" doc:"default public"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	History     *History       `json:"history,omitempty" doc:"defaults to the plan's bounds; more than the plan allows is 422"`
}

func (b *CreateBody) Validate() error {
	var e validation.Errors
	e.Name("name", b.Name)
	e.MaxLen("description", b.Description, validation.MaxDescription)
	e.OneOf("type", b.Type, TypePublic, TypePrivate)
	e.Metadata("metadata", b.Metadata)
	if b.History != nil {
		history(&e, *b.History)
	}
	return e.Err()
}

// CreateRequest creates a channel in the caller's tenant.
type CreateRequest struct {
	Channel CreateBody `json:"channel"`
}

func (r *CreateRequest) Validate() error { return r.Channel.Validate() }

// ChannelResponse carries one channel.
type ChannelResponse struct {
	Channel Channel `json:"channel"`
}

// ListRequest pages through the tenant's channels, ordered by id.
type ListRequest struct {
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

func (r *ListRequest) Validate() error {
	var e validation.Errors
	e.Limit("limit", r.Limit)
	return e.Err()
}

// ListResponse is one page; Cursor is empty on the last page.
type ListResponse struct {
	Channels []Channel `json:"channels"`
	Cursor   string    `json:"cursor,omitempty"`
}

// GetRequest names a channel of the caller's tenant.
type GetRequest struct {
	ChannelID string `json:"channel_id"`
}

func (r *GetRequest) Validate() error { return channelID(r.ChannelID) }

// UpdateBody is the body of PUT /channels/{id} (partial; null clears optional fields).
type UpdateBody struct {
	Name        patch.Field[string]         `json:"name,omitzero" minLength:"1" maxLength:"128"`
	Description patch.Field[string]         `json:"description,omitzero" maxLength:"1024" nullable:"true"`
	Type        patch.Field[string]         `json:"type,omitzero" enum:"public,private"`
	Metadata    patch.Field[map[string]any] `json:"metadata,omitzero" nullable:"true"`
	History     patch.Field[History]        `json:"history,omitzero" nullable:"true" doc:"null resets to the plan's bounds"`
}

func (b *UpdateBody) Validate() error {
	var e validation.Errors
	if b.Name.Set {
		if b.Name.Null {
			e.Add("name", "cannot be null")
		} else {
			e.Name("name", b.Name.Value)
		}
	}
	if b.Type.Set {
		if b.Type.Null || b.Type.Value == "" {
			e.Add("type", "cannot be null")
		} else {
			e.OneOf("type", b.Type.Value, TypePublic, TypePrivate)
		}
	}
	e.MaxLen("description", b.Description.Value, validation.MaxDescription)
	e.Metadata("metadata", b.Metadata.Value)
	if b.History.HasValue() {
		history(&e, b.History.Value)
	}
	return e.Err()
}

// UpdateRequest applies Changes to a channel.
type UpdateRequest struct {
	ChannelID string     `json:"channel_id"`
	Changes   UpdateBody `json:"changes"`
}

func (r *UpdateRequest) Validate() error {
	if err := channelID(r.ChannelID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// DeleteRequest deletes a channel, purges its history and tells its subscribers.
type DeleteRequest struct {
	ChannelID string `json:"channel_id"`
}

func (r *DeleteRequest) Validate() error { return channelID(r.ChannelID) }

// SubscriptionsListRequest pages through a channel's subscriptions (by agent id).
type SubscriptionsListRequest struct {
	ChannelID string `json:"channel_id"`
	Limit     int    `json:"limit,omitempty"`
	Cursor    string `json:"cursor,omitempty"`
}

func (r *SubscriptionsListRequest) Validate() error {
	if err := channelID(r.ChannelID); err != nil {
		return err
	}
	var e validation.Errors
	e.Limit("limit", r.Limit)
	return e.Err()
}

// SubscriptionsListResponse is one page of subscriptions.
type SubscriptionsListResponse struct {
	Subscriptions []Subscription `json:"subscriptions"`
	Cursor        string         `json:"cursor,omitempty"`
}

// SubscriptionAddBody is the body of POST /channels/{id}/subscriptions.
type SubscriptionAddBody struct {
	AgentID string `json:"agent_id"`
	Role    string `json:"role,omitempty" enum:"subscriber,publisher,admin" doc:"default subscriber"`
}

func (b *SubscriptionAddBody) Validate() error {
	var e validation.Errors
	if e.Required("agent_id", b.AgentID) {
		if _, ok := NormalizeID(b.AgentID); !ok {
			e.Add("agent_id", "is not an agent of this tenant")
		}
	}
	e.OneOf("role", b.Role, RoleSubscriber, RolePublisher, RoleAdmin)
	return e.Err()
}

// SubscriptionsAddRequest adds an agent to a channel (409 for a duplicate pair; 422 on
// agent_id when the agent is not in the tenant).
type SubscriptionsAddRequest struct {
	ChannelID    string              `json:"channel_id"`
	Subscription SubscriptionAddBody `json:"subscription"`
}

func (r *SubscriptionsAddRequest) Validate() error {
	if err := channelID(r.ChannelID); err != nil {
		return err
	}
	return r.Subscription.Validate()
}

// SubscriptionResponse carries one subscription.
type SubscriptionResponse struct {
	Subscription Subscription `json:"subscription"`
}

// SubscriptionsRemoveRequest removes an agent from a channel.
type SubscriptionsRemoveRequest struct {
	ChannelID string `json:"channel_id"`
	AgentID   string `json:"agent_id"`
}

func (r *SubscriptionsRemoveRequest) Validate() error {
	if err := channelID(r.ChannelID); err != nil {
		return err
	}
	if _, ok := NormalizeID(r.AgentID); !ok {
		return natsrpc.NotFound("subscription not found")
	}
	return nil
}

// HistoryRequest reads stored messages, oldest first. after_seq and before_seq are
// exclusive; before_seq alone returns the limit messages just below it.
type HistoryRequest struct {
	ChannelID string `json:"channel_id"`
	AfterSeq  uint64 `json:"after_seq,omitempty"`
	BeforeSeq uint64 `json:"before_seq,omitempty"`
	Limit     int    `json:"limit,omitempty"`
}

func (r *HistoryRequest) Validate() error {
	if err := channelID(r.ChannelID); err != nil {
		return err
	}
	var e validation.Errors
	e.Limit("limit", r.Limit)
	if r.BeforeSeq != 0 && r.AfterSeq != 0 && r.BeforeSeq <= r.AfterSeq+1 {
		e.Add("before_seq", "must be more than after_seq + 1")
	}
	return e.Err()
}

// HistoryResponse is one page of messages, oldest first. NextAfterSeq, when not 0,
// continues the read (the gateway signs it into next_token).
type HistoryResponse struct {
	Messages     []messagev1.Message `json:"messages"`
	NextAfterSeq uint64              `json:"next_after_seq,omitempty"`
}

// LookupRequest asks what the gateway needs to publish to or subscribe to a channel,
// and the role of an agent in it when AgentID is given.
type LookupRequest struct {
	TenantID  string `json:"tenant_id"`
	ChannelID string `json:"channel_id"`
	AgentID   string `json:"agent_id,omitempty"`
}

func (r *LookupRequest) Validate() error {
	if !validation.IsUUID(r.TenantID) {
		return natsrpc.NotFound("channel not found")
	}
	return channelID(r.ChannelID)
}

// Lookup is a live channel's publishing facts. AgentRole is "" when the agent has no
// subscription record.
type Lookup struct {
	ChannelID     string `json:"channel_id"`
	Type          string `json:"type"`
	MaxAgeSeconds int64  `json:"max_age_seconds" doc:"0 = unlimited"`
	AgentRole     string `json:"agent_role,omitempty"`
}

// AgentRemovedRequest names an agent (of the caller's tenant) being deleted.
type AgentRemovedRequest struct {
	AgentID string `json:"agent_id"`
}

func (r *AgentRemovedRequest) Validate() error {
	if _, ok := NormalizeID(r.AgentID); !ok {
		return natsrpc.NotFound("agent not found")
	}
	return nil
}

func channelID(id string) error {
	if !validation.IsULID(id) {
		return natsrpc.NotFound("channel not found")
	}
	return nil
}

func history(e *validation.Errors, h History) {
	if h.MaxAgeSeconds < 0 {
		e.Add("history.max_age_seconds", "must not be negative")
	}
	if h.MaxMessages < 0 {
		e.Add("history.max_messages", "must not be negative")
	}
}
