// Package presencev1 is the wire of agent presence: which agents have a live WebSocket
// session, kept in a JetStream key-value bucket with per-key TTL so that it is right
// with any number of gateways and agent-service replicas (SPEC §4.3, §13 WebSocket).
//
// Each agent session owns one key, <tenant>.<agent>.<session>, created when the session
// opens (with TTL) and refreshed while frames arrive; its value is the status the
// session reports. A key that is not refreshed expires; the bucket then tells watchers
// with a purge marker. The agent service watches the bucket and derives each agent's
// status: no key → offline; else busy if any session says busy, idle if all say idle,
// otherwise online. Only changes are written to the agent table.
package presencev1

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket of live agent sessions.
const Bucket = "PRESENCE"

// TTL is how long a session key lives without a refresh (SPEC: offline within 90 s of
// silence). Gateways refresh well before it (RefreshEvery).
const (
	TTL          = 90 * time.Second
	RefreshEvery = 30 * time.Second
)

// Statuses a session reports.
const (
	StatusOnline = "online"
	StatusBusy   = "busy"
	StatusIdle   = "idle"
)

// Key is the key of one session. The ids must have been checked (UUID, ULIDs).
func Key(tenantID, agentID, sessionID string) string {
	return tenantID + "." + agentID + "." + sessionID
}

// AgentPrefix matches every session key of an agent (for watching or listing).
func AgentPrefix(tenantID, agentID string) string { return tenantID + "." + agentID + ".*" }

// ParseKey splits a session key.
func ParseKey(key string) (tenantID, agentID, sessionID string, ok bool) {
	p := strings.Split(key, ".")
	if len(p) != 3 {
		return "", "", "", false
	}
	return p[0], p[1], p[2], true
}

// Session is the value of a session key.
type Session struct {
	Status  string    `json:"status" enum:"online,busy,idle"`
	Gateway string    `json:"gateway"`
	Since   time.Time `json:"since"`
}

// BucketConfig is the one definition of the bucket (per-key TTL needs LimitMarkerTTL).
func BucketConfig(replicas int) jetstream.KeyValueConfig {
	if replicas < 1 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "live agent sessions (key per session, TTL-refreshed by gateways)",
		History:        1,
		TTL:            0,
		Storage:        jetstream.FileStorage,
		Replicas:       replicas,
		LimitMarkerTTL: TTL,
	}
}
