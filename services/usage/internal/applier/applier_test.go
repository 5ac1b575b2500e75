package applier_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/usage/internal/applier"
	"github.com/artcafe-ai/pubsub/services/usage/internal/repo"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

const (
	tenantX = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantY = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	day1    = "2026-03-01"
	day2    = "2026-03-02"
	agent1  = "01HZY3K9W8X7V6T5S4R3Q2P1N0"
	agent2  = "01HZY3K9W8X7V6T5S4R3Q2P1N1"
)

// tables opens n handles on one new usage table: the embedded store shares one handle
// (one Open per file per process); DynamoDB (DYNAMODB_ENDPOINT set) opens a client per
// replica, as separate processes would.
func tables(t *testing.T, n int) []store.Table {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg := config.Store{
		DataDir: t.TempDir(), DynamoDBEndpoint: os.Getenv("DYNAMODB_ENDPOINT"), AWSRegion: "us-east-1",
		TablePrefix: "test-" + hex.EncodeToString(b) + "-",
	}
	if cfg.DynamoDBEndpoint != "" {
		cfg.Backend = store.BackendDynamoDB
	}
	var out []store.Table
	for i := range n {
		if i > 0 && cfg.DynamoDBEndpoint == "" {
			out = append(out, out[0])
			continue
		}
		tbl, err := store.Open(context.Background(), cfg, repo.Table)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tbl.Close() })
		if want := map[bool]string{true: store.BackendDynamoDB, false: store.BackendEmbedded}[cfg.DynamoDBEndpoint != ""]; store.Backend(tbl) != want {
			t.Fatalf("backend %q, want %q", store.Backend(tbl), want)
		}
		out = append(out, tbl)
	}
	return out
}

