// Package gauge sends a service's gauge events (usagev1.GaugeEvent: a tenant's current
// count of agents, channels or SSH keys) to the metering stream without ever slowing
// the request that changed the count: Report queues the value and returns; Run
// publishes in the background with retries, keeps only the latest value of a tenant's
// gauge per day while it waits, and flushes what it can at shutdown.
package gauge

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/replication"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

// Bounds of a Reporter.
const (
	// DefaultMaxPending bounds the gauges waiting to be sent; beyond it new ones are
	// dropped (and logged): the next change of the same count sends it again.
	DefaultMaxPending = 10_000
	publishTimeout    = 5 * time.Second
	flushTimeout      = 5 * time.Second
	minRetry          = 250 * time.Millisecond
	maxRetry          = 5 * time.Second
)

// key is what one pending event stands for: a later value of the same key replaces an
// unsent earlier one (only the day's last value of a gauge counts).
type key struct {
	tenantID, kind, day string
}

// Reporter queues gauge values and publishes them.
type Reporter struct {
	js         jetstream.JetStream
	log        zerolog.Logger
	now        func() time.Time
	maxPending int
	replicas   int

	mu      sync.Mutex
	pending map[key]usagev1.GaugeEvent
	order   []key // keys of pending, oldest first
	dropped int64
	wake    chan struct{}
}

// Option configures a Reporter.
type Option func(*Reporter)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(r *Reporter) { r.now = now } }

// WithMaxPending replaces DefaultMaxPending.
func WithMaxPending(n int) Option { return func(r *Reporter) { r.maxPending = n } }

// WithReplicas sets the replica count the reporter ensures the metering stream at
// (NATS_JS_REPLICAS; default 1, never lowering an existing stream's).
func WithReplicas(n int) Option { return func(r *Reporter) { r.replicas = n } }

// New returns a reporter publishing on js; Run must run for anything to be sent.
func New(js jetstream.JetStream, log zerolog.Logger, opts ...Option) *Reporter {
	r := &Reporter{
		js: js, log: log.With().Str("part", "gauge reporter").Logger(), now: time.Now,
		maxPending: DefaultMaxPending, pending: make(map[key]usagev1.GaugeEvent), wake: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Report queues the tenant's current count of kind (usagev1.Gauge*), as of now. It
// never blocks on NATS.
func (r *Reporter) Report(tenantID, kind string, value int64) {
	ev := usagev1.GaugeEvent{TenantID: tenantID, Kind: kind, Value: max(value, 0), At: r.now().UTC()}
	r.queue(ev, false)
}

// queue adds ev unless a newer event of its key waits already; a retry (again) is
// queued in front.
func (r *Reporter) queue(ev usagev1.GaugeEvent, again bool) {
	k := key{ev.TenantID, ev.Kind, usagev1.Day(ev.At)}
	r.mu.Lock()
	cur, ok := r.pending[k]
	switch {
	case ok:
		if ev.At.After(cur.At) || ev.At.Equal(cur.At) && ev.Value > cur.Value {
			r.pending[k] = ev
		}
	case len(r.pending) >= r.maxPending:
		r.dropped++
		n := r.dropped
		r.mu.Unlock()
		if n == 1 || n%1000 == 0 {
			r.log.Warn().Int64("dropped", n).Msg("gauge queue full: dropping gauge events")
		}
		return
	default:
		r.pending[k] = ev
		if again {
			r.order = append([]key{k}, r.order...)
		} else {
			r.order = append(r.order, k)
		}
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest pending event.
func (r *Reporter) next() (usagev1.GaugeEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.order) > 0 {
		k := r.order[0]
		r.order = r.order[1:]
		if ev, ok := r.pending[k]; ok {
			delete(r.pending, k)
			return ev, true
		}
	}
	return usagev1.GaugeEvent{}, false
}

// Pending reports how many events wait to be sent.
func (r *Reporter) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Run ensures the metering stream and publishes queued events until ctx ends; then it
// sends what it can within a few seconds and returns nil.
func (r *Reporter) Run(ctx context.Context) error {
	streamReady := false
	retry := minRetry
	for {
		if !streamReady && ctx.Err() == nil {
			streamReady = r.ensureStream(ctx)
		}
		if streamReady && r.sendAll(ctx) {
			retry = minRetry
			select {
			case <-ctx.Done():
				r.flush(true)
				return nil
			case <-r.wake:
			}
			continue
		}
		// JetStream is not answering: wait and try again.
		select {
		case <-ctx.Done():
			r.flush(streamReady)
			return nil
		case <-time.After(retry):
		}
		retry = min(retry*2, maxRetry)
	}
}

func (r *Reporter) ensureStream(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := replication.Stream(cctx, r.js, usagev1.StreamConfig(r.replicas)); err != nil {
		if ctx.Err() == nil {
			r.log.Warn().Err(err).Msg("metering stream not available yet")
		}
		return false
	}
	return true
}

// sendAll publishes until the queue is empty (true) or a publish fails (false; the
// event is queued again).
func (r *Reporter) sendAll(ctx context.Context) bool {
	for {
		ev, ok := r.next()
		if !ok {
			return true
		}
		if err := r.publish(ctx, ev); err != nil {
			r.queue(ev, true)
			if ctx.Err() == nil {
				r.log.Warn().Err(err).Msg("publishing a gauge event failed; retrying")
			}
			return false
		}
	}
}

func (r *Reporter) publish(ctx context.Context, ev usagev1.GaugeEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding gauge event: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	_, err = r.js.Publish(pctx, usagev1.SubjectGauge, b, jetstream.WithMsgID(ev.MsgID()))
	return err
}

// flush sends what is queued, for at most flushTimeout (ensuring the stream first when
// Run had not).
func (r *Reporter) flush(streamReady bool) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	for ctx.Err() == nil {
		if !streamReady {
			streamReady = r.ensureStream(ctx)
		}
		if streamReady && r.sendAll(ctx) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(minRetry):
		}
	}
	if n := r.Pending(); n > 0 {
		r.log.Warn().Int("unsent", n).Msg("gauge events not sent at shutdown")
	}
}
