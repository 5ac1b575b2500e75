// Package metering is the gateway's side of usage metering (SPEC §4.7, §6, §13 "Usage"):
// a Meter sums usage facts (API calls, bytes, publishes, deliveries, peak connections,
// active agents) in memory per (tenant, UTC day), and a flusher sends the sums once a
// second as one usagev1.CountsEvent on the USAGE_EVENTS stream.
//
// Exactness: a flush is numbered (Source = a ULID of this process, Batch = k) and each
// of its entries names the previous batch of this source that carried the same (tenant,
// day) (Prev), so the usage service applies every entry exactly once. A batch that was
// not acknowledged is resent unchanged (same MsgID, deduplicated by JetStream) until it
// is; meanwhile new facts keep accumulating as sums for the next batch, so memory stays
// bounded by the number of (tenant, day) pairs, never by the number of facts.
package metering

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

// shards spreads recording over independent locks: the request path takes one of them
// for a few map operations.
const shards = 32

// key is one row of the usage table: a tenant on a UTC day.
type key struct {
	tenant string
	day    string
}

// sums is what the current period has recorded for one key.
type sums struct {
	counts usagev1.Counts
	peak   int64
	agents map[string]struct{}
}

type shard struct {
	mu sync.Mutex
	m  map[key]*sums
}

// Meter sums usage facts. Recording never blocks on the network; it is safe for
// concurrent use. The zero value is not usable: use New.
type Meter struct {
	seed   maphash.Seed
	shards [shards]shard
	now    func() time.Time
	day    atomic.Pointer[dayCache]

	fmu sync.Mutex // one flush at a time
	f   *flusher
}

// dayCache keeps the current UTC day's string so that recording does not format a date.
type dayCache struct {
	start, end int64 // unix seconds, [start, end)
	s          string
}

func newMeter(now func() time.Time) *Meter {
	m := &Meter{seed: maphash.MakeSeed(), now: now}
	for i := range m.shards {
		m.shards[i].m = map[key]*sums{}
	}
	return m
}

// today is the current UTC day.
func (m *Meter) today() string {
	now := m.now().Unix()
	if d := m.day.Load(); d != nil && now >= d.start && now < d.end {
		return d.s
	}
	start := now - now%86400
	if now < 0 && now%86400 != 0 {
		start -= 86400
	}
	d := &dayCache{start: start, end: start + 86400, s: time.Unix(start, 0).UTC().Format(usagev1.DateLayout)}
	m.day.Store(d)
	return d.s
}

// add runs f on the sums of tenant today, under the shard's lock.
func (m *Meter) add(tenant string, f func(*sums)) {
	if tenant == "" {
		return
	}
	k := key{tenant: tenant, day: m.today()}
	sh := &m.shards[maphash.String(m.seed, tenant)%shards]
	sh.mu.Lock()
	s := sh.m[k]
	if s == nil {
		s = &sums{}
		sh.m[k] = s
	}
	f(s)
	sh.mu.Unlock()
}

// APICall records one API call of tenant with its request and response body sizes.
func (m *Meter) APICall(tenant string, bytesIn, bytesOut int) {
	m.add(tenant, func(s *sums) {
		s.counts.APICalls++
		s.counts.BytesIn += int64(bytesIn)
		s.counts.BytesOut += int64(bytesOut)
	})
}

// Published records n messages stored for tenant (an idempotent replay is not one).
func (m *Meter) Published(tenant string, n int) {
	m.add(tenant, func(s *sums) { s.counts.MessagesPublished += int64(n) })
}

// Delivered records n message frames (bytes in all, every frame included) written to a
// socket of tenant.
func (m *Meter) Delivered(tenant string, messages, bytes int) {
	m.add(tenant, func(s *sums) {
		s.counts.MessagesDelivered += int64(messages)
		s.counts.BytesOut += int64(bytes)
	})
}

// Received records WebSocket frame bytes read from a socket of tenant.
func (m *Meter) Received(tenant string, bytes int) {
	m.add(tenant, func(s *sums) { s.counts.BytesIn += int64(bytes) })
}

// Connections records the tenant's concurrent sessions across every gateway, as seen
// now; the period keeps the highest.
func (m *Meter) Connections(tenant string, n int64) {
	m.add(tenant, func(s *sums) { s.peak = max(s.peak, n) })
}

// ActiveAgent records that agent had a session of tenant open during this period.
func (m *Meter) ActiveAgent(tenant, agent string) {
	if agent == "" {
		return
	}
	m.add(tenant, func(s *sums) {
		if s.agents == nil {
			s.agents = map[string]struct{}{}
		}
		s.agents[agent] = struct{}{}
	})
}

// take removes and returns everything recorded so far.
func (m *Meter) take() map[key]*sums {
	out := map[key]*sums{}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		taken := sh.m
		if len(taken) > 0 {
			sh.m = make(map[key]*sums, len(taken))
		}
		sh.mu.Unlock()
		if len(taken) > 0 {
			for k, v := range taken {
				out[k] = v
			}
		}
	}
	return out
}
