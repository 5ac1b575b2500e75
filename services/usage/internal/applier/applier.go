// Package applier consumes the metering stream (usagev1.Stream) with the durable pull
// consumer every usage-service replica shares, and applies each event through the
// domain: a counts event is acknowledged only when every entry is applied or skipped,
// handed back with a short delay while an entry waits for an earlier flush (a gap) or
// the store fails, and left unacknowledged when the applier stops mid-way (redelivered
// after AckWait; the entries already applied skip themselves).
package applier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/replication"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

// Timing of the applier.
const (
	// DefaultAckWait is how long an event in hand stays with one replica before the
	// server gives it to another (a crashed replica's events come back after it).
	DefaultAckWait = 30 * time.Second
	// GapDelay is how long an event waiting for an earlier flush is held back.
	GapDelay = time.Second
	// applyTimeout bounds the work on one event, below the ack wait.
	applyTimeout   = 20 * time.Second
	maxRetryDelay  = 30 * time.Second
	ackTimeout     = 5 * time.Second
	stopTimeout    = 30 * time.Second
	startupTimeout = 30 * time.Second
	pullBatch      = 64
)

// Domain is what the applier needs of the usage domain (usage.Service).
type Domain interface {
	ApplyCounts(ctx context.Context, ev usagev1.CountsEvent) (usage.Result, error)
	ApplyGauge(ctx context.Context, ev usagev1.GaugeEvent) (bool, error)
}

// ConsumerConfig is the applier's durable consumer: shared by replicas, explicit ack,
// never gives up. No BackOff: with one set, the server adds its steps to every NAK delay.
func ConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        usagev1.DurableApplier,
		Description:    "usage service: apply metering events to the daily rows",
		FilterSubjects: []string{usagev1.SubjectCounts, usagev1.SubjectGauge},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        ackWait,
		MaxDeliver:     -1,
		MaxAckPending:  1024,
	}
}

// Applier applies metering events from the stream.
type Applier struct {
	js       jetstream.JetStream
	domain   Domain
	log      zerolog.Logger
	m        *metrics
	ackWait  time.Duration
	replicas int
}

// Option configures an Applier.
type Option func(*Applier)

// WithAckWait replaces DefaultAckWait (tests make crashed replicas' events come back
// sooner).
func WithAckWait(d time.Duration) Option { return func(a *Applier) { a.ackWait = d } }

// WithReplicas sets the replica count the applier ensures the metering stream at
// (NATS_JS_REPLICAS; default 1, never lowering an existing stream's).
func WithReplicas(n int) Option { return func(a *Applier) { a.replicas = n } }

// New returns an applier of events through domain, with its metrics on reg; Run starts
// it. Several appliers (replicas, or one process's tests) may share reg.
func New(js jetstream.JetStream, domain Domain, reg prometheus.Registerer, log zerolog.Logger, opts ...Option) *Applier {
	a := &Applier{js: js, domain: domain, log: log.With().Str("consumer", usagev1.DurableApplier).Logger(), m: newMetrics(reg), ackWait: DefaultAckWait}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Run ensures the stream and the consumer and applies events until ctx ends; then it
// stops fetching and waits for the event in hand.
func (a *Applier) Run(ctx context.Context) error {
	cons, err := a.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a clean stop
		}
		return err
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { a.handle(ctx, msg) },
		jetstream.PullMaxMessages(pullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			a.log.Debug().Err(err).Msg("usage applier")
		}))
	if err != nil {
		return fmt.Errorf("usage applier consume: %w", err)
	}
	a.log.Info().Msg("usage applier running")
	<-ctx.Done()
	cc.Stop()
	select {
	case <-cc.Closed():
	case <-time.After(stopTimeout):
		a.log.Warn().Msg("usage applier did not stop in time")
	}
	return nil
}

