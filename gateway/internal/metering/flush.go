package metering

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/replication"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

// Defaults of Config.
const (
	DefaultInterval       = time.Second
	DefaultPublishTimeout = 2 * time.Second
	// DefaultMaxEventBytes keeps an event well below NATS's default max payload (1 MiB).
	DefaultMaxEventBytes = 512 << 10
)

// Config tunes a Meter; the zero value is the production setting.
type Config struct {
	// Source names this process in every event (default: a fresh ULID). Two processes
	// must never share one: the usage service chains batches per source.
	Source         string
	Interval       time.Duration // between flushes (default 1 s)
	PublishTimeout time.Duration // one publish's ack (default 2 s)
	// MaxEventBytes bounds one event's JSON; more entries are split over several
	// batches (default 512 KiB; never above the connection's max payload minus room
	// for headers).
	MaxEventBytes int
	Log           zerolog.Logger
	Metrics       prometheus.Registerer // nil: counted, not exported
	// Replicas of the metering stream when this gateway creates it (NATS_JS_REPLICAS;
	// default 1, never lowering an existing stream's).
	Replicas int
}

// batch is one numbered flush, encoded once so that every resend is the same bytes.
type batch struct {
	ev   usagev1.CountsEvent
	data []byte
}

// flusher is the Meter's sending side (guarded by Meter.fmu).
type flusher struct {
	js      jetstream.JetStream
	cfg     Config
	next    uint64         // the last batch number assigned
	last    map[key]uint64 // the last batch that carried each (tenant, day): Prev
	pending []batch        // assigned and not yet acknowledged, oldest first
	stream  bool           // the stream is known to exist

	failures  prometheus.Counter
	sent      prometheus.Counter
	lastWarn  time.Time
	stopLoop  context.CancelFunc
	loopDone  chan struct{}
	startOnce sync.Once
}

// New builds a Meter that flushes to js. Start begins the periodic flushes; Close
// flushes what is left.
func New(js jetstream.JetStream, nc *nats.Conn, cfg Config) (*Meter, error) {
	if js == nil {
		return nil, errors.New("metering: JetStream is required")
	}
	if cfg.Source == "" {
		cfg.Source = ulid.Make().String()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if nc != nil {
		if mp := int(nc.MaxPayload()) - 4<<10; mp > 0 && cfg.MaxEventBytes > mp {
			cfg.MaxEventBytes = mp
		}
	}
	m := newMeter(time.Now)
	m.f = &flusher{
		js: js, cfg: cfg, last: map[key]uint64{},
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "artcafe_usage_flush_failures_total",
			Help: "Usage flushes that were not acknowledged (resent unchanged on the next tick)."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "artcafe_usage_batches_sent_total",
			Help: "Usage batches acknowledged by the USAGE_EVENTS stream."}),
	}
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{m.f.failures, m.f.sent} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Source is this process's source id in the events.
func (m *Meter) Source() string { return m.f.cfg.Source }

// Start runs a flush every Interval until Close.
func (m *Meter) Start() {
	m.f.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		m.f.stopLoop, m.f.loopDone = cancel, make(chan struct{})
		go func() {
			defer close(m.f.loopDone)
			t := time.NewTicker(m.f.cfg.Interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := m.Flush(ctx); err != nil && ctx.Err() == nil {
						m.warn(err)
					}
				}
			}
		}()
	})
}

