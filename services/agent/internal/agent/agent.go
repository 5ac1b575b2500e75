// Package agent is the domain of the agent service: a tenant's agents, who may act on
// them, the max_agents limit, the per-status counts, and the use cases (Service) that
// keep the multi-item invariants (agent item, filter indexes, counters) without
// transactions.
//
// The domain speaks the contract's shapes (agentv1): an agent is stored in its wire
// form, so a read relays the stored JSON instead of decoding and re-encoding it.
package agent

import (
	"context"
	"encoding/json"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Agent is an agent as stored: the wire resource plus bookkeeping.
type Agent struct {
	agentv1.Agent
	// DeletingSince is set when a deletion started: the agent reads as absent from then
	// on, while its keys, indexes and item go.
	DeletingSince *time.Time
	// Presence is what the presence watcher last wrote (nil: never). An operator's
	// status override leaves it alone, so the next presence change is recognised as a
	// change and wins over the override.
	Presence *Presence
	// Version is the store version read, for optimistic concurrency.
	Version int64
}

// Deleting reports whether a deletion of the agent has started.
func (a *Agent) Deleting() bool { return a.DeletingSince != nil }

// Stored is an agent as read for a reply: its wire JSON exactly as stored.
type Stored struct {
	ID       string
	JSON     json.RawMessage
	Deleting bool
}

// filterView is the part of an agent's JSON that list filters look at.
type filterView struct {
	Status       string           `json:"status"`
	Type         string           `json:"type"`
	Capabilities []capabilityName `json:"capabilities"`
}

type capabilityName struct {
	Name string `json:"name"`
}

// IndexKind names one of the filter indexes.
type IndexKind int

const (
	ByStatus IndexKind = iota + 1
	ByType
	ByCapability
)

// Index selects the entries of one index with one value (a status, a type, or a
// capability name).
type Index struct {
	Kind  IndexKind
	Value string
}

// Counts are the tenant's counters: all agents (the max_agents counter) and agents per
// status. They can drift after a crash between writes; Repair recounts.
type Counts struct {
	Total    int64
	ByStatus map[string]int64
}

// Repository keeps agents, their index items and the counters of a tenant.
type Repository interface {
	// GetStored returns an agent's stored JSON (one read, not decoded).
	GetStored(ctx context.Context, tenantID, id string) (Stored, error)
	// Get returns an agent, deleting or not.
	Get(ctx context.Context, tenantID, id string) (Agent, error)
	// Create writes a's index items, then a's item if absent (the commit), and sets
	// a.Version. A failed commit removes the index items this call created.
	Create(ctx context.Context, a *Agent) error
	// Update writes a over old (read at old.Version): index items a needs and old did not
	// first, then the item if its version is still old.Version (ErrConflict otherwise),
	// then old's index items a no longer needs, unless they were rewritten meanwhile.
	Update(ctx context.Context, old Agent, a *Agent) error
	// Remove deletes a's index items, then its item if still at a.Version, and reports
	// whether this call deleted the item.
	Remove(ctx context.Context, a Agent) (bool, error)
	// ListStored pages through the tenant's agent items in id order.
	ListStored(ctx context.Context, tenantID string, limit int, cursor string) ([]Stored, string, error)
	// ListIndex pages through the agent ids of one index in id order; entries may be
	// stale (the agent gone or changed).
	ListIndex(ctx context.Context, tenantID string, idx Index, limit int, cursor string) ([]string, string, error)
	// GetManyStored returns the agents among ids that exist (at most 100 ids), keyed by id.
	GetManyStored(ctx context.Context, tenantID string, ids []string) (map[string]Stored, error)
	// AddTotal adds delta to the agent counter atomically, failing with ErrConflict when
	// the result would exceed max (nil: no bound); it returns the new count.
	AddTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error)
	// AddStatus adds delta to the counter of status atomically. Counters have no lower
	// bound (a -1 may land before a concurrent +1); readers clamp at 0.
	AddStatus(ctx context.Context, tenantID, status string, delta int64) error
	// Counts reads every counter of the tenant in one read.
	Counts(ctx context.Context, tenantID string) (Counts, error)
	// Purge deletes every item of the tenant (idempotent).
	Purge(ctx context.Context, tenantID string) error
}

// Keys is the sshkey service as the agent service uses it. The context carries the
// caller's identity; errors come back as the sshkey service answered them
// (*natsrpc.Error), to be returned to the caller as they are.
type Keys interface {
	// CheckPublicKey answers whether publicKey could be registered in the caller's tenant.
	CheckPublicKey(ctx context.Context, publicKey string) error
	// CreateForAgent registers publicKey as an agent key bound to agentID.
	CreateForAgent(ctx context.Context, agentID, name, publicKey string) (*sshkeyv1.Key, error)
	// DeleteForAgent deletes every key bound to agentID.
	DeleteForAgent(ctx context.Context, agentID string) error
}

// Channels is the channel service as the agent service uses it. The context carries the
// caller's identity (the tenant); errors come back as the channel service answered them.
type Channels interface {
	// RemoveAgent removes every subscription record of agentID (idempotent).
	RemoveAgent(ctx context.Context, agentID string) error
}

// Events publishes what other parts of the platform must learn at once. Each is sent
// after the change committed, by the one request (or presence writer) that made it;
// losing one only delays a cache or leaves a dashboard stale until its next read.
type Events interface {
	// AgentDeleted is a cache hint: forget this agent.
	AgentDeleted(ctx context.Context, tenantID, agentID string)
	// Changed is the tenant event agents.<action> (created, updated, deleted).
	Changed(ctx context.Context, tenantID, action string, ref eventsv1.AgentRef)
	// StatusChanged is the tenant event agents.status.
	StatusChanged(ctx context.Context, tenantID string, st eventsv1.AgentStatus)
}

// Actor is who asks (domain.Actor), with the agent service's access rules.
type Actor domain.Actor

// ActorFrom is the actor of a request context.
func ActorFrom(ctx context.Context) Actor { return Actor(domain.ActorFrom(ctx)) }

func (a Actor) tenant() (string, error)   { return domain.Actor(a).Tenant() }
func (a Actor) plan() (plans.Plan, error) { return domain.Actor(a).TenantPlan() }

// access says what an actor may do (SPEC §13): viewers read, members and API keys
// manage, an agent sees and edits only its own record and learns nothing of others.
type access int

const (
	accessRead access = iota + 1
	accessManage
)

// may checks whether the actor may act on the agent id ("" for the tenant's
// collection: lists, summary, create).
func (a Actor) may(want access, id string) error {
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
				return errorf(ErrForbidden, "managing agents needs the member role or higher")
			}
			return errorf(ErrForbidden, "reading agents needs a role in the tenant")
		}
		return nil
	case natsrpc.KindAgent:
		if id == "" {
			return errorf(ErrForbidden, "agents may only read and edit their own record")
		}
		if id != a.ID {
			return notFound()
		}
		if want == accessManage {
			return errorf(ErrForbidden, "an agent may only change its own description, capabilities and metadata")
		}
		return nil
	}
	return errorf(ErrForbidden, "this caller may not use agent operations")
}
