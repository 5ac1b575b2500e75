package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/channel/internal/stream"
	"github.com/artcafe-ai/pubsub/services/channel/internal/streamtest"
)

const (
	tenantA = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantB = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
)

type env struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func newEnv(t testing.TB) env {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return env{nc: nc, js: js}
}

func (e env) open(t testing.TB, opts ...stream.Option) *stream.Stream {
	t.Helper()
	s, err := stream.Open(context.Background(), e.nc, e.js, zerolog.Nop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newID() string { return ulid.Make().String() }

func seqsOf(t testing.TB, page channel.HistoryPage) []uint64 {
	t.Helper()
	out := make([]uint64, len(page.Messages))
	for i, raw := range page.Messages {
		var m messagev1.Message
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("message %d: %v: %s", i, err, raw)
		}
		out[i] = m.Seq
	}
	return out
}

// The stream is created from the contract's configuration, and a changed one is put
// back at the next start, keeping its replica count.
func TestEnsure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	s, err := stream.Ensure(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	want := messagev1.StreamConfig(1)
	if cfg.Name != want.Name || fmt.Sprint(cfg.Subjects) != fmt.Sprint(want.Subjects) || !cfg.AllowMsgTTL || !cfg.AllowDirect ||
		!cfg.DenyDelete || cfg.AllowRollup || cfg.RePublish == nil || cfg.RePublish.Destination != want.RePublish.Destination || cfg.Duplicates != want.Duplicates {
		t.Fatalf("stream config %+v", cfg)
	}
	cfg.Description = "changed by hand"
	cfg.MaxMsgSize = 1024
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s, err = stream.Ensure(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config; got.Description != want.Description || got.MaxMsgSize != want.MaxMsgSize || got.Replicas != 1 {
		t.Fatalf("config not restored: %+v", got)
	}
}

// A before_seq read returns exactly the limit messages just below it, whatever the
// channel's share of the stream: dense, sparse, or dense in bursts far apart (which
// defeats interpolation alone). Checked against every message of the channel.
func TestHistoryBelow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.open(t)
	ch, noise := newID(), newID()
	var mine []uint64
	publish := func(n int, share float64) {
		for range n {
			if rand.Float64() < share {
				mine = append(mine, streamtest.Publish(t, e.js, tenantA, ch, `{"m":1}`, streamtest.Options{}).Seq)
			} else {
				streamtest.Publish(t, e.js, tenantA, noise, `{"n":1}`, streamtest.Options{})
			}
		}
	}
	publish(300, 1)     // dense
	publish(1500, 0.01) // sparse
	publish(200, 1)     // a burst
	publish(1500, 0)    // a long gap
	publish(150, 0.5)   // even
	last := mine[len(mine)-1]

	ctx := context.Background()
	check := func(before uint64, limit int) {
		t.Helper()
		var want []uint64
		for _, seq := range mine {
			if seq < before {
				want = append(want, seq)
			}
		}
		want = want[max(0, len(want)-limit):]
		page, err := s.History(ctx, tenantA, ch, channel.HistoryQuery{BeforeSeq: before, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqsOf(t, page); fmt.Sprint(got) != fmt.Sprint(want) || page.NextAfterSeq != 0 {
			t.Fatalf("before %d limit %d: %v (next %d), want %v", before, limit, got, page.NextAfterSeq, want)
		}
	}
	for _, limit := range []int{1, 3, 50, 100} {
		for _, before := range []uint64{1, mine[0], mine[0] + 1, mine[150], 310, 900, 1700, 1900, 2100, 3000, 3400, last, last + 1, 1 << 50} {
			check(before, limit)
		}
		for range 10 {
			check(1+rand.Uint64N(last+10), limit)
		}
	}
}

// Forward reads stop at before_seq and page with NextAfterSeq only when another message
// follows inside the range.
func TestHistoryForward(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.open(t)
	ch := newID()
	var seqs []uint64
	for i := range 30 {
		seqs = append(seqs, streamtest.Publish(t, e.js, tenantA, ch, `{"i":1}`, streamtest.Options{}).Seq)
		if i%3 == 0 {
			streamtest.Publish(t, e.js, tenantA, newID(), `{"other":1}`, streamtest.Options{})
		}
	}
	ctx := context.Background()
	var got []uint64
	q := channel.HistoryQuery{AfterSeq: seqs[4], BeforeSeq: seqs[25], Limit: 7}
	for {
		page, err := s.History(ctx, tenantA, ch, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			t.Fatal("an empty page")
		}
		got = append(got, seqsOf(t, page)...)
		if page.NextAfterSeq == 0 {
			break
		}
		q.AfterSeq = page.NextAfterSeq
	}
	if fmt.Sprint(got) != fmt.Sprint(seqs[5:25]) {
		t.Fatalf("paged %v, want %v", got, seqs[5:25])
	}
}

// A stored message whose data is not a JSON object (never from the gateway) is skipped,
// not a broken page.
func TestHistorySkipsNonObjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.open(t)
	ch := newID()
	a := streamtest.Publish(t, e.js, tenantA, ch, `{"ok":1}`, streamtest.Options{})
	streamtest.Publish(t, e.js, tenantA, ch, `[1,2]`, streamtest.Options{})
	c := streamtest.Publish(t, e.js, tenantA, ch, " {\"ok\":2}\n", streamtest.Options{})
	page, err := s.History(context.Background(), tenantA, ch, channel.HistoryQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(t, page); fmt.Sprint(got) != fmt.Sprint([]uint64{a.Seq, c.Seq}) {
		t.Fatalf("read %v", got)
	}
}

// Stats are reused for the TTL, then read again; a purge drops them at once.
func TestStatsCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	s := e.open(t, stream.WithClock(clock))
	ctx := context.Background()
	c1, c2, empty := newID(), newID(), newID()
	m := streamtest.Publish(t, e.js, tenantA, c1, `{"x":1}`, streamtest.Options{})
	streamtest.Publish(t, e.js, tenantB, c1, `{"x":1}`, streamtest.Options{}) // another tenant, same id

	st := s.Stats(ctx, tenantA, []string{c1, c2, empty})
	if st[c1].TotalMessages != 1 || st[c1].LastMessageAt == nil || !st[c1].LastMessageAt.Equal(m.Timestamp) || len(st) != 1 {
		t.Fatalf("stats %+v", st)
	}
	streamtest.Publish(t, e.js, tenantA, c1, `{"x":2}`, streamtest.Options{})
	m2 := streamtest.Publish(t, e.js, tenantA, c2, `{"x":2}`, streamtest.Options{})
	if st := s.Stats(ctx, tenantA, []string{c1, c2}); st[c1].TotalMessages != 1 || len(st) != 1 {
		t.Fatalf("stats within the TTL %+v, want the cached ones", st)
	}
	advance(stream.StatsTTL)
	st = s.Stats(ctx, tenantA, []string{c1, c2})
	if st[c1].TotalMessages != 2 || st[c2].TotalMessages != 1 || !st[c2].LastMessageAt.Equal(m2.Timestamp) {
		t.Fatalf("stats after the TTL %+v", st)
	}
	if err := s.PurgeChannel(ctx, tenantA, c1); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(ctx, tenantA, []string{c1, c2}); len(st) != 1 || st[c2].TotalMessages != 1 {
		t.Fatalf("stats after a purge %+v", st)
	}
	// The other tenant was never touched.
	if st := s.Stats(ctx, tenantB, []string{c1}); st[c1].TotalMessages != 1 {
		t.Fatalf("tenant B %+v", st)
	}
}

type bounds struct {
	mu sync.Mutex
	m  map[string]int64 // channel → max; absent: no such channel
}

func (b *bounds) MaxMessages(_ context.Context, _, channelID string) (int64, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, ok := b.m[channelID]
	return n, ok, nil
}

// The messages of a channel that does not exist are purged once it has been missing
// for the grace period; existing channels are trimmed to their bound.
func TestTrimmerOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.open(t, stream.WithStatsTTL(0))
	kept, trimmed, orphan := newID(), newID(), newID()
	b := &bounds{m: map[string]int64{kept: 0, trimmed: 3}}
	for range 5 {
		for _, ch := range []string{kept, trimmed, orphan} {
			streamtest.Publish(t, e.js, tenantA, ch, `{"x":1}`, streamtest.Options{})
		}
	}
	now := time.Now()
	tr := stream.NewTrimmer(s, b, zerolog.Nop(), stream.TrimClock(func() time.Time { return now }))
	ctx := context.Background()
	counts := func() map[string]int64 {
		st := s.Stats(ctx, tenantA, []string{kept, trimmed, orphan})
		return map[string]int64{"kept": st[kept].TotalMessages, "trimmed": st[trimmed].TotalMessages, "orphan": st[orphan].TotalMessages}
	}
	if err := tr.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c["kept"] != 5 || c["trimmed"] != 3 || c["orphan"] != 5 {
		t.Fatalf("after the first sweep %v", c)
	}
	now = now.Add(stream.OrphanGrace / 2)
	if err := tr.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c["orphan"] != 5 {
		t.Fatalf("orphan purged before its grace: %v", c)
	}
	now = now.Add(stream.OrphanGrace)
	if err := tr.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(); c["kept"] != 5 || c["trimmed"] != 3 || c["orphan"] != 0 {
		t.Fatalf("after the grace %v", c)
	}
}
