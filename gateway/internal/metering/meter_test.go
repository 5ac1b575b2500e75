package metering

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

const (
	tenantA = "11111111-1111-4111-8111-111111111111"
	tenantB = "22222222-2222-4222-8222-222222222222"
)

func newTestMeter(t *testing.T, maxBytes int) (*Meter, jetstream.JetStream) {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(js, nc, Config{MaxEventBytes: maxBytes, PublishTimeout: 500 * time.Millisecond, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	tjs, err := jetstream.New(natsrpctest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	return m, tjs
}

// events reads every CountsEvent stored so far, in order.
func events(t *testing.T, js jetstream.JetStream) []usagev1.CountsEvent {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, usagev1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []usagev1.CountsEvent
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev usagev1.CountsEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != ev.MsgID() {
			t.Fatalf("event %d has Nats-Msg-Id %q", ev.Batch, m.Header.Get(jetstream.MsgIDHeader))
		}
		out = append(out, ev)
	}
	return out
}

// check verifies the chain of a source's events (batches 1..n in order, each entry's
// Prev the last earlier batch with its key, a key once per batch) and returns the
// totals per key.
func check(t *testing.T, evs []usagev1.CountsEvent) (map[key]usagev1.Counts, map[key]map[string]bool, map[key]int64) {
	t.Helper()
	last := map[key]uint64{}
	counts, agents, peaks := map[key]usagev1.Counts{}, map[key]map[string]bool{}, map[key]int64{}
	for i, ev := range evs {
		if ev.Batch != uint64(i+1) || ev.Source != evs[0].Source {
			t.Fatalf("event %d is batch %d of %s", i, ev.Batch, ev.Source)
		}
		seen := map[key]bool{}
		for _, e := range ev.Entries {
			k := key{e.TenantID, e.Date}
			if seen[k] {
				t.Fatalf("batch %d carries %v twice", ev.Batch, k)
			}
			seen[k] = true
			if e.Prev != last[k] {
				t.Fatalf("batch %d %v: prev %d, want %d", ev.Batch, k, e.Prev, last[k])
			}
			last[k] = ev.Batch
			c := counts[k]
			c.Add(e.Counts)
			counts[k] = c
			if agents[k] == nil {
				agents[k] = map[string]bool{}
			}
			for _, a := range e.ActiveAgents {
				agents[k][a] = true
			}
			peaks[k] = max(peaks[k], e.PeakConnections)
		}
	}
	return counts, agents, peaks
}

// Counts sent equal counts recorded across a JetStream outage: the failed batch is
// resent unchanged, facts recorded meanwhile go into the next one.
func TestFlushAcrossOutage(t *testing.T) {
	m, js := newTestMeter(t, 0)
	ctx := context.Background()
	today := m.today()
	m.APICall(tenantA, 10, 100)
	m.APICall(tenantB, 1, 2)
	m.Published(tenantA, 3)
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// Outage: the stream no longer takes the subject.
	s, err := js.Stream(ctx, usagev1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	broken := cfg
	broken.Subjects = []string{"usage.elsewhere.>"}
	if _, err := js.UpdateStream(ctx, broken); err != nil {
		t.Fatal(err)
	}
	m.Delivered(tenantA, 5, 500)
	m.Connections(tenantA, 4)
	m.ActiveAgent(tenantA, "01AGENT0000000000000000001")
	if err := m.Flush(ctx); err == nil {
		t.Fatal("flush succeeded during the outage")
	}
	first := m.f.pending[0].data
	m.APICall(tenantA, 7, 70) // after the cut: the next batch
	m.Received(tenantB, 9)
	if err := m.Flush(ctx); err == nil {
		t.Fatal("flush succeeded during the outage")
	}
	if len(m.f.pending) != 1 || string(m.f.pending[0].data) != string(first) || m.f.pending[0].ev.Batch != 2 {
		t.Fatalf("the failed batch changed: %d pending", len(m.f.pending))
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for range 2 { // batch 2, then batch 3
		if err := m.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Flush(ctx); err != nil { // nothing left: no empty batch
		t.Fatal(err)
	}
	evs := events(t, js)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	counts, agents, peaks := check(t, evs)
	a, b := key{tenantA, today}, key{tenantB, today}
	wantA := usagev1.Counts{APICalls: 2, MessagesPublished: 3, MessagesDelivered: 5, BytesIn: 17, BytesOut: 670}
	wantB := usagev1.Counts{APICalls: 1, BytesIn: 10, BytesOut: 2}
	if counts[a] != wantA || counts[b] != wantB {
		t.Fatalf("sent A %+v B %+v, want %+v %+v", counts[a], counts[b], wantA, wantB)
	}
	if peaks[a] != 4 || !agents[a]["01AGENT0000000000000000001"] {
		t.Fatalf("peak %d agents %v", peaks[a], agents[a])
	}
}

// A flush with more than fits in one event is split into several batches, each below
// the bound, each key once per batch, and nothing is lost.
func TestFlushSplitsBigBatches(t *testing.T) {
	const maxBytes = 4 << 10
	m, js := newTestMeter(t, maxBytes)
	today := m.today()
	const tenants = 60
	for i := range tenants {
		id := fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
		m.APICall(id, i, 1)
	}
	for i := range 400 {
		m.ActiveAgent(tenantA, fmt.Sprintf("01AGENT%019d", i))
	}
	m.Published(tenantA, 2)
	if err := m.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, js)
	if len(evs) < 3 {
		t.Fatalf("%d events, want a split", len(evs))
	}
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		if len(b) > maxBytes {
			t.Fatalf("batch %d is %d bytes", ev.Batch, len(b))
		}
	}
	counts, agents, _ := check(t, evs)
	for i := range tenants {
		k := key{fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), today}
		if counts[k].APICalls != 1 || counts[k].BytesIn != int64(i) {
			t.Fatalf("%v: %+v", k, counts[k])
		}
	}
	a := key{tenantA, today}
	if len(agents[a]) != 400 || counts[a].MessagesPublished != 2 {
		t.Fatalf("tenant A: %d agents, %+v", len(agents[a]), counts[a])
	}
}

// Close flushes what is left.
func TestCloseFlushes(t *testing.T) {
	m, js := newTestMeter(t, 0)
	m.Start()
	m.APICall(tenantA, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	counts, _, _ := check(t, events(t, js))
	if counts[key{tenantA, m.today()}].APICalls != 1 {
		t.Fatalf("not flushed: %+v", counts)
	}
}

// BenchmarkRecord is the request path's cost: one API call recorded.
func BenchmarkRecord(b *testing.B) {
	m := newMeter(time.Now)
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08d-0000-4000-8000-000000000000", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.APICall(ids[i%len(ids)], 200, 300)
			i++
		}
	})
}
