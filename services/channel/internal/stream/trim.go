package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Timing of the trimmer.
const (
	// TrimEvery is how often the trimmer looks at every channel's count. A channel may
	// hold more than its max_messages for about this long plus one sweep (bounded
	// overshoot: at most what is published to it in that time).
	TrimEvery = 3 * time.Second
	// boundTTL is how long a channel's bound is reused to decide whether it needs a
	// look. Channel events drop it at once (an update or deletion by any replica); the TTL
	// only covers lost events. A trim itself always uses the bound read just before it.
	boundTTL = 5 * time.Minute
	// eventBuffer is how many channel events may wait for the trimmer between sweeps;
	// beyond it events are dropped (and boundTTL covers them).
	eventBuffer = 4096
	// OrphanGrace is how long the messages of a channel that does not exist stay before
	// they are purged: a publish that raced the channel's deletion lands after its
	// purge, and a failed purge at deletion leaves them too.
	OrphanGrace = 10 * time.Second
)

// Bounds says how many messages a channel keeps.
type Bounds interface {
	// MaxMessages returns a channel's history.max_messages (0: unlimited) and whether
	// the channel exists.
	MaxMessages(ctx context.Context, tenantID, channelID string) (int64, bool, error)
}

// Trimmer keeps every channel within its history.max_messages: each sweep reads the
// count of every subject of the stream (one stream info request) and purges the oldest
// messages of channels above their bound (purge with keep), and purges the messages of
// channels that no longer exist. Bounds are cached and dropped by the channel events
// every replica publishes. Every replica of the service may run one: purges are
// idempotent, and the bound is read again right before each one.
type Trimmer struct {
	s      *Stream
	bounds Bounds
	every  time.Duration
	now    func() time.Time
	log    zerolog.Logger
	known  map[string]bound // by subject; only the Run goroutine touches it
}

type bound struct {
	max         int64
	exists      bool
	readAt      time.Time
	missingFrom time.Time // when the channel was first found missing
}

// TrimOption configures a Trimmer.
type TrimOption func(*Trimmer)

// TrimInterval sets the time between sweeps (default TrimEvery).
func TrimInterval(d time.Duration) TrimOption { return func(t *Trimmer) { t.every = d } }

// TrimClock replaces time.Now (tests).
func TrimClock(now func() time.Time) TrimOption { return func(t *Trimmer) { t.now = now } }

// NewTrimmer returns the trimmer of s, with the channels' bounds from bounds.
func NewTrimmer(s *Stream, bounds Bounds, log zerolog.Logger, opts ...TrimOption) *Trimmer {
	t := &Trimmer{s: s, bounds: bounds, every: TrimEvery, now: time.Now, log: log.With().Str("task", "trimmer").Logger(), known: map[string]bound{}}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Run sweeps every interval until ctx ends, and between sweeps forgets the bounds of
// channels that channel events say changed. A failed sweep is logged and the next one
// tries again.
func (t *Trimmer) Run(ctx context.Context) error {
	events := make(chan *nats.Msg, eventBuffer)
	sub, err := t.s.nc.ChanSubscribe(eventsv1.AllChannelEvents, events)
	if err != nil {
		return fmt.Errorf("trimmer: subscribing to channel events: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-events:
			t.forget(m)
			continue
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(t.log.WithContext(ctx), max(t.every, 10*time.Second))
		if err := t.Sweep(sctx); err != nil && ctx.Err() == nil {
			t.log.Warn().Err(err).Msg("trim sweep failed")
		}
		cancel()
	}
}

// forget drops the cached bound of the channel an event is about.
func (t *Trimmer) forget(m *nats.Msg) {
	var ev struct {
		TenantID string              `json:"tenant_id"`
		Data     eventsv1.ChannelRef `json:"data"`
	}
	if json.Unmarshal(m.Data, &ev) != nil || !validation.IsUUID(ev.TenantID) || !validation.IsULID(ev.Data.ChannelID) {
		return
	}
	delete(t.known, messagev1.Subject(ev.TenantID, ev.Data.ChannelID))
}

// Sweep looks at every channel once, and creates the stream again if it is gone. It is
// not safe for concurrent use (Run calls it).
func (t *Trimmer) Sweep(ctx context.Context) error {
	counts, err := t.s.subjectCounts(ctx, messagev1.StreamSubjects)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted by hand: gateways cannot publish until it is back.
		if _, err := Ensure(ctx, t.s.js, t.s.replicas); err != nil {
			return err
		}
		t.log.Warn().Str("stream", messagev1.Stream).Msg("the message stream was missing and has been created again")
		return nil
	}
	if err != nil {
		return err
	}
	now := t.now()
	for subject := range t.known {
		if counts[subject] == 0 {
			delete(t.known, subject)
		}
	}
	for subject, n := range counts {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tenantID, channelID, ok := messagev1.ParseSubject(subject)
		if !ok {
			continue
		}
		b, cached := t.known[subject]
		if !cached || now.Sub(b.readAt) >= boundTTL || !b.exists || (b.max > 0 && int64(n) > b.max) {
			// Read it again: stale, missing, or about to be acted on.
			limit, exists, err := t.bounds.MaxMessages(ctx, tenantID, channelID)
			if err != nil {
				t.log.Warn().Err(err).Str("subject", subject).Msg("channel bound not read")
				continue
			}
			next := bound{max: limit, exists: exists, readAt: now}
			if !exists {
				next.missingFrom = now
				if cached && !b.exists {
					next.missingFrom = b.missingFrom
				}
			}
			b = next
			t.known[subject] = b
		}
		switch {
		case !b.exists:
			if now.Sub(b.missingFrom) < OrphanGrace {
				continue
			}
			if err := t.s.purge(ctx, subject); err != nil {
				t.log.Warn().Err(err).Str("subject", subject).Msg("messages of a deleted channel not purged")
				continue
			}
			t.s.stats.forget(tenantID)
			delete(t.known, subject)
			t.log.Info().Str("subject", subject).Uint64("messages", n).Msg("purged the messages of a deleted channel")
		case b.max > 0 && int64(n) > b.max:
			if err := t.s.purge(ctx, subject, jetstream.WithPurgeKeep(uint64(b.max))); err != nil {
				t.log.Warn().Err(err).Str("subject", subject).Msg("channel not trimmed")
				continue
			}
			t.log.Debug().Str("subject", subject).Uint64("messages", n).Int64("keep", b.max).Msg("channel trimmed")
		}
	}
	return nil
}
