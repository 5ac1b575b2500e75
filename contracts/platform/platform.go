// Package platform defines the durable JetStream stream of internal platform events
// (tenant deletion cascade, later usage metering): subjects outside tenant.>, kept long
// enough that a consumer that was down when an event was sent still gets it.
package platform

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/replication"
)

// Stream is the stream name; it captures Subjects.
const (
	Stream   = "PLATFORM_EVENTS"
	Subjects = "platform.>"
)

// StreamConfig is the one definition of the stream at replicas (at least 1); every
// publisher and consumer ensures it with the same values.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Replicas:    max(replicas, 1),
		Name:        Stream,
		Description: "internal platform events (tenant cascade)",
		Subjects:    []string{Subjects},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
		DenyDelete:  true,
		DenyPurge:   false,
	}
}

// EnsureStream creates or updates the stream at replicas, never below the replicas it
// already runs at.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	return replication.Stream(ctx, js, StreamConfig(replicas))
}
