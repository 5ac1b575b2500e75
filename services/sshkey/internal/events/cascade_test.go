package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/events"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/repo"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testtable"
)

// everyAgent is the agent service at the domain's interface: every agent exists.
type everyAgent struct{}

func (everyAgent) Lookup(context.Context, string, string) error { return nil }

type fixture struct {
	js    jetstream.JetStream
	svc   *sshkey.Service
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
	table := testtable.New(t)
	svc := sshkey.NewService(repo.New(table), everyAgent{}, events.NewPublisher(nc, zerolog.Nop()))
	return &fixture{js: js, svc: svc, table: table}
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

func (f *fixture) count(t *testing.T, tenantID string) int {
	t.Helper()
	page, err := f.table.Query(context.Background(), "T#"+tenantID, store.QueryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}

// populate gives a tenant keys (with their claims, index entries and counter) and a
// pending challenge.
func (f *fixture) populate(t *testing.T, tenantID string, n int) {
	t.Helper()
	ctx := context.Background()
	sc := sshkey.Scope{TenantID: tenantID, Plan: plans.Enterprise}
	agentID := "01J00000000000000000000000"
	for range n {
		if _, err := f.svc.Create(ctx, sc, sshkey.CreateInput{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Challenge(ctx, sshkey.Login{TenantID: tenantID, AgentID: agentID, ClientIP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) deleteTenant(t *testing.T, tenantID string) {
	t.Helper()
	b, _ := json.Marshal(tenantv1.TenantDeleted{TenantID: tenantID, DeletedAt: time.Now().UTC()})
	if _, err := f.js.Publish(context.Background(), tenantv1.SubjectTenantDeleted, b, jetstream.WithMsgID(tenantv1.DeletedMsgID(tenantID))); err != nil {
		t.Fatal(err)
	}
}

func TestCascadeAfterDowntimeAndRedelivery(t *testing.T) {
	t.Parallel()
	f := start(t)
	doomed, kept := "6f1f0e3c-2d4b-4c5a-9e8f-7a6b5c4d3e2f", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	f.populate(t, doomed, 30) // 4 items a key: more than one purge page
	f.populate(t, kept, 2)
	keptItems := f.count(t, kept)

	// Deleted while no consumer runs: the event waits on the stream.
	f.deleteTenant(t, doomed)
	stop := f.runCascade(t)
	f.settled(t)
	stop()
	if n := f.count(t, doomed); n != 0 {
		t.Fatalf("%d items of the deleted tenant left", n)
	}
	if n := f.count(t, kept); n != keptItems {
		t.Fatalf("the other tenant has %d items, had %d", n, keptItems)
	}

	// Run again from scratch: the consumer is recreated and the event redelivered.
	if err := f.js.DeleteConsumer(context.Background(), platform.Stream, events.ConsumerName); err != nil {
		t.Fatal(err)
	}
	f.runCascade(t)
	f.settled(t)
	if n, m := f.count(t, doomed), f.count(t, kept); n != 0 || m != keptItems {
		t.Fatalf("after redelivery: %d and %d items", n, m)
	}
}

func TestCascadeSkipsMalformedEvents(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := context.Background()
	if _, err := f.js.Publish(ctx, tenantv1.SubjectTenantDeleted, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.Publish(ctx, tenantv1.SubjectTenantDeleted, []byte(`{"tenant_id":"../../etc"}`)); err != nil {
		t.Fatal(err)
	}
	tenant := "6f1f0e3c-2d4b-4c5a-9e8f-7a6b5c4d3e20"
	f.populate(t, tenant, 1)
	f.deleteTenant(t, tenant)
	f.runCascade(t)
	f.settled(t)
	if n := f.count(t, tenant); n != 0 {
		t.Fatalf("%d items left after malformed events", n)
	}
}

func TestConsumerConfig(t *testing.T) {
	c := events.ConsumerConfig()
	if c.Durable != "sshkey-cascade" || c.FilterSubject != tenantv1.SubjectTenantDeleted || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.MaxDeliver != -1 || len(c.BackOff) == 0 || c.BackOff[0] != c.AckWait {
		t.Fatalf("consumer config %+v", c)
	}
}
