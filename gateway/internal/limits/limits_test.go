package limits

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
)

const tenant = "6f1c2e34-1b2a-4c3d-9e8f-0a1b2c3d4e5f"

// replica is one gateway's Limits on its own NATS connection.
func replica(t *testing.T, ns *server.Server) *Limits {
	t.Helper()
	js, err := jetstream.New(natsrpctest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	// A slow machine must not make a KV round trip count as an outage (fail open).
	l, err := New(js, Config{Log: zerolog.New(zerolog.NewTestWriter(t)), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Two replicas hammering one tenant admit between 90 % and 100 % of the limit, and a
// new window starts afresh.
func TestAPICallsAcrossReplicas(t *testing.T) {
	ns := natsrpctest.Server(t)
	a, b := replica(t, ns), replica(t, ns)
	var clock atomic.Int64
	clock.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	a.now, b.now = now, now

	limit := *planOf(plans.Free).Limits.MaxAPICallsPerMinute // 100
	run := func() (admitted int64) {
		var n atomic.Int64
		var wg sync.WaitGroup
		for _, l := range []*Limits{a, b} {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 2 * limit {
						d := l.APICall(context.Background(), tenant, plans.Free)
						if !d.Limited || d.Limit != limit || d.Reset < 1 || d.Reset > 60 {
							t.Errorf("decision %+v", d)
							return
						}
						if d.Allowed {
							n.Add(1)
						}
					}
				}()
			}
		}
		wg.Wait()
		return n.Load()
	}
	if got := run(); got < limit*9/10 || got > limit {
		t.Fatalf("admitted %d of a limit of %d, want within [%d, %d]", got, limit, limit*9/10, limit)
	}
	// Every unit was spent: both replicas now refuse.
	for _, l := range []*Limits{a, b} {
		if d := l.APICall(context.Background(), tenant, plans.Free); d.Allowed || d.Remaining != 0 {
			t.Fatalf("after the limit: %+v", d)
		}
	}
	clock.Add(60) // the next minute
	if got := run(); got < limit*9/10 || got > limit {
		t.Fatalf("next window admitted %d, want within [%d, %d]", got, limit*9/10, limit)
	}
}

// Remaining counts down and an unlimited plan is never limited.
func TestAPICallRemainingAndUnlimited(t *testing.T) {
	ns := natsrpctest.Server(t)
	l := replica(t, ns)
	first := l.APICall(context.Background(), tenant, plans.Basic)
	second := l.APICall(context.Background(), tenant, plans.Basic)
	if !first.Allowed || first.Limit != 500 || first.Remaining != 499 || second.Remaining != 498 {
		t.Fatalf("first %+v, second %+v", first, second)
	}
	if d := l.APICall(context.Background(), tenant, plans.Enterprise); d.Limited || !d.Allowed {
		t.Fatalf("enterprise: %+v", d)
	}
}

// The daily message quota: no overshoot across replicas, the 429 says when the day
// ends, a refund is spent again.
func TestMessageQuota(t *testing.T) {
	ns := natsrpctest.Server(t)
	a, b := replica(t, ns), replica(t, ns)
	day := time.Date(2030, 1, 2, 23, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return day }
	b.now = a.now
	limit := *planOf(plans.Free).Limits.MaxMessagesPerDay
	var ok atomic.Int64
	var wg sync.WaitGroup
	for _, l := range []*Limits{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					err := l.Allow(context.Background(), tenant, plans.Free, 1)
					if err != nil {
						e, isErr := natsrpc.AsError(err)
						if !isErr || e.Status != 429 || e.Code != natsrpc.CodeMessageQuota || e.RetryAfter != 3600 {
							t.Errorf("refusal %v", err)
						}
						return
					}
					ok.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	// Each replica stops at its own lease's end, so a replica that was refused first
	// leaves at most one lease unspent on the other.
	lease := limit / quotaLeaseDivisor
	if got := ok.Load(); got > limit || got < limit-2*lease {
		t.Fatalf("allowed %d of %d", got, limit)
	}
	a.Refund(tenant, plans.Free, 1)
	if err := a.Allow(context.Background(), tenant, plans.Free, 1); err != nil {
		t.Fatalf("a refunded message is not spendable: %v", err)
	}
	if err := a.Allow(context.Background(), "00000000-0000-4000-8000-000000000000", plans.Enterprise, 1); err != nil {
		t.Fatal(err)
	}
}

// With JetStream gone, calls are allowed (fail open) and counted as such.
func TestFailOpen(t *testing.T) {
	ns := natsrpctest.Server(t)
	l := replica(t, ns)
	l.rate.timeout = 200 * time.Millisecond
	ns.Shutdown()
	for range 3 {
		if d := l.APICall(context.Background(), tenant, plans.Free); !d.Allowed {
			t.Fatalf("refused while the KV is down: %+v", d)
		}
	}
}

// connReplica is one gateway's connection counter.
func connReplica(t *testing.T, ns *server.Server, source string, peak func(string, int64)) *Connections {
	t.Helper()
	js, err := jetstream.New(natsrpctest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnections(js, ConnectionsConfig{Source: source, Peak: peak, Timeout: 5 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(c.Close)
	return c
}

// Two gateways admitting at once never hold more than the limit (+1 allowed by the
// SPEC; the protocol gives 0); releases make room again; the peak is the cluster's.
func TestConnectionsAcrossGateways(t *testing.T) {
	ns := natsrpctest.Server(t)
	var peakMu sync.Mutex
	peak := int64(0)
	rec := func(_ string, n int64) { peakMu.Lock(); peak = max(peak, n); peakMu.Unlock() }
	a := connReplica(t, ns, "01GATEWAYA000000000000000A", rec)
	b := connReplica(t, ns, "01GATEWAYB000000000000000B", rec)
	const limit = 5
	var held atomic.Int64
	var maxHeld atomic.Int64
	var wg sync.WaitGroup
	for _, c := range []*Connections{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					err := c.Acquire(context.Background(), tenant, limit)
					if err != nil {
						if e, ok := natsrpc.AsError(err); !ok || e.Code != natsrpc.CodeConnectionLimit || e.RetryAfter == 0 {
							t.Errorf("refusal %v", err)
						}
						continue
					}
					n := held.Add(1)
					for {
						m := maxHeld.Load()
						if n <= m || maxHeld.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(time.Millisecond)
					held.Add(-1)
					c.Release(tenant)
				}
			}()
		}
	}
	wg.Wait()
	if m := maxHeld.Load(); m > limit+1 || m == 0 {
		t.Fatalf("held at most %d sessions, limit %d", m, limit)
	}
	// Fill the cap from both sides; the next admit anywhere is refused.
	for i := range limit {
		c := a
		if i%2 == 1 {
			c = b
		}
		if err := c.Acquire(context.Background(), tenant, limit); err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
	}
	for _, c := range []*Connections{a, b} {
		if err := c.Acquire(context.Background(), tenant, limit); err == nil {
			t.Fatal("admitted over the cap")
		}
	}
	peakMu.Lock()
	if peak != limit {
		t.Errorf("peak %d, want %d", peak, limit)
	}
	peakMu.Unlock()
	a.Release(tenant)
	waitFor(t, func() bool { return b.Count(tenant) == limit-1 })
	if err := b.Acquire(context.Background(), tenant, limit); err != nil {
		t.Fatalf("after a release elsewhere: %v", err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// planOf is the plan of tier (a tier not in the table gets the default plan's limits).
func planOf(tier string) plans.Plan {
	p, ok := plans.Get(tier)
	if !ok {
		p, _ = plans.Get(plans.DefaultTier)
	}
	return p
}
