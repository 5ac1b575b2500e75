package cascade_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/cascade/cascadetest"
)

const (
	doomed = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	other  = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	third  = "3c9e1f7a-5b2d-4e8c-a1f6-7d0b9c2e4a53"
)

// purges is a Purger that records its calls; fail, when set, decides whether the n-th
// call for a tenant (from 1) fails.
type purges struct {
	mu    sync.Mutex
	calls []string
	fail  func(tenantID string, n int) error
}

func (p *purges) purge(ctx context.Context, tenantID string) error {
	if zerolog.Ctx(ctx).GetLevel() == zerolog.Disabled {
		return errors.New("the purge context carries no logger")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, tenantID)
	if p.fail != nil {
		n := 0
		for _, id := range p.calls {
			if id == tenantID {
				n++
			}
		}
		return p.fail(tenantID, n)
	}
	return nil
}

func (p *purges) count(tenantID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range p.calls {
		if id == tenantID {
			n++
		}
	}
	return n
}

func (p *purges) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func jetStream(t *testing.T, withStream bool) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(natsrpctest.Connect(t, natsrpctest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	if withStream {
		if _, err := platform.EnsureStream(context.Background(), js, 1); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func publish(t *testing.T, js jetstream.JetStream, data string) {
	t.Helper()
	if _, err := js.Publish(context.Background(), tenantv1.SubjectTenantDeleted, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// run runs service's consumer until the returned stop is called (or the test ends);
// stop fails the test unless Run returns nil.
func run(t *testing.T, js jetstream.JetStream, service string, purge cascade.Purger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := zerolog.New(zerolog.NewTestWriter(t))
	go func() { done <- cascade.New(js, service, purge, log).Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("cascade: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("the cascade did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestConsumerConfig(t *testing.T) {
	c := cascade.ConsumerConfig("agent")
	if c.Durable != "agent-cascade" || cascade.ConsumerName("agent") != c.Durable ||
		c.FilterSubject != tenantv1.SubjectTenantDeleted || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.DeliverPolicy != jetstream.DeliverAllPolicy || c.MaxDeliver != -1 ||
		len(c.BackOff) != 0 || c.AckWait <= 0 || c.Description == "" {
		t.Fatalf("consumer config %+v", c)
	}
}

// Events sent while no consumer runs wait on the stream; a consumer created again from
// scratch gets them again, and the purge runs again (purges are idempotent).
func TestEventsSentWhileTheConsumerIsDown(t *testing.T) {
	t.Parallel()
	js := jetStream(t, true)
	cascadetest.DeleteTenant(t, js, doomed)
	cascadetest.DeleteTenant(t, js, other)

	p := &purges{}
	stop := run(t, js, "svc", p.purge)
	cascadetest.Settled(t, js, "svc")
	stop()
	if got := p.all(); !slices.Equal(got, []string{doomed, other}) {
		t.Fatalf("purged %v, want each tenant once, in order", got)
	}

	// A restart goes on where the consumer was: nothing is purged twice …
	stop = run(t, js, "svc", p.purge)
	cascadetest.DeleteTenant(t, js, third)
	cascadetest.Settled(t, js, "svc")
	stop()
	if got := p.all(); !slices.Equal(got, []string{doomed, other, third}) {
		t.Fatalf("after a restart: purged %v", got)
	}
	// … and a consumer recreated from scratch replays the stream.
	if err := js.DeleteConsumer(context.Background(), platform.Stream, cascade.ConsumerName("svc")); err != nil {
		t.Fatal(err)
	}
	p2 := &purges{}
	run(t, js, "svc", p2.purge)
	cascadetest.Settled(t, js, "svc")
	if got := p2.all(); !slices.Equal(got, []string{doomed, other, third}) {
		t.Fatalf("replay purged %v", got)
	}
}

// Each service has its own durable consumer, so every service purges every deleted
// tenant.
func TestEachServicePurges(t *testing.T) {
	t.Parallel()
	js := jetStream(t, true)
	a, b := &purges{}, &purges{}
	run(t, js, "a", a.purge)
	run(t, js, "b", b.purge)
	cascadetest.DeleteTenant(t, js, doomed)
	cascadetest.Settled(t, js, "a")
	cascadetest.Settled(t, js, "b")
	if a.count(doomed) != 1 || b.count(doomed) != 1 {
		t.Fatalf("purges: a %v, b %v", a.all(), b.all())
	}
}

// A failed purge is retried, with short growing delays (1 s, 2 s: no server BackOff
// stretches them); the other tenants are not held up.
func TestFailedPurgeIsRetried(t *testing.T) {
	t.Parallel()
	js := jetStream(t, true)
	p := &purges{fail: func(tenantID string, n int) error {
		if tenantID == doomed && n <= 2 {
			return errors.New("store unavailable")
		}
		return nil
	}}
	run(t, js, "svc", p.purge)
	cascadetest.DeleteTenant(t, js, doomed)
	cascadetest.DeleteTenant(t, js, other)
	cascadetest.Settled(t, js, "svc")
	if p.count(doomed) != 3 || p.count(other) != 1 {
		t.Fatalf("purges %v: want the failing tenant three times, the other once", p.all())
	}
}

// Events that cannot be purged (not JSON, no valid tenant id) are dropped, not retried,
// and the events after them are handled.
func TestMalformedEventsAreDropped(t *testing.T) {
	t.Parallel()
	js := jetStream(t, true)
	for _, b := range []string{"garbage", `{"tenant_id":"../../etc"}`, `{}`, `{"tenant_id":7}`} {
		publish(t, js, b)
	}
	cascadetest.DeleteTenant(t, js, doomed)
	p := &purges{}
	run(t, js, "svc", p.purge)
	cascadetest.Settled(t, js, "svc")
	if got := p.all(); !slices.Equal(got, []string{doomed}) {
		t.Fatalf("purged %v, want only the valid event's tenant", got)
	}
	c, err := js.Consumer(context.Background(), platform.Stream, cascade.ConsumerName("svc"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(context.Background()); err != nil || info.NumRedelivered != 0 {
		t.Fatalf("redelivered %d, %v: malformed events must not be retried", info.NumRedelivered, err)
	}
}

// Without the platform stream Run fails at once instead of running without a consumer.
func TestRunWithoutTheStream(t *testing.T) {
	t.Parallel()
	js := jetStream(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cascade.New(js, "svc", (&purges{}).purge, zerolog.Nop()).Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run without the stream: %v (context %v)", err, ctx.Err())
	}
}
