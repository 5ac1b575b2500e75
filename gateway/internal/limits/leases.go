// Package limits enforces the plan's rates and quotas across every gateway replica
// (SPEC §6): API calls per minute, messages per day and concurrent WebSocket
// connections per tenant, with state shared through JetStream (contracts/limitsv1).
//
// Counters (API calls, messages) use Leases: each gateway takes a lease of several
// units from a shared counter (a JetStream counter stream: one atomic add whose ack
// carries the new total, so replicas never contend), spends it locally with one atomic
// operation per call, and takes the next lease when it is spent; once the shared
// counter reaches the limit, calls are refused until the window changes. Only units
// below the limit are granted (no overshoot); units leased but not spent when the
// window ends are the only undershoot, at most one lease per replica.
//
// Connections use per-gateway session counts in a KV bucket every gateway watches
// (Connections).
//
// When the shared state is unreachable the limits fail open (the call is allowed, a warning
// is logged, artcafe_limits_fail_open_total counts it): an outage of the shared state
// must not take the API down with it.
package limits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/replication"
)

// Leases is a family of shared counters, one per key, each bounded by a limit. It is
// safe for concurrent use.
type Leases struct {
	counter *counter
	log     zerolog.Logger
	timeout time.Duration // one KV round trip
	metrics *Metrics

	entries sync.Map // key → *entry
	sweepAt atomic.Int64
	// downUntil (unix ns): after a KV failure, calls fail open without trying again for
	// a few seconds, so an outage costs no latency.
	downUntil atomic.Int64
	lastWarn  atomic.Int64
}

// entry is one key's local state.
type entry struct {
	local   atomic.Int64 // units leased to this gateway and not spent yet
	shared  atomic.Int64 // the shared counter as last seen
	full    atomic.Int64 // the limit at which the shared counter was found full (0: not)
	expires int64        // unix ns after which the key's window is over
	mu      sync.Mutex   // one lease request at a time per key
}

// Grant is the answer to Take.
type Grant struct {
	Allowed bool
	// Remaining is an estimate of what is left in the window across every gateway:
	// the limit minus the shared counter plus this gateway's unspent lease.
	Remaining int64
	// FailedOpen: the shared state was unreachable and the call was allowed anyway.
	FailedOpen bool
}

// newLeases counts in c; timeout bounds one round trip.
func newLeases(c *counter, timeout time.Duration, m *Metrics, log zerolog.Logger) *Leases {
	return &Leases{counter: c, timeout: timeout, metrics: m, log: log}
}