// start ensures the stream (the one definition, usagev1.StreamConfig) and the durable
// consumer, retrying while JetStream is not answering yet.
func (a *Applier) start(ctx context.Context) (jetstream.Consumer, error) {
	wctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(wctx, 5*time.Second)
		_, err := replication.Stream(actx, a.js, usagev1.StreamConfig(a.replicas))
		var cons jetstream.Consumer
		if err == nil {
			cons, err = a.js.CreateOrUpdateConsumer(actx, usagev1.Stream, ConsumerConfig(a.ackWait))
		}
		acancel()
		if err == nil {
			return cons, nil
		}
		if wctx.Err() != nil {
			return nil, fmt.Errorf("usage applier: stream %s not available: %w", usagev1.Stream, err)
		}
		select {
		case <-wctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// verdict is what happens to one event.
type verdict string

const (
	ack   verdict = "ack"
	nak   verdict = "nak"
	term  verdict = "term"
	leave verdict = "leave" // stopping: no answer, redelivered after AckWait
)

func (a *Applier) handle(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	kind := "gauge"
	if msg.Subject() == usagev1.SubjectCounts {
		kind = "counts"
	}
	v, delay, err := a.apply(ctx, kind, msg)
	if ctx.Err() != nil {
		v = leave
	}
	log := a.log.With().Str("subject", msg.Subject()).Str("verdict", string(v)).Logger()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	switch v {
	case ack:
		// A lost ack only means a redelivery, which skips itself.
		if aerr := msg.DoubleAck(actx); aerr != nil {
			log.Warn().Err(aerr).Msg("acknowledging a metering event failed")
		}
	case nak:
		_ = msg.NakWithDelay(delay)
	case term:
		_ = msg.Term()
	}
	a.m.events.WithLabelValues(kind, string(v)).Inc()
	a.m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	switch {
	case v == term:
		log.Error().Err(err).Msg("dropping a malformed metering event")
	case err != nil && v == nak:
		log.Warn().Err(err).Dur("retry_in", delay).Msg("applying a metering event failed")
	case v == nak && deliveries(msg) > stuckDeliveries:
		// An earlier flush that never comes (lost from the stream) holds this one back
		// until the stream's MaxAge removes it: worth an operator's look.
		log.Warn().Uint64("deliveries", deliveries(msg)).Msg("metering event still waits for an earlier flush")
	case v == nak:
		log.Debug().Dur("retry_in", delay).Msg("metering event waits for an earlier flush")
	default:
		log.Debug().Dur("duration", time.Since(start)).Msg("metering event applied")
	}
}

// apply applies one event and says what to answer.
func (a *Applier) apply(ctx context.Context, kind string, msg jetstream.Msg) (verdict, time.Duration, error) {
	ctx, cancel := context.WithTimeout(a.log.WithContext(ctx), applyTimeout)
	defer cancel()
	var err error
	switch kind {
	case "counts":
		var ev usagev1.CountsEvent
		if derr := json.Unmarshal(msg.Data(), &ev); derr != nil {
			return term, 0, derr
		}
		var res usage.Result
		res, err = a.domain.ApplyCounts(ctx, ev)
		for o, n := range res {
			a.m.entries.WithLabelValues(kind, o.String()).Add(float64(n))
		}
		if err == nil && !res.Complete() {
			return nak, GapDelay, nil
		}
	default:
		var ev usagev1.GaugeEvent
		if derr := json.Unmarshal(msg.Data(), &ev); derr != nil {
			return term, 0, derr
		}
		var changed bool
		changed, err = a.domain.ApplyGauge(ctx, ev)
		if err == nil {
			o := usage.Skipped
			if changed {
				o = usage.Applied
			}
			a.m.entries.WithLabelValues(kind, o.String()).Inc()
		}
	}
	switch {
	case err == nil:
		return ack, 0, nil
	case errors.Is(err, usage.ErrMalformed):
		return term, 0, err
	}
	return nak, retryDelay(msg), err
}

// stuckDeliveries is how many deliveries of an event waiting for an earlier flush are
// normal (a few seconds of reordering between replicas) before it is logged as stuck.
const stuckDeliveries = 60

func deliveries(msg jetstream.Msg) uint64 {
	if md, err := msg.Metadata(); err == nil {
		return md.NumDelivered
	}
	return 0
}

// retryDelay grows with the deliveries of msg: 1 s, 2 s, 4 s … up to maxRetryDelay.
func retryDelay(msg jetstream.Msg) time.Duration {
	n := uint64(1)
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 0 {
		n = md.NumDelivered
	}
	return min(time.Second<<min(n-1, 6), maxRetryDelay)
}

// metrics of the applier; labels are low-cardinality (kind, verdict, outcome).
type metrics struct {
	events   *prometheus.CounterVec
	entries  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "artcafe_usage_events_total",
			Help: "Metering events handled by the usage applier, by kind (counts, gauge) and verdict (ack, nak, term, leave).",
		}, []string{"kind", "verdict"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "artcafe_usage_entries_total",
			Help: "Entries of metering events by kind and outcome (applied, skipped, gap, inconsistent, invalid, discarded: the tenant was deleted).",
		}, []string{"kind", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "artcafe_usage_apply_duration_seconds",
			Help:    "Time to apply one metering event, by kind.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
	}
	m.events = register(reg, m.events)
	m.entries = register(reg, m.entries)
	m.duration = register(reg, m.duration)
	return m
}

// register registers c on reg, or reuses the collector already registered there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
