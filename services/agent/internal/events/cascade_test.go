package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/events"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeys"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeytest"
	"github.com/artcafe-ai/pubsub/services/agent/internal/testtable"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

const (
	doomed = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	kept   = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
)

type fixture struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	svc   *agent.Service
	table store.Table
}

func start(t *testing.T) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := platform.EnsureStream(context.Background(), js); err != nil {
		t.Fatal(err)
	}
	sshkeytest.Start(t, natsrpctest.Connect(t, ns))
	table := testtable.New(t)
	svc := agent.NewService(repo.New(table), sshkeys.New(natsrpc.NewClient(nc)), events.NewPublisher(nc, zerolog.Nop()))
	return &fixture{nc: nc, js: js, svc: svc, table: table}
}

// runCascade runs the consumer until the returned stop is called (or the test ends).
func (f *fixture) runCascade(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- events.NewCascade(f.js, f.svc.Purge, zerolog.Nop()).Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cascade: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// settled waits until the cascade consumer has acknowledged everything on the stream.
func (f *fixture) settled(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := f.js.Consumer(context.Background(), platform.Stream, events.ConsumerName)
		if err == nil {
			info, err := c.Info(context.Background())
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the cascade did not acknowledge every event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *fixture) items(t *testing.T, tenantID string) int {
	t.Helper()
	page, err := f.table.Query(context.Background(), "T#"+tenantID, store.QueryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}

func (f *fixture) deleteTenant(t *testing.T, tenantID string) {
	t.Helper()
	b, _ := json.Marshal(tenantv1.TenantDeleted{TenantID: tenantID, DeletedAt: time.Now().UTC()})
	if _, err := f.js.Publish(context.Background(), tenantv1.SubjectTenantDeleted, b, jetstream.WithMsgID(tenantv1.DeletedMsgID(tenantID))); err != nil {
		t.Fatal(err)
	}
}

func member(tenantID string) agent.Actor {
	return agent.Actor{TenantID: tenantID, Kind: natsrpc.KindUser, ID: "u", Role: natsrpc.RoleMember, Plan: plans.Enterprise}
}

func TestCascadeAfterDowntimeAndRedelivery(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := context.Background()
	// Enough agents for several purge pages: items = agents × (item + 3 indexes) + counters.
	for _, tenantID := range []string{doomed, kept} {
		for i := range 40 {
			a, _, err := f.svc.Create(ctx, member(tenantID), agentv1.CreateBody{Name: "a", Capabilities: []agentv1.Capability{{Name: "c"}}})
			if err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				if _, err := f.svc.SetStatus(ctx, member(tenantID), a.ID, agentv1.StatusBusy); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	keptItems := f.items(t, kept)
	if n := f.items(t, doomed); n < 160 {
		t.Fatalf("%d items to purge: fewer than expected", n)
	}

	// Deleted while no consumer runs: the event waits on the stream.
	f.deleteTenant(t, doomed)
	stop := f.runCascade(t)
	f.settled(t)
	stop()
	gone := func() {
		t.Helper()
		if n := f.items(t, doomed); n != 0 {
			t.Fatalf("%d items of the deleted tenant left", n)
		}
		if n := f.items(t, kept); n != keptItems {
			t.Fatalf("the other tenant has %d items, had %d", n, keptItems)
		}
		sum, err := f.svc.StatusSummary(ctx, member(doomed))
		if err != nil || sum != (agentv1.StatusSummary{}) {
			t.Fatalf("summary of the deleted tenant: %+v %v", sum, err)
		}
	}
	gone()

	// Run it again from scratch: the consumer is recreated and the event redelivered.
	if err := f.js.DeleteConsumer(ctx, platform.Stream, events.ConsumerName); err != nil {
		t.Fatal(err)
	}
	f.runCascade(t)
	f.settled(t)
	gone()
}

func TestCascadeSkipsMalformedEvents(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := context.Background()
	for _, b := range []string{"garbage", `{"tenant_id":"../../etc"}`} {
		if _, err := f.js.Publish(ctx, tenantv1.SubjectTenantDeleted, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.svc.Create(ctx, member(doomed), agentv1.CreateBody{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	f.deleteTenant(t, doomed)
	f.runCascade(t)
	f.settled(t)
	if n := f.items(t, doomed); n != 0 {
		t.Fatalf("%d items left after malformed events", n)
	}
}

func TestConsumerConfig(t *testing.T) {
	c := events.ConsumerConfig()
	if c.Durable != "agent-cascade" || c.FilterSubject != tenantv1.SubjectTenantDeleted || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.MaxDeliver != -1 || len(c.BackOff) == 0 || c.BackOff[0] != c.AckWait {
		t.Fatalf("consumer config %+v", c)
	}
}

// The deletion hint reaches subscribers.
func TestAgentDeletedHint(t *testing.T) {
	t.Parallel()
	f := start(t)
	got := make(chan *nats.Msg, 1)
	sub, err := f.nc.ChanSubscribe(agentv1.SubjectAgentChanged, got)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	events.NewPublisher(f.nc, zerolog.Nop()).AgentDeleted(context.Background(), doomed, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	select {
	case m := <-got:
		var ev agentv1.AgentChanged
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev != (agentv1.AgentChanged{TenantID: doomed, AgentID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", Change: agentv1.ChangeDeleted}) {
			t.Fatalf("hint %s: %v", m.Data, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no hint")
	}
}
