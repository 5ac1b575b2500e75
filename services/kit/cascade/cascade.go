// Package cascade is the tenant-deletion cascade consumer every service runs: a durable
// JetStream consumer of tenantv1.TenantDeleted on the platform stream that calls the
// service's Purger for each deleted tenant, retries failed purges, and drops malformed
// events.
package cascade

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Timing of the cascade. A purge that fails is retried after retryDelay (growing with
// the delivery count); one that hangs is redelivered after the consumer's AckWait.
const (
	purgeTimeout  = 25 * time.Second // below the first ack wait, so a slow purge is not redelivered while it runs
	maxRetryDelay = time.Minute
	stopTimeout   = 30 * time.Second
)

// ConsumerName is the durable consumer of service on the platform stream
// ("<service>-cascade"): one per service, shared by its instances.
func ConsumerName(service string) string { return service + "-cascade" }

// ConsumerConfig is the cascade consumer of service: durable, explicit ack, never gives
// up. A failed purge is retried after retryDelay (a NAK with delay); a purge that hangs
// is redelivered after AckWait. No BackOff: with one set, the server adds its steps to
// every NAK delay and the retries drift to minutes.
func ConsumerConfig(service string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(service),
		Description:   service + " service: purge the items of deleted tenants",
		FilterSubject: tenantv1.SubjectTenantDeleted,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 64,
	}
}

// Purger removes what a service keeps for a deleted tenant; it must be idempotent.
type Purger func(ctx context.Context, tenantID string) error

// Consumer consumes TenantDeleted events and purges each tenant.
type Consumer struct {
	js      jetstream.JetStream
	service string
	purge   Purger
	log     zerolog.Logger
}

// New returns the consumer of service; Run starts it.
func New(js jetstream.JetStream, service string, purge Purger, log zerolog.Logger) *Consumer {
	return &Consumer{js: js, service: service, purge: purge, log: log.With().Str("consumer", ConsumerName(service)).Logger()}
}

// Run ensures the durable consumer and handles events until ctx ends, then stops
// fetching and waits for the event in hand. Unacknowledged events are redelivered to
// whichever instance runs next.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, platform.Stream, ConsumerConfig(c.service))
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a clean stop, not a failure
		}
		return fmt.Errorf("cascade consumer: %w", err)
	}
	// Purges outlive a cancelled Run by at most purgeTimeout: a half-done purge is
	// safe (idempotent), but finishing it is tidier.
	base := context.WithoutCancel(ctx)
	cc, err := cons.Consume(func(msg jetstream.Msg) { c.handle(base, msg) },
		jetstream.PullMaxMessages(8),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			c.log.Debug().Err(err).Msg("cascade consumer")
		}))
	if err != nil {
		return fmt.Errorf("cascade consume: %w", err)
	}
	c.log.Info().Msg("cascade consumer running")
	<-ctx.Done()
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-time.After(stopTimeout):
		c.log.Warn().Msg("cascade consumer did not stop in time")
	}
	return nil
}

func (c *Consumer) handle(base context.Context, msg jetstream.Msg) {
	var ev tenantv1.TenantDeleted
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || !validation.IsUUID(ev.TenantID) {
		// Retrying cannot fix it; keep the stream moving.
		c.log.Error().Err(err).Msg("dropping a malformed tenant deletion event")
		_ = msg.Term()
		return
	}
	log := c.log.With().Str("tenant_id", ev.TenantID).Str("request_id", ev.RequestID).Logger()
	ctx, cancel := context.WithTimeout(log.WithContext(base), purgeTimeout)
	defer cancel()
	if err := c.purge(ctx, ev.TenantID); err != nil {
		delay := retryDelay(msg)
		log.Warn().Err(err).Dur("retry_in", delay).Msg("purging a deleted tenant failed")
		_ = msg.NakWithDelay(delay)
		return
	}
	if err := msg.DoubleAck(ctx); err != nil {
		// The purge is done; a redelivery finds nothing left to do.
		log.Warn().Err(err).Msg("acknowledging a tenant deletion event failed")
		return
	}
	log.Info().Msg("deleted tenant purged")
}

// retryDelay grows with the number of deliveries: 1 s, 2 s, 4 s … up to a minute.
func retryDelay(msg jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	d := time.Second << min(n-1, 6)
	return min(d, maxRetryDelay)
}
