// Package realtimev1 is the wire of the WebSocket endpoint GET /api/v1/ws (SPEC §4.6,
// §13 "WebSocket details"): the frames a client sends and the frames the server sends,
// the close codes, and the per-session limits. The gateway, the end-to-end tests and the
// CLI share it, so a frame is defined once.
//
// Every frame is one JSON text message with a "type". Any client frame may carry "id";
// the server's reply to it (subscribed, unsubscribed, ack, pong, error) echoes it.
package realtimev1

import (
	"encoding/json"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
)

// Path is the endpoint. Credentials: Authorization: Bearer, x-api-key, or ?token=
// (browsers cannot set headers); the tenant: x-tenant-id or ?tenant_id=.
const Path = "/api/v1/ws"

// Query parameters of the upgrade request.
const (
	QueryToken    = "token"
	QueryTenantID = "tenant_id"
)

// Client → server frame types.
const (
	TypeSubscribe         = "subscribe"          // channel_id, since_seq?
	TypeUnsubscribe       = "unsubscribe"        // channel_id
	TypePublish           = "publish"            // channel_id, data, idempotency_key?
	TypeHeartbeat         = "heartbeat"          // status? (agents: busy|idle)
	TypePing              = "ping"               // → pong
	TypeSubscribeEvents   = "subscribe_events"   // → subscribed {events: true}, then event frames
	TypeUnsubscribeEvents = "unsubscribe_events" // → unsubscribed {events: true}
)

// Server → client frame types.
const (
	TypeConnected    = "connected"
	TypeSubscribed   = "subscribed"
	TypeUnsubscribed = "unsubscribed"
	TypeMessage      = "message"
	TypeAck          = "ack"
	TypeError        = "error"
	TypePong         = "pong"
	TypeEvent        = "event"
)

// Heartbeat statuses an agent may report (presencev1 statuses).
const (
	StatusBusy = "busy"
	StatusIdle = "idle"
)

// Reasons of an unsubscribed frame the client did not ask for.
const (
	ReasonChannelDeleted = "channel_deleted"
	// ReasonAccessRevoked: an agent session lost the right to read the channel (its
	// subscription record was removed, or the channel became private and it has none).
	// Users and API keys never get it.
	ReasonAccessRevoked = "access_revoked"
	// ReasonReplayFailed: the stored messages of a since_seq subscribe could not be read;
	// the subscription was dropped so the client never sees a silent gap. Subscribe again.
	ReasonReplayFailed = "replay_failed"
)

// Error codes of error frames beyond the HTTP ones of SPEC §13 (not_found, forbidden,
// validation_failed, invalid_json, payload_too_large, rate_limited,
// message_quota_exceeded, service_unavailable, upstream_timeout).
const (
	// CodeHistoryTruncated: part of the range a since_seq subscribe asked for has expired
	// or was trimmed; first_seq is the first stored message of the channel after since_seq
	// (0 when none is stored yet). It comes before the replayed messages.
	CodeHistoryTruncated = "history_truncated"
	// CodeTooManySubscriptions: the session already has MaxSubscriptions channels.
	CodeTooManySubscriptions = "too_many_subscriptions"
)

// Close codes (RFC 6455 and the application range) and the reasons sent with them.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001 // server shutdown
	CloseMessageTooBig  = 1009 // a frame over MaxFrameBytes
	CloseIdleTimeout    = 4000 // nothing (not even a pong) for IdleTimeout
	CloseTokenExpired   = 4001 // the token reached its exp
	CloseRevoked        = 4003 // key revoked, agent/tenant deleted, member removed, tenant suspended
	CloseSlowConsumer   = 4008 // the send queue overflowed
	CloseRateLimited    = 4029 // over MaxFramesPerSecond for RateLimitStrikes seconds in a row
	ReasonIdleTimeout   = "idle_timeout"
	ReasonTokenExpired  = "token_expired"
	ReasonSlowConsumer  = "slow_consumer"
	ReasonRateLimited   = "rate_limited"
	ReasonShuttingDown  = "shutting_down"
	ReasonTokenRevoked  = "token_revoked"
	ReasonTenantDeleted = "tenant_deleted"
	ReasonAgentDeleted  = "agent_deleted"
)

// Limits of one session (SPEC §13).
const (
	MaxFrameBytes      = 128 << 10
	MaxSubscriptions   = 100
	MaxFramesPerSecond = 100
	// RateLimitStrikes: this many consecutive seconds over the frame rate close 4029.
	RateLimitStrikes = 3
	MaxQueuedFrames  = 1024
	MaxQueuedBytes   = 4 << 20
	IdleTimeout      = 90 * time.Second
	// PingEvery is how often the server pings; a WebSocket client library answers with a
	// pong on its own, which keeps the session (and an agent's presence) alive.
	PingEvery = 30 * time.Second
	// MaxIDBytes bounds the id a client frame may carry.
	MaxIDBytes = 128
)

// ClientFrame is any frame a client sends; which fields count depends on Type. Unknown
// fields are ignored.
type ClientFrame struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	// SinceSeq (subscribe): replay the stored messages with seq > SinceSeq, then go live,
	// with no gap and no duplicate. Absent: live messages only.
	SinceSeq *uint64 `json:"since_seq,omitempty"`
	// Data (publish): the message, a JSON object, stored and delivered byte for byte.
	Data json.RawMessage `json:"data,omitempty"`
	// IdempotencyKey (publish): the same rules as the REST Idempotency-Key header.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Status (heartbeat): busy or idle; absent keeps the current status.
	Status string `json:"status,omitempty"`
}

