package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/events"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/testtable"
)

type fixture struct {
	js   jetstream.JetStream
	svc  *tenant.Service
	repo *repo.Repo
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
	rp := repo.New(testtable.New(t))
	return &fixture{js: js, svc: tenant.NewService(rp, events.NewPublisher(nc, js, zerolog.Nop())), repo: rp}
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

func user(id string) tenant.Actor { return tenant.Actor{Kind: natsrpc.KindUser, ID: id} }

func TestCascadeAfterDowntimeAndRedelivery(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := context.Background()
	in := tenant.CreateInput{Name: "T", AdminEmail: "a@b.test"}
	doomed, key, err := f.svc.Create(ctx, user("o"), in)
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := f.svc.Create(ctx, user("o"), in)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []tenant.MemberInput{{UserID: "co", Role: natsrpc.RoleOwner}, {UserID: "v", Role: natsrpc.RoleViewer}} {
		if _, err := f.svc.AddMember(ctx, user("o"), doomed.ID, m); err != nil {
			t.Fatal(err)
		}
	}

	// Deleted while no consumer runs: the event waits on the stream.
	if err := f.svc.Delete(ctx, user("o"), doomed.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.GetTenant(ctx, doomed.ID); err != nil {
		t.Fatalf("the tenant item should remain until the cascade runs: %v", err)
	}

	stop := f.runCascade(t)
	f.settled(t)
	stop()
	gone := func() {
		t.Helper()
		if _, err := f.repo.GetTenant(ctx, doomed.ID); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("tenant item: %v", err)
		}
		if ms, _, err := f.repo.ListMembers(ctx, doomed.ID, 100, ""); err != nil || len(ms) != 0 {
			t.Fatalf("member items: %d, %v", len(ms), err)
		}
		for _, u := range []string{"o", "co", "v"} {
			ids, _, _ := f.repo.ListUserIndex(ctx, u, 100, "")
			for _, id := range ids {
				if id == doomed.ID {
					t.Fatalf("index item of %s left", u)
				}
			}
		}
		if _, err := f.repo.GetAPIKey(ctx, tenant.HashAPIKey(key)); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("API key item: %v", err)
		}
		if o, _ := f.repo.Owned(ctx, "o"); o != 1 {
			t.Fatalf("owned o = %d, want 1", o)
		}
		if co, _ := f.repo.Owned(ctx, "co"); co != 0 {
			t.Fatalf("owned co = %d, want 0", co)
		}
		if _, err := f.svc.Get(ctx, user("o"), kept.ID); err != nil {
			t.Fatalf("the other tenant: %v", err)
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
	if _, err := f.js.Publish(ctx, tenantv1.SubjectTenantDeleted, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.Publish(ctx, tenantv1.SubjectTenantDeleted, []byte(`{"tenant_id":"../../etc"}`)); err != nil {
		t.Fatal(err)
	}
	tn, _, err := f.svc.Create(ctx, user("o"), tenant.CreateInput{Name: "T", AdminEmail: "a@b.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(ctx, user("o"), tn.ID); err != nil {
		t.Fatal(err)
	}
	f.runCascade(t)
	f.settled(t)
	if _, err := f.repo.GetTenant(ctx, tn.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("tenant after malformed events: %v", err)
	}
}

func TestConsumerConfig(t *testing.T) {
	c := events.ConsumerConfig()
	if c.Durable != "tenant-cascade" || c.FilterSubject != tenantv1.SubjectTenantDeleted || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.MaxDeliver != -1 || len(c.BackOff) == 0 || c.BackOff[0] != c.AckWait {
		t.Fatalf("consumer config %+v", c)
	}
}