// Close stops the periodic flushes and flushes everything recorded until it is
// acknowledged or ctx ends (SIGTERM: the gateway gives it a few seconds). Call it after
// the HTTP server and the WebSocket sessions have stopped, so nothing is recorded later.
func (m *Meter) Close(ctx context.Context) error {
	if m.f.stopLoop != nil {
		m.f.stopLoop()
		<-m.f.loopDone
	}
	for {
		err := m.Flush(ctx)
		if err == nil && m.idle() {
			return nil
		}
		if ctx.Err() != nil {
			if err == nil {
				err = ctx.Err()
			}
			m.f.cfg.Log.Error().Err(err).Msg("usage counts not flushed before shutdown; the unsent sums are lost")
			return err
		}
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// idle reports whether nothing is recorded or pending.
func (m *Meter) idle() bool {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	if len(m.f.pending) > 0 {
		return false
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n := len(sh.m)
		sh.mu.Unlock()
		if n > 0 {
			return false
		}
	}
	return true
}

// Flush sends the pending batches, oldest first, one at a time; when none is pending,
// it first cuts what was recorded into new batches. A batch that fails stays first in
// line and is resent unchanged by the next Flush.
func (m *Meter) Flush(ctx context.Context) error {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	f := m.f
	if !f.stream {
		cctx, cancel := context.WithTimeout(ctx, f.cfg.PublishTimeout)
		_, err := replication.Stream(cctx, f.js, usagev1.StreamConfig(f.cfg.Replicas))
		cancel()
		if err != nil {
			f.failures.Inc()
			return err
		}
		f.stream = true
	}
	if len(f.pending) == 0 {
		if err := m.cut(); err != nil {
			return err
		}
	}
	for len(f.pending) > 0 {
		b := f.pending[0]
		pctx, cancel := context.WithTimeout(ctx, f.cfg.PublishTimeout)
		_, err := f.js.PublishMsg(pctx, &nats.Msg{Subject: usagev1.SubjectCounts, Data: b.data}, jetstream.WithMsgID(b.ev.MsgID()))
		cancel()
		if err != nil {
			f.failures.Inc()
			return err
		}
		f.sent.Inc()
		f.pending[0] = batch{}
		f.pending = f.pending[1:]
	}
	f.pending = nil
	return nil
}

// piece is one entry to send; a tenant with very many active agents is split into
// several pieces, each in its own batch.
type piece struct {
	k     key
	entry usagev1.CountsEntry
	size  int
}

// cut turns what was recorded into numbered batches (fmu held).
func (m *Meter) cut() error {
	f := m.f
	taken := m.take()
	if len(taken) == 0 {
		return nil
	}
	// The Prev chain only needs days the usage service may still see: today and
	// yesterday (a flush right after midnight).
	yesterday := time.Unix(m.now().Unix()-86400, 0).UTC().Format(usagev1.DateLayout)
	for k := range f.last {
		if k.day < yesterday {
			delete(f.last, k)
		}
	}
	keys := make([]key, 0, len(taken))
	for k := range taken {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.day, b.day), cmp.Compare(a.tenant, b.tenant)) })

	// Room for one entry: the event's own fields take well under 200 bytes.
	room := f.cfg.MaxEventBytes - 200
	var pieces []piece
	for _, k := range keys {
		s := taken[k]
		agents := make([]string, 0, len(s.agents))
		for a := range s.agents {
			agents = append(agents, a)
		}
		slices.Sort(agents)
		first := true
		for first || len(agents) > 0 {
			e := usagev1.CountsEntry{TenantID: k.tenant, Date: k.day}
			if first {
				e.Counts, e.PeakConnections = s.counts, s.peak
			}
			first = false
			// Agent ids are short (ULIDs); cap a piece's list by bytes.
			n, used := 0, 0
			for n < len(agents) && used+len(agents[n])+3 < room-512 {
				used += len(agents[n]) + 3
				n++
			}
			if n == 0 && len(agents) > 0 {
				n = 1 // an absurdly long id still goes (alone)
			}
			e.ActiveAgents, agents = agents[:n:n], agents[n:]
			b, err := json.Marshal(e)
			if err != nil {
				return err
			}
			pieces = append(pieces, piece{k: k, entry: e, size: len(b) + 1})
		}
	}

	var cur []piece
	size := 0
	inBatch := map[key]bool{}
	closeBatch := func() error {
		if len(cur) == 0 {
			return nil
		}
		f.next++
		ev := usagev1.CountsEvent{Source: f.cfg.Source, Batch: f.next, Entries: make([]usagev1.CountsEntry, len(cur))}
		for i, p := range cur {
			p.entry.Prev = f.last[p.k]
			f.last[p.k] = f.next
			ev.Entries[i] = p.entry
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		f.pending = append(f.pending, batch{ev: ev, data: data})
		cur, size = cur[:0], 0
		clear(inBatch)
		return nil
	}
	for _, p := range pieces {
		if len(cur) > 0 && (inBatch[p.k] || size+p.size > room) {
			if err := closeBatch(); err != nil {
				return err
			}
		}
		cur = append(cur, p)
		size += p.size
		inBatch[p.k] = true
	}
	return closeBatch()
}

// warn logs a failed flush at most every 10 s (NATS down means one a second).
func (m *Meter) warn(err error) {
	m.fmu.Lock()
	now := time.Now()
	due := now.Sub(m.f.lastWarn) >= 10*time.Second
	if due {
		m.f.lastWarn = now
	}
	pending := len(m.f.pending)
	m.fmu.Unlock()
	if due {
		m.f.cfg.Log.Warn().Err(err).Int("pending_batches", pending).Msg("usage flush failed; the same batch is resent until acknowledged")
	}
}