// Take spends n units of key, whose window ends at expires, against limit, taking a
// lease of lease units from the shared counter when the local ones run out.
func (l *Leases) Take(ctx context.Context, key string, expires time.Time, limit, lease, n int64) Grant {
	if n <= 0 {
		n = 1
	}
	lease = max(lease, n, 1)
	e := l.entry(key, expires)
	if g, ok := e.spend(limit, n); ok {
		return g
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if g, ok := e.spend(limit, n); ok { // another caller took a lease meanwhile
		return g
	}
	if f := e.full.Load(); f != 0 && limit <= f {
		return Grant{Remaining: max(0, limit-e.shared.Load()+e.local.Load())}
	}
	if time.Now().UnixNano() < l.downUntil.Load() {
		l.metrics.failOpen.Inc()
		return Grant{Allowed: true, Remaining: max(0, limit-e.shared.Load()), FailedOpen: true}
	}
	for e.local.Load() < n {
		got, shared, err := l.acquire(ctx, key, limit, lease)
		if err != nil {
			l.failed(err)
			return Grant{Allowed: true, Remaining: max(0, limit-e.shared.Load()), FailedOpen: true}
		}
		e.shared.Store(shared)
		if got == 0 {
			e.full.Store(limit)
			return Grant{Remaining: max(0, e.local.Load())}
		}
		e.full.Store(0)
		e.local.Add(got)
	}
	e.local.Add(-n)
	return Grant{Allowed: true, Remaining: max(0, limit-e.shared.Load()+e.local.Load())}
}

// Return gives back n units of key spent by a call that did not happen after all (a
// failed publish): they are spent by a later call of this gateway.
func (l *Leases) Return(key string, n int64) {
	if v, ok := l.entries.Load(key); ok && n > 0 {
		v.(*entry).local.Add(n)
	}
}

// spend takes n local units if there are.
func (e *entry) spend(limit, n int64) (Grant, bool) {
	for {
		v := e.local.Load()
		if v < n {
			return Grant{}, false
		}
		if e.local.CompareAndSwap(v, v-n) {
			return Grant{Allowed: true, Remaining: max(0, limit-e.shared.Load()+v-n)}, true
		}
	}
}

// entry returns key's local state, and now and then forgets keys whose window is over.
func (l *Leases) entry(key string, expires time.Time) *entry {
	if v, ok := l.entries.Load(key); ok {
		return v.(*entry)
	}
	now := time.Now().UnixNano()
	if at := l.sweepAt.Load(); now >= at && l.sweepAt.CompareAndSwap(at, now+int64(10*time.Second)) {
		l.entries.Range(func(k, v any) bool {
			if v.(*entry).expires < now {
				l.entries.Delete(k)
			}
			return true
		})
	}
	v, _ := l.entries.LoadOrStore(key, &entry{expires: expires.UnixNano()})
	return v.(*entry)
}

// acquire takes up to lease units from the shared counter of key (a subject of the
// counter stream): one publish that adds lease (Nats-Incr) and answers with the new
// total. What the total passed the limit by was not granted: how many units it got (0
// when the counter was already at the limit) and the counter, capped at the limit.
func (l *Leases) acquire(ctx context.Context, key string, limit, lease int64) (got, shared int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	total, err := l.counter.add(ctx, key, lease)
	if err != nil {
		return 0, 0, err
	}
	got = max(0, min(lease, limit-(total-lease)))
	return got, min(total, limit), nil
}

// failed notes a KV failure: fail open for a few seconds, warn at most every 10 s.
func (l *Leases) failed(err error) {
	l.metrics.failOpen.Inc()
	now := time.Now().UnixNano()
	l.downUntil.Store(now + int64(failOpenFor))
	if last := l.lastWarn.Load(); now-last >= int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		l.log.Warn().Err(err).Str("stream", l.counter.cfg.Name).Msg("shared limit state unreachable; allowing calls (fail open)")
	}
}

// failOpenFor is how long calls are allowed without asking after a KV failure.
const failOpenFor = 5 * time.Second

// Metrics are the limits' Prometheus metrics (no tenant label).
type Metrics struct {
	failOpen prometheus.Counter
	refused  *prometheus.CounterVec
}

// NewMetrics registers the limits' metrics with reg (nil: kept, not exported).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		failOpen: prometheus.NewCounter(prometheus.CounterOpts{Name: "artcafe_limits_fail_open_total",
			Help: "Calls allowed because the shared limit state (JetStream KV) was unreachable."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "artcafe_limits_refused_total",
			Help: "Calls refused with 429 by a plan limit."}, []string{"limit"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.failOpen, m.refused} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// counter is a counter stream (NATS ≥ 2.12) created (or bound) on first use, and again
// after a failure.
type counter struct {
	js  jetstream.JetStream
	cfg jetstream.StreamConfig

	mu    sync.Mutex
	ready bool
}

// add adds n to the counter at subject and returns its new total.
func (c *counter) add(ctx context.Context, subject string, n int64) (int64, error) {
	if err := c.ensure(ctx); err != nil {
		return 0, err
	}
	m := nats.NewMsg(subject)
	m.Header.Set(incrHeader, strconv.FormatInt(n, 10))
	ack, err := c.js.PublishMsg(ctx, m)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			c.mu.Lock()
			c.ready = false // deleted under us: create it again next time
			c.mu.Unlock()
		}
		return 0, err
	}
	total, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limits: counter %s answered %q: %w", subject, ack.Value, err)
	}
	return total, nil
}

// incrHeader makes a publish to a counter stream an atomic add.
const incrHeader = "Nats-Incr"

func (c *counter) ensure(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		return nil
	}
	if _, err := replication.Stream(ctx, c.js, c.cfg); err != nil {
		return err
	}
	c.ready = true
	return nil
}
