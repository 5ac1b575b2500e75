// Package replication ensures the JetStream streams and KV buckets of the platform at the
// replica count an operator configured (NATS_JS_REPLICAS: 1 on one server, 3 on the
// cluster). A stream or bucket that already runs at more replicas keeps them: a component
// started with a lower setting never scales shared state down.
package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Replicas is n, or 1 when n is not positive (the default of a single server).
func Replicas(n int) int { return max(n, 1) }

// Stream creates the stream of cfg or updates it to cfg, keeping its current replica
// count when that is higher than cfg's.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = Replicas(cfg.Replicas)
	cur, err := js.Stream(ctx, cfg.Name)
	switch {
	case err == nil:
		cfg.Replicas = max(cfg.Replicas, cur.CachedInfo().Config.Replicas)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("reading stream %s: %w", cfg.Name, err)
	}
	return js.CreateOrUpdateStream(ctx, cfg)
}

// KeyValue creates the bucket of cfg or updates it to cfg, keeping its current replica
// count when that is higher than cfg's.
func KeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	cfg.Replicas = Replicas(cfg.Replicas)
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	switch {
	case err == nil:
		st, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading bucket %s: %w", cfg.Bucket, err)
		}
		if ks, ok := st.(*jetstream.KeyValueBucketStatus); ok {
			cfg.Replicas = max(cfg.Replicas, ks.StreamInfo().Config.Replicas)
		}
	case !errors.Is(err, jetstream.ErrBucketNotFound):
		return nil, fmt.Errorf("reading bucket %s: %w", cfg.Bucket, err)
	}
	return js.CreateOrUpdateKeyValue(ctx, cfg)
}
