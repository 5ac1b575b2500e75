// Package limitsv1 defines the JetStream state the gateways share their limiters in (SPEC
// §6: limits hold across replicas): counter streams for API calls per tenant per minute
// and messages per tenant per UTC day (one subject per window; a publish with the
// Nats-Incr header adds to it atomically and its ack carries the new total, so taking a
// lease is one round trip with no compare-and-set to lose), and a KV bucket of WebSocket
// sessions per tenant per gateway. The gateway uses them and contracts/natsperm grants
// them, from these one names and configs.
package limitsv1

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Counter streams (NATS ≥ 2.12 counters) and their subjects.
const (
	// RateStream counts API calls per (tenant, minute): memory is enough, a window
	// matters for one minute.
	RateStream   = "RATE_LIMITS"
	RateSubjects = "limits.api.>"
	// QuotaStream counts messages per (tenant, UTC day): on file, so a NATS restart
	// does not hand every tenant a fresh day.
	QuotaStream   = "MESSAGE_QUOTAS"
	QuotaSubjects = "limits.msg.>"
)

// CounterStreams lists the counter streams.
func CounterStreams() []string { return []string{RateStream, QuotaStream} }

// RateStreamConfig is the rate stream's one definition at replicas (at least 1).
func RateStreamConfig(replicas int) jetstream.StreamConfig {
	return counterStream(RateStream, RateSubjects, "API calls per tenant per minute (gateway leases)",
		5*time.Minute, jetstream.MemoryStorage, replicas)
}

// QuotaStreamConfig is the quota stream's one definition at replicas (at least 1).
func QuotaStreamConfig(replicas int) jetstream.StreamConfig {
	return counterStream(QuotaStream, QuotaSubjects, "messages per tenant per UTC day (gateway leases)",
		48*time.Hour, jetstream.FileStorage, replicas)
}

// counterStream keeps the latest total of each window (one message per subject) until
// the window is long over.
func counterStream(name, subjects, description string, maxAge time.Duration, storage jetstream.StorageType, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Description: description, Subjects: []string{subjects},
		AllowMsgCounter: true, MaxMsgsPerSubject: 1, MaxAge: maxAge, Storage: storage,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, Replicas: max(replicas, 1)}
}

// RateSubject counts tenant's API calls in the minute starting at minute*60 (Unix).
func RateSubject(tenant string, minute int64) string {
	return "limits.api." + tenant + "." + strconv.FormatInt(minute, 10)
}

// QuotaSubject counts tenant's messages on the UTC day of t.
func QuotaSubject(tenant string, t time.Time) string {
	return "limits.msg." + tenant + "." + t.UTC().Format("20060102")
}

// ConnBucket holds one key per (tenant, gateway), the value the count, a per-key TTL
// refreshed while the gateway lives.
const ConnBucket = "CONNECTIONS"

// ConnBucketConfig is the connection bucket's one definition at replicas (at least 1).
// LimitMarkerTTL enables per-key TTLs.
func ConnBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: ConnBucket, Description: "WebSocket sessions per tenant per gateway",
		History: 1, Storage: jetstream.MemoryStorage, LimitMarkerTTL: time.Minute, Replicas: max(replicas, 1)}
}

// ConnKey is the key in ConnBucket of tenant's session count on the gateway source.
func ConnKey(tenant, source string) string { return tenant + "." + source }
