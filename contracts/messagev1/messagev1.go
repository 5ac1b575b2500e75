// Package messagev1 is the wire of channel messages: subjects, the JetStream stream that
// stores them, the headers a stored message carries, and the message envelope every
// path delivers (REST history, WebSocket, NATS). SPEC §4.5, §5.
//
// A publish is one JetStream publish by the gateway to Subject(tenant, channel); the
// stream stores it and republishes it, with its sequence, to LiveSubject(tenant,
// channel), which is what gateways fan out to WebSocket sessions. Data is stored and
// delivered byte for byte as published.
package messagev1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream is the JetStream stream of every channel message of every tenant.
const Stream = "MESSAGES"

// Subjects of the stream: tenant.<tenant>.channel.<channel> (exactly four tokens).
const StreamSubjects = "tenant.*.channel.*"

// Subject is where a message of channel in tenant is published (and stored). Both ids
// must have been checked against their formats first (UUID, ULID).
func Subject(tenantID, channelID string) string {
	return "tenant." + tenantID + ".channel." + channelID
}

// LiveSubject is where the stream republishes a stored message of the channel, with
// its sequence: tenant.<tenant>.channel.<channel>.live. It stays inside the tenant's
// namespace (one permission prefix per tenant) without overlapping the stream.
func LiveSubject(tenantID, channelID string) string {
	return Subject(tenantID, channelID) + ".live"
}

// LiveWildcard matches the live subjects of every channel of a tenant.
func LiveWildcard(tenantID string) string {
	return "tenant." + tenantID + ".channel.*.live"
}

// ParseSubject returns the tenant and channel of a stored or live subject.
func ParseSubject(subject string) (tenantID, channelID string, ok bool) {
	p := strings.Split(subject, ".")
	if (len(p) != 4 && !(len(p) == 5 && p[4] == "live")) || p[0] != "tenant" || p[2] != "channel" {
		return "", "", false
	}
	return p[1], p[3], true
}

// Headers of a stored message, set by the gateway (never copied from a client).
const (
	HeaderMessageID  = "Artcafe-Message-Id"  // ULID, upper-case
	HeaderSenderType = "Artcafe-Sender-Type" // user | agent | api_key
	HeaderSenderID   = "Artcafe-Sender-Id"
	HeaderTimestamp  = "Artcafe-Timestamp" // RFC 3339 UTC, milliseconds, set at publish
)

// Sender types.
const (
	SenderUser   = "user"
	SenderAgent  = "agent"
	SenderAPIKey = "api_key"
)

// Limits of a message.
const (
	// MaxIdempotencyKey bounds the Idempotency-Key header (printable ASCII).
	MaxIdempotencyKey = 255
	// DedupWindow is how long the same idempotency key returns the first result.
	DedupWindow = 2 * time.Minute
	// MaxStoredBytes bounds a stored message whatever the plan (data plus headers).
	MaxStoredBytes = 256 << 10
)

// Sender says who published a message.
type Sender struct {
	Type string `json:"type" enum:"user,agent,api_key"`
	ID   string `json:"id"`
}

// Message is the message object, the same on every path.
type Message struct {
	MessageID string          `json:"message_id"`
	Seq       uint64          `json:"seq" doc:"the stream sequence: increases within a channel, not contiguous"`
	ChannelID string          `json:"channel_id"`
	TenantID  string          `json:"tenant_id" format:"uuid"`
	Timestamp time.Time       `json:"timestamp"`
	Sender    Sender          `json:"sender"`
	Data      json.RawMessage `json:"data" doc:"the published JSON object, byte for byte"`
}

// Published is the reply to a publish.
type Published struct {
	MessageID string    `json:"message_id"`
	Seq       uint64    `json:"seq"`
	Timestamp time.Time `json:"timestamp"`
}

// DedupID is the Nats-Msg-Id of a publish carrying an idempotency key: the scope is
// (tenant, channel, principal, key), hashed so no raw key reaches NATS.
func DedupID(tenantID, channelID, senderType, senderID, key string) string {
	h := sha256.Sum256([]byte(tenantID + "\x00" + channelID + "\x00" + senderType + "\x00" + senderID + "\x00" + key))
	return hex.EncodeToString(h[:])
}

// ValidIdempotencyKey reports 1–255 printable ASCII characters.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// StreamConfig is the one definition of the message stream; the channel service owns
// it (creates and updates it) and every other party only reads from or publishes to it.
//
// History bounds: every message carries a per-message TTL (Nats-TTL) equal to its
// channel's history.max_age_seconds, so age is bounded per channel; the channel service
// trims channels above history.max_messages (purge with keep). Clients can neither
// delete nor roll up messages.
func StreamConfig(replicas int) jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.StreamConfig{
		Name:        Stream,
		Description: "channel messages of every tenant (history), republished live with their sequence",
		Subjects:    []string{StreamSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Discard:     jetstream.DiscardOld,
		MaxMsgSize:  MaxStoredBytes,
		Duplicates:  DedupWindow,
		AllowMsgTTL: true,
		AllowDirect: true,
		DenyDelete:  true,
		AllowRollup: false,
		RePublish: &jetstream.RePublish{
			Source:      StreamSubjects,
			Destination: "tenant.{{wildcard(1)}}.channel.{{wildcard(2)}}.live",
		},
	}
}