// Subscribe is a subscribe frame without replay.
func Subscribe(id, channelID string) ClientFrame {
	return ClientFrame{Type: TypeSubscribe, ID: id, ChannelID: channelID}
}

// SubscribeSince is a subscribe frame that first replays the messages after seq.
func SubscribeSince(id, channelID string, seq uint64) ClientFrame {
	return ClientFrame{Type: TypeSubscribe, ID: id, ChannelID: channelID, SinceSeq: &seq}
}

// Unsubscribe is an unsubscribe frame.
func Unsubscribe(id, channelID string) ClientFrame {
	return ClientFrame{Type: TypeUnsubscribe, ID: id, ChannelID: channelID}
}

// Publish is a publish frame; data must be a JSON object.
func Publish(id, channelID string, data json.RawMessage) ClientFrame {
	return ClientFrame{Type: TypePublish, ID: id, ChannelID: channelID, Data: data}
}

// Heartbeat is an agent's heartbeat; status "" keeps the current one.
func Heartbeat(status string) ClientFrame { return ClientFrame{Type: TypeHeartbeat, Status: status} }

// Ping is a ping frame (answered with pong).
func Ping(id string) ClientFrame { return ClientFrame{Type: TypePing, ID: id} }

// SubscribeEvents asks for the tenant's events (event frames).
func SubscribeEvents(id string) ClientFrame { return ClientFrame{Type: TypeSubscribeEvents, ID: id} }

// Connected is the first frame of every session.
type Connected struct {
	Type      string `json:"type" enum:"connected"`
	SessionID string `json:"session_id"`
	TenantID  string `json:"tenant_id"`
	AgentID   string `json:"agent_id,omitempty"`
}

// Subscribed confirms a subscribe (ChannelID) or a subscribe_events (Events).
type Subscribed struct {
	Type      string `json:"type" enum:"subscribed"`
	ID        string `json:"id,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	Events    bool   `json:"events,omitempty"`
}

// Unsubscribed confirms an unsubscribe, or tells that the server ended a subscription
// (Reason: channel_deleted, access_revoked, replay_failed).
type Unsubscribed struct {
	Type      string `json:"type" enum:"unsubscribed"`
	ID        string `json:"id,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	Events    bool   `json:"events,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// Message is a channel message: the message object's fields beside "type".
type Message struct {
	Type string `json:"type" enum:"message"`
	messagev1.Message
}

// Ack answers a publish frame. Replayed is true when an idempotency key repeated an
// earlier publish (the first publish's result; nothing new was stored).
type Ack struct {
	Type      string    `json:"type" enum:"ack"`
	ID        string    `json:"id,omitempty"`
	MessageID string    `json:"message_id"`
	Seq       uint64    `json:"seq"`
	Timestamp time.Time `json:"timestamp"`
	Replayed  bool      `json:"replayed,omitempty"`
}

// Error reports a frame that failed (the connection stays open).
type Error struct {
	Type      string `json:"type" enum:"error"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	ID        string `json:"id,omitempty"`
	ChannelID string `json:"channel_id,omitempty"`
	// FirstSeq (history_truncated): the first stored message after since_seq.
	FirstSeq *uint64 `json:"first_seq,omitempty"`
}

// Pong answers a ping frame.
type Pong struct {
	Type string `json:"type" enum:"pong"`
	ID   string `json:"id,omitempty"`
}

// Event carries one tenant event (eventsv1.Event: agents.status, channels.deleted, …).
type Event struct {
	Type  string         `json:"type" enum:"event"`
	Event eventsv1.Event `json:"event"`
}

// ServerFrame decodes any server frame: switch on Type and read the fields that frame
// has. Message returns the message object of a message frame.
type ServerFrame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	// connected
	SessionID string `json:"session_id,omitempty"`
	TenantID  string `json:"tenant_id,omitempty"`
	AgentID   string `json:"agent_id,omitempty"`

	// subscribed, unsubscribed, message, error
	ChannelID string `json:"channel_id,omitempty"`
	Events    bool   `json:"events,omitempty"`
	Reason    string `json:"reason,omitempty"`

	// message, ack
	MessageID string           `json:"message_id,omitempty"`
	Seq       uint64           `json:"seq,omitempty"`
	Timestamp time.Time        `json:"timestamp,omitzero"`
	Sender    messagev1.Sender `json:"sender,omitzero"`
	Data      json.RawMessage  `json:"data,omitempty"`
	Replayed  bool             `json:"replayed,omitempty"`

	// error
	Code     string  `json:"code,omitempty"`
	Detail   string  `json:"detail,omitempty"`
	FirstSeq *uint64 `json:"first_seq,omitempty"`

	// event
	Event *eventsv1.Event `json:"event,omitempty"`
}

// Message is the message object of a message frame.
func (f *ServerFrame) Message() messagev1.Message {
	return messagev1.Message{
		MessageID: f.MessageID, Seq: f.Seq, ChannelID: f.ChannelID, TenantID: f.TenantID,
		Timestamp: f.Timestamp, Sender: f.Sender, Data: f.Data,
	}
}