type fixture struct {
	js  jetstream.JetStream
	reg *prometheus.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	js, err := jetstream.New(natsrpctest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateStream(context.Background(), usagev1.StreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, reg: prometheus.NewRegistry()}
}

// run starts an applier of domain on a connection of its own (a replica) and returns its
// stop, which waits for it to end.
func (f *fixture) run(t *testing.T, domain applier.Domain) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := applier.New(f.js, domain, f.reg, zerolog.Nop(), applier.WithAckWait(time.Second))
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("applier: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) publish(t *testing.T, subject, msgID string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.Publish(context.Background(), subject, b, jetstream.WithMsgID(msgID)); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) counts(t *testing.T, ev usagev1.CountsEvent) {
	t.Helper()
	f.publish(t, usagev1.SubjectCounts, ev.MsgID(), ev)
}

// sender builds the flushes of one gateway process the way the contract says: each
// entry names the previous batch of this sender that carried its (tenant, day).
type sender struct {
	source string
	batch  uint64
	last   map[string]uint64
	rnd    *mrand.Rand
}

func newSender(source string, seed uint64) *sender {
	return &sender{source: source, last: map[string]uint64{}, rnd: mrand.New(mrand.NewPCG(seed, 1))}
}

type rowKey struct{ tenant, date string }

// flush makes the next batch touching rows, adding what it carries to want.
func (s *sender) flush(want map[rowKey]usage.Day, rows ...rowKey) usagev1.CountsEvent {
	s.batch++
	ev := usagev1.CountsEvent{Source: s.source, Batch: s.batch}
	for _, r := range rows {
		k := r.tenant + r.date
		c := usagev1.Counts{
			APICalls: s.rnd.Int64N(50), MessagesPublished: s.rnd.Int64N(100), MessagesDelivered: s.rnd.Int64N(300),
			BytesIn: s.rnd.Int64N(1 << 20), BytesOut: s.rnd.Int64N(1 << 22),
		}
		peak := s.rnd.Int64N(20)
		ev.Entries = append(ev.Entries, usagev1.CountsEntry{
			TenantID: r.tenant, Date: r.date, Prev: s.last[k], Counts: c, PeakConnections: peak,
			ActiveAgents: []string{agent1},
		})
		s.last[k] = s.batch
		w := want[r]
		w.Counts.Add(c)
		w.PeakConnections = max(w.PeakConnections, peak)
		want[r] = w
	}
	return ev
}

// wantRows waits until the stored rows equal want exactly (counts and peaks), failing
// with the difference when they do not settle.
func wantRows(t *testing.T, rp *repo.Repo, want map[rowKey]usage.Day) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var diff []string
		for k, w := range want {
			d, err := rp.GetDay(context.Background(), k.tenant, k.date)
			if err != nil {
				t.Fatal(err)
			}
			if d.Counts != w.Counts || d.PeakConnections != w.PeakConnections {
				diff = append(diff, fmt.Sprintf("%s %s: %+v peak %d, want %+v peak %d", k.tenant[:8], k.date, d.Counts, d.PeakConnections, w.Counts, w.PeakConnections))
			}
		}
		if len(diff) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows differ:\n%v", diff)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// crashing applies only the first keep entries of the first counts event it sees, then
// hangs until its applier stops (as a process killed between the apply and the ack):
// the event is neither acknowledged nor handed back.
type crashing struct {
	real    *usage.Service
	keep    int
	crashed chan struct{}
	once    sync.Once
}

func (c *crashing) ApplyCounts(ctx context.Context, ev usagev1.CountsEvent) (usage.Result, error) {
	first := false
	c.once.Do(func() { first = true })
	if !first {
		return c.real.ApplyCounts(ctx, ev)
	}
	part := ev
	part.Entries = ev.Entries[:c.keep]
	if _, err := c.real.ApplyCounts(ctx, part); err != nil {
		panic(err)
	}
	close(c.crashed)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (c *crashing) ApplyGauge(ctx context.Context, ev usagev1.GaugeEvent) (bool, error) {
	return c.real.ApplyGauge(ctx, ev)
}

// Counted numbers equal sent numbers: two senders, duplicates (same message id, and the
// same flush again under another id), batches of a sender arriving out of order, an
// applier stopped between applying part of an event and acknowledging it, then two
// replicas at once.
func TestExactUnderRedeliveryReorderAndCrash(t *testing.T) {
	f := newFixture(t)
	tbls := tables(t, 2)
	rpA, rpB := repo.New(tbls[0]), repo.New(tbls[1])
	want := map[rowKey]usage.Day{}
	a, b := newSender("01SOURCEA00000000000000000", 1), newSender("01SOURCEB00000000000000000", 2)
	x1, x2, y1 := rowKey{tenantX, day1}, rowKey{tenantX, day2}, rowKey{tenantY, day1}

	// Phase 1: a replica that crashes after applying one of three entries of its first
	// event; nothing else has been applied yet.
	svc1 := usage.NewService(rpA)
	crash := &crashing{real: svc1, keep: 1, crashed: make(chan struct{})}
	stop1 := f.run(t, crash)
	f.counts(t, a.flush(want, x1, y1, x2))
	select {
	case <-crash.crashed:
	case <-time.After(30 * time.Second):
		t.Fatal("the crashing replica never got the event")
	}
	stop1()

	// Phase 2: while nobody runs, more events: a duplicate by message id, the same
	// flush again under a new id (a redelivery JetStream cannot dedup), and source B's
	// batches 2 and 3 stored before its batch 1.
	evA2 := a.flush(want, x1, y1)
	f.counts(t, evA2)
	f.counts(t, evA2) // same Nats-Msg-Id: dropped by the stream
	again, err := json.Marshal(evA2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.Publish(context.Background(), usagev1.SubjectCounts, again, jetstream.WithMsgID("replay-"+evA2.MsgID())); err != nil {
		t.Fatal(err)
	}
	evB1 := b.flush(want, x1, x2)
	evB2 := b.flush(want, x1)
	evB3 := b.flush(want, x1, x2, y1)
	f.counts(t, evB3)
	f.counts(t, evB2)
	f.counts(t, evB1)

	// Phase 3: two replicas (on DynamoDB, two clients) apply everything, while more
	// flushes arrive from both senders.
	f.run(t, usage.NewService(rpA))
	f.run(t, usage.NewService(rpB))
	for range 15 {
		f.counts(t, a.flush(want, x1, y1))
		f.counts(t, b.flush(want, x1, x2, y1))
	}
	wantRows(t, rpA, want)

	// Everything was acknowledged and counted once; the replay and the partly applied
	// event were skipped where they had been applied.
	if n, err := rpA.CountActive(context.Background(), tenantX, day1); err != nil || n != 1 {
		t.Fatalf("active agents of X on %s = %d, %v; want 1", day1, n, err)
	}
	skipped := metric(t, f.reg, "artcafe_usage_entries_total", "counts", "skipped")
	gaps := metric(t, f.reg, "artcafe_usage_entries_total", "counts", "gap")
	if skipped < 3 || gaps < 1 {
		t.Fatalf("skipped %v, gaps %v: the test did not exercise redelivery and reordering", skipped, gaps)
	}
	waitAcked(t, f.js)
}

// metric sums the counter name over the children whose labels (in name order) start
// with labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			ok := true
			for i, l := range m.Label {
				if i < len(labels) && l.GetValue() != labels[i] {
					ok = false
				}
			}
			if ok {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// waitAcked waits until the applier's consumer has nothing pending or in flight.
func waitAcked(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := js.Consumer(context.Background(), usagev1.Stream, usagev1.DurableApplier)
		if errors.Is(err, jetstream.ErrConsumerNotFound) && time.Now().Before(deadline) {
			// The applier ensures its consumer asynchronously after Run starts.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Gauges: the latest value of the day wins whatever the arrival order; redeliveries and
// malformed events change nothing.
func TestGaugesOutOfOrder(t *testing.T) {
	f := newFixture(t)
	rp := repo.New(tables(t, 1)[0])
	f.run(t, usage.NewService(rp))
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	gauge := func(kind string, v int64, at time.Time) {
		ev := usagev1.GaugeEvent{TenantID: tenantX, Kind: kind, Value: v, At: at}
		f.publish(t, usagev1.SubjectGauge, ev.MsgID(), ev)
	}
	gauge(usagev1.GaugeAgents, 5, base.Add(3*time.Minute)) // the latest, first
	gauge(usagev1.GaugeAgents, 2, base.Add(time.Minute))
	gauge(usagev1.GaugeAgents, 9, base) // earlier, larger: loses
	gauge(usagev1.GaugeChannels, 3, base)
	gauge(usagev1.GaugeChannels, 4, base) // same instant: the larger wins
	gauge(usagev1.GaugeChannels, 1, base)
	f.publish(t, usagev1.SubjectGauge, "bad-1", usagev1.GaugeEvent{TenantID: tenantX, Kind: "bananas", Value: 7, At: base})
	f.publish(t, usagev1.SubjectGauge, "bad-2", map[string]any{"tenant_id": 42})
	waitAcked(t, f.js)
	d, err := rp.GetDay(context.Background(), tenantX, day1)
	if err != nil {
		t.Fatal(err)
	}
	if g := d.Gauges[usagev1.GaugeAgents]; g.V != 5 || !g.At.Equal(base.Add(3*time.Minute)) {
		t.Fatalf("agents gauge = %+v, want 5", g)
	}
	if g := d.Gauges[usagev1.GaugeChannels]; g.V != 4 {
		t.Fatalf("channels gauge = %+v, want 4", g)
	}
	if len(d.Gauges) != 2 {
		t.Fatalf("gauges = %+v", d.Gauges)
	}
	if terms := metric(t, f.reg, "artcafe_usage_events_total", "gauge", "term"); terms != 2 {
		t.Fatalf("%v malformed events dropped, want 2", terms)
	}
}

// A store that fails hands the event back; it is applied once the store answers.
func TestStoreFailureRetries(t *testing.T) {
	f := newFixture(t)
	rp := repo.New(tables(t, 1)[0])
	flaky := &flakyDomain{real: usage.NewService(rp)}
	flaky.failing.Store(true)
	f.run(t, flaky)
	want := map[rowKey]usage.Day{}
	s := newSender("01SOURCEC00000000000000000", 3)
	f.counts(t, s.flush(want, rowKey{tenantX, day1}))
	f.counts(t, s.flush(want, rowKey{tenantX, day1}))
	deadline := time.Now().Add(30 * time.Second)
	for flaky.calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	flaky.failing.Store(false)
	wantRows(t, rp, want)
	waitAcked(t, f.js)
}

type flakyDomain struct {
	real    *usage.Service
	failing atomic.Bool
	calls   atomic.Int64
}

func (d *flakyDomain) ApplyCounts(ctx context.Context, ev usagev1.CountsEvent) (usage.Result, error) {
	d.calls.Add(1)
	if d.failing.Load() {
		return nil, usage.ErrUnavailable
	}
	return d.real.ApplyCounts(ctx, ev)
}

func (d *flakyDomain) ApplyGauge(ctx context.Context, ev usagev1.GaugeEvent) (bool, error) {
	return d.real.ApplyGauge(ctx, ev)
}
