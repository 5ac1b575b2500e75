// Package limitsv1 defines the JetStream KV buckets the gateways share their limiters in
// (SPEC §6: limits hold across replicas): API calls per tenant per minute, messages per
// tenant per UTC day, and WebSocket sessions per tenant per gateway. The gateway uses
// them and contracts/natsperm grants them, from these one names and configs.
package limitsv1

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names.
const (
	// RateBucket holds API calls per (tenant, minute): memory is enough, a key matters
	// for one minute.
	RateBucket = "RATE_LIMITS"
	// QuotaBucket holds messages per (tenant, UTC day): on file, so a NATS restart does
	// not hand every tenant a fresh day.
	QuotaBucket = "MESSAGE_QUOTAS"
	// ConnBucket holds one key per (tenant, gateway), the value the count, a per-key TTL
	// refreshed while the gateway lives.
	ConnBucket = "CONNECTIONS"
)

// Buckets lists the three bucket names.
func Buckets() []string { return []string{RateBucket, QuotaBucket, ConnBucket} }

// RateBucketConfig is the rate bucket's one definition at replicas (at least 1).
func RateBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: RateBucket, Description: "API calls per tenant per minute (gateway leases)",
		History: 1, TTL: 5 * time.Minute, Storage: jetstream.MemoryStorage, Replicas: max(replicas, 1)}
}

// QuotaBucketConfig is the quota bucket's one definition at replicas (at least 1).
func QuotaBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: QuotaBucket, Description: "messages per tenant per UTC day (gateway leases)",
		History: 1, TTL: 48 * time.Hour, Storage: jetstream.FileStorage, Replicas: max(replicas, 1)}
}

// ConnBucketConfig is the connection bucket's one definition at replicas (at least 1).
// LimitMarkerTTL enables per-key TTLs.
func ConnBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: ConnBucket, Description: "WebSocket sessions per tenant per gateway",
		History: 1, Storage: jetstream.MemoryStorage, LimitMarkerTTL: time.Minute, Replicas: max(replicas, 1)}
}

// RateKey is tenant's key in RateBucket for the minute starting at minute*60 (Unix).
func RateKey(tenant string, minute int64) string {
	return "api." + tenant + "." + strconv.FormatInt(minute, 10)
}

// QuotaKey is tenant's key in QuotaBucket for the UTC day of t.
func QuotaKey(tenant string, t time.Time) string {
	return "msg." + tenant + "." + t.UTC().Format("20060102")
}

// ConnKey is the key in ConnBucket of tenant's session count on the gateway source.
func ConnKey(tenant, source string) string { return tenant + "." + source }
