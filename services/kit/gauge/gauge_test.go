package gauge_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/gauge"
)

const (
	tenantX = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantY = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
)

func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natsrpctest.Connect(t, natsrpctest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// stored reads the gauge events in the stream, waiting until there are n.
func stored(t *testing.T, js jetstream.JetStream, n int) []usagev1.GaugeEvent {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := js.Stream(ctx, usagev1.Stream)
		if err == nil {
			info, ierr := s.Info(ctx)
			if ierr == nil && int(info.State.Msgs) >= n {
				var out []usagev1.GaugeEvent
				for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
					m, err := s.GetMsg(ctx, seq)
					if err != nil {
						t.Fatal(err)
					}
					var ev usagev1.GaugeEvent
					if err := json.Unmarshal(m.Data, &ev); err != nil {
						t.Fatal(err)
					}
					if m.Subject != usagev1.SubjectGauge || m.Header.Get("Nats-Msg-Id") != ev.MsgID() {
						t.Fatalf("event on %s with id %q", m.Subject, m.Header.Get("Nats-Msg-Id"))
					}
					out = append(out, ev)
				}
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d gauge events stored (%v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// Reports made before Run (and before the stream exists) are sent once it runs, the
// latest value of a gauge replacing an unsent one; later reports follow.
func TestReportsReachTheStream(t *testing.T) {
	js := newJS(t)
	clk := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	r := gauge.New(js, zerolog.Nop(), gauge.WithClock(clk.now))
	r.Report(tenantX, usagev1.GaugeAgents, 1)
	r.Report(tenantX, usagev1.GaugeAgents, 2) // replaces 1: only the latest matters
	r.Report(tenantY, usagev1.GaugeChannels, -1)
	if r.Pending() != 2 {
		t.Fatalf("%d pending, want 2", r.Pending())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	evs := stored(t, js, 2)
	if evs[0].TenantID != tenantX || evs[0].Value != 2 || evs[1].TenantID != tenantY || evs[1].Value != 0 || evs[1].Kind != usagev1.GaugeChannels {
		t.Fatalf("events %+v", evs)
	}
	r.Report(tenantX, usagev1.GaugeSSHKeys, 4)
	if evs := stored(t, js, 3); evs[2].Kind != usagev1.GaugeSSHKeys || evs[2].Value != 4 {
		t.Fatalf("third event %+v", evs[2])
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The queue is bounded (Report never waits), and what is queued at shutdown is sent.
func TestBoundedQueueAndFlushAtShutdown(t *testing.T) {
	js := newJS(t)
	r := gauge.New(js, zerolog.Nop(), gauge.WithMaxPending(2))
	r.Report(tenantX, usagev1.GaugeAgents, 1)
	r.Report(tenantX, usagev1.GaugeChannels, 1)
	r.Report(tenantY, usagev1.GaugeAgents, 1) // dropped: the queue is full
	if r.Pending() != 2 {
		t.Fatalf("%d pending, want 2", r.Pending())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before it ever ran: it still flushes
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if evs := stored(t, js, 2); len(evs) != 2 {
		t.Fatalf("%d events stored, want 2", len(evs))
	}
	if r.Pending() != 0 {
		t.Fatalf("%d left after the flush", r.Pending())
	}
}
