// Package eventsv1 is the wire of tenant-visible events: lifecycle and status changes a
// tenant's dashboard may watch (SPEC §5, §4.6 subscribe_events). They travel on core NATS
// under tenant.<tenant>.events.<entity>.<action>, never on a message subject. The gateway
// also keeps its channel cache fresh from the channel events.
package eventsv1

import (
	"encoding/json"
	"time"
)

// Entities and actions.
const (
	EntityAgents   = "agents"
	EntityChannels = "channels"
	// EntitySubscriptions: an agent's subscription record in a channel was added or
	// removed (gateways re-check the agent's live subscriptions on removal).
	EntitySubscriptions = "subscriptions"

	ActionCreated = "created"
	ActionUpdated = "updated"
	ActionDeleted = "deleted"
	ActionStatus  = "status"  // agents only
	ActionAdded   = "added"   // subscriptions only
	ActionRemoved = "removed" // subscriptions only
)

// Subject is where an event of entity/action in tenant is published. tenantID must have
// been checked to be a UUID.
func Subject(tenantID, entity, action string) string {
	return "tenant." + tenantID + ".events." + entity + "." + action
}

// TenantWildcard matches every event of a tenant (a dashboard's subscribe_events).
func TenantWildcard(tenantID string) string { return "tenant." + tenantID + ".events.>" }

// AllChannelEvents matches the channel events of every tenant (the gateway's cache).
const AllChannelEvents = "tenant.*.events.channels.*"

// AllSubscriptionEvents matches the subscription events of every tenant (the gateway's
// channel cache and its live sessions).
const AllSubscriptionEvents = "tenant.*.events.subscriptions.*"

// Event is the envelope of every tenant event. Type is "<entity>.<action>".
type Event struct {
	Type      string          `json:"type" doc:"<entity>.<action>, e.g. agents.status, channels.deleted"`
	TenantID  string          `json:"tenant_id"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// AgentStatus is the data of agents.status.
type AgentStatus struct {
	AgentID  string `json:"agent_id"`
	Status   string `json:"status"`
	Previous string `json:"previous,omitempty"`
}

// AgentRef is the data of agents.created/updated/deleted (the agent's id and name; read
// the agent for the rest).
type AgentRef struct {
	AgentID string `json:"agent_id"`
	Name    string `json:"name,omitempty"`
}

// ChannelRef is the data of channels.created/updated/deleted, with what the gateway's
// channel cache needs (type and history age) so it can update without a lookup.
type ChannelRef struct {
	ChannelID     string `json:"channel_id"`
	Name          string `json:"name,omitempty"`
	Type          string `json:"type,omitempty"`
	MaxAgeSeconds int64  `json:"max_age_seconds,omitempty"`
}

// SubscriptionRef is the data of subscriptions.added/removed: which agent gained or lost
// its record in which channel (Role: the record's role).
type SubscriptionRef struct {
	ChannelID string `json:"channel_id"`
	AgentID   string `json:"agent_id"`
	Role      string `json:"role,omitempty"`
}
