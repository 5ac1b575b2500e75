package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
)

const tenantA = "abcdef00-0000-4000-8000-000000000001"

// fakeSource is a Source (an interface this package owns) answering from a map and
// counting its calls; gate, when set, holds every lookup until it is closed.
type fakeSource struct {
	mu       sync.Mutex
	channels map[string]channelv1.Lookup // tenant + "/" + channel
	roles    map[string]string           // tenant + "/" + channel + "/" + agent
	err      error
	calls    int
	gate     chan struct{}
	started  chan struct{}
}

func newFakeSource() *fakeSource {
	return &fakeSource{channels: map[string]channelv1.Lookup{}, roles: map[string]string{}}
}

func (f *fakeSource) put(tenant, channel, typ string, maxAge int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.channels[tenant+"/"+channel] = channelv1.Lookup{ChannelID: channel, Type: typ, MaxAgeSeconds: maxAge}
}

func (f *fakeSource) remove(tenant, channel string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.channels, tenant+"/"+channel)
}

func (f *fakeSource) setRole(tenant, channel, agent, role string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.roles[tenant+"/"+channel+"/"+agent] = role
}

func (f *fakeSource) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSource) Lookup(ctx context.Context, r channelv1.LookupRequest) (channelv1.Lookup, error) {
	f.mu.Lock()
	f.calls++
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if natsrpc.IdentityFrom(ctx).Kind != natsrpc.KindSystem {
		return channelv1.Lookup{}, errors.New("lookup without the system identity")
	}
	if _, ok := ctx.Deadline(); !ok {
		return channelv1.Lookup{}, errors.New("lookup without a deadline")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return channelv1.Lookup{}, f.err
	}
	l, ok := f.channels[r.TenantID+"/"+r.ChannelID]
	if !ok {
		return channelv1.Lookup{}, natsrpc.NotFound("channel not found")
	}
	if r.AgentID != "" {
		l.AgentRole = f.roles[r.TenantID+"/"+r.ChannelID+"/"+r.AgentID]
	}
	return l, nil
}

// clock is a settable time for the cache.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestChannels(t *testing.T, src Source, cfg ChannelsConfig) (*Channels, *clock) {
	t.Helper()
	c, err := NewChannels(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now()}
	c.cache.now = clk.Now
	return c, clk
}

func isStatus(err error, status int) bool {
	e, ok := natsrpc.AsError(err)
	return ok && e.Status == status
}

func TestLookupCachesFacts(t *testing.T) {
	src := newFakeSource()
	c, clk := newTestChannels(t, src, ChannelsConfig{})
	ch := ulid.Make().String()
	src.put(tenantA, ch, channelv1.TypePrivate, 60)
	ctx := context.Background()
	for i := range 3 {
		info, err := c.Lookup(ctx, tenantA, strings.ToLower(ch))
		if err != nil {
			t.Fatal(err)
		}
		if info != (ChannelInfo{ChannelID: ch, Type: channelv1.TypePrivate, MaxAgeSeconds: 60}) || !info.Private() {
			t.Fatalf("lookup %d = %+v", i, info)
		}
	}
	if src.count() != 1 {
		t.Fatalf("%d source calls, want 1", src.count())
	}
	// Entries live at most TTL.
	clk.advance(MaxTTL - time.Millisecond)
	if _, err := c.Lookup(ctx, tenantA, ch); err != nil || src.count() != 1 {
		t.Fatalf("before TTL: %v, %d calls", err, src.count())
	}
	clk.advance(time.Millisecond)
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	info, err := c.Lookup(ctx, tenantA, ch)
	if err != nil || src.count() != 2 || info.Type != channelv1.TypePublic || info.MaxAgeSeconds != 0 {
		t.Fatalf("after TTL: %+v %v, %d calls", info, err, src.count())
	}
}

func TestNotFoundCachedAtMostNotFoundTTL(t *testing.T) {
	src := newFakeSource()
	c, clk := newTestChannels(t, src, ChannelsConfig{})
	ch := ulid.Make().String()
	ctx := context.Background()
	for range 2 {
		if _, err := c.Lookup(ctx, tenantA, ch); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("err = %v", err)
		}
	}
	if src.count() != 1 {
		t.Fatalf("%d source calls, want 1 (404 cached)", src.count())
	}
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	clk.advance(MaxNotFoundTTL - time.Millisecond)
	if _, err := c.Lookup(ctx, tenantA, ch); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("within the negative TTL: %v", err)
	}
	clk.advance(time.Millisecond)
	if _, err := c.Lookup(ctx, tenantA, ch); err != nil {
		t.Fatalf("a channel created after a cached 404: %v", err)
	}
}

func TestMalformedIDsAreNotFoundWithoutALookup(t *testing.T) {
	src := newFakeSource()
	c, _ := newTestChannels(t, src, ChannelsConfig{})
	ctx := context.Background()
	for _, tc := range [][2]string{
		{tenantA, "nope"}, {tenantA, ""}, {tenantA, "01JBAGENT00000000000000001.X"}, {tenantA, "tenant.*.channel.>"},
		{"ABCDEF00-0000-4000-8000-000000000001", ulid.Make().String()}, {"", ulid.Make().String()}, {"*", ulid.Make().String()},
	} {
		if _, err := c.Lookup(ctx, tc[0], tc[1]); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("%q: %v", tc, err)
		}
		if _, err := c.AgentRole(ctx, tc[0], tc[1], ulid.Make().String()); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("role %q: %v", tc, err)
		}
	}
	if src.count() != 0 {
		t.Fatalf("%d lookups for malformed ids", src.count())
	}
}

func TestAgentRoleCachedPerAgent(t *testing.T) {
	src := newFakeSource()
	c, clk := newTestChannels(t, src, ChannelsConfig{})
	ch, a1, a2 := ulid.Make().String(), ulid.Make().String(), ulid.Make().String()
	src.put(tenantA, ch, channelv1.TypePrivate, 0)
	src.setRole(tenantA, ch, a1, channelv1.RolePublisher)
	ctx := context.Background()
	for range 2 {
		if r, err := c.AgentRole(ctx, tenantA, ch, strings.ToLower(a1)); err != nil || r != channelv1.RolePublisher {
			t.Fatalf("a1 = %q %v", r, err)
		}
		if r, err := c.AgentRole(ctx, tenantA, ch, a2); err != nil || r != "" {
			t.Fatalf("a2 = %q %v", r, err)
		}
	}
	// The role lookups filled the channel's facts too.
	if _, err := c.Lookup(ctx, tenantA, ch); err != nil || src.count() != 2 {
		t.Fatalf("lookup: %v, %d calls (want 2)", err, src.count())
	}
	// A malformed agent id has no role, in a channel that must exist.
	if r, err := c.AgentRole(ctx, tenantA, ch, "not-an-agent"); err != nil || r != "" {
		t.Fatalf("malformed agent = %q %v", r, err)
	}
	if _, err := c.AgentRole(ctx, tenantA, ulid.Make().String(), "not-an-agent"); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("malformed agent, unknown channel: %v", err)
	}
	// ForgetRole: the next question is asked again.
	src.setRole(tenantA, ch, a2, channelv1.RoleAdmin)
	n := src.count()
	c.ForgetRole(tenantA, ch, a2)
	if r, err := c.AgentRole(ctx, tenantA, ch, a2); err != nil || r != channelv1.RoleAdmin || src.count() != n+1 {
		t.Fatalf("after ForgetRole: %q %v (%d calls)", r, err, src.count()-n)
	}
	// Roles live at most TTL, like facts.
	src.setRole(tenantA, ch, a1, "")
	clk.advance(MaxTTL)
	if r, err := c.AgentRole(ctx, tenantA, ch, a1); err != nil || r != "" {
		t.Fatalf("after TTL: %q %v", r, err)
	}
	// An unknown channel is 404 for role questions too, and cached as such.
	gone := ulid.Make().String()
	n = src.count()
	for range 2 {
		if _, err := c.AgentRole(ctx, tenantA, gone, a1); !isStatus(err, http.StatusNotFound) {
			t.Fatalf("unknown channel: %v", err)
		}
	}
	if src.count() != n+1 {
		t.Fatalf("%d lookups for a cached 404", src.count()-n)
	}
}

func TestSourceFailuresAreNotCached(t *testing.T) {
	src := newFakeSource()
	c, _ := newTestChannels(t, src, ChannelsConfig{})
	ch := ulid.Make().String()
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	src.err = natsrpc.Unavailable("down")
	if _, err := c.Lookup(context.Background(), tenantA, ch); !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("err = %v", err)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	if _, err := c.Lookup(context.Background(), tenantA, ch); err != nil || src.count() != 2 {
		t.Fatalf("after recovery: %v (%d calls)", err, src.count())
	}
}

func TestConcurrentMissesShareOneLookup(t *testing.T) {
	src := newFakeSource()
	src.gate, src.started = make(chan struct{}), make(chan struct{}, 100)
	c, _ := newTestChannels(t, src, ChannelsConfig{})
	ch := ulid.Make().String()
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := c.Lookup(context.Background(), tenantA, ch)
			errs <- err
		})
	}
	<-src.started
	// Let the others reach the flight: one that has not by the time it lands finds the
	// answer cached (or, on a very slow machine, asks again: a failure, never a false pass).
	time.Sleep(100 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if src.count() != 1 {
		t.Fatalf("%d lookups, want 1", src.count())
	}
}

// TestForgetDuringLookup: an answer read before a forget is returned to its callers but
// not cached, so it cannot outlive the event that announced the change.
func TestForgetDuringLookup(t *testing.T) {
	src := newFakeSource()
	src.gate, src.started = make(chan struct{}), make(chan struct{}, 10)
	c, _ := newTestChannels(t, src, ChannelsConfig{})
	ch := ulid.Make().String()
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	done := make(chan error, 1)
	go func() {
		_, err := c.Lookup(context.Background(), tenantA, ch)
		done <- err
	}()
	<-src.started
	c.Forget(tenantA, ch)
	close(src.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	src.gate = nil
	src.mu.Unlock()
	if _, err := c.Lookup(context.Background(), tenantA, ch); err != nil || src.count() != 2 {
		t.Fatalf("after the forget: %v (%d calls, want 2)", err, src.count())
	}
}

func TestCallerDeadlineWhileWaiting(t *testing.T) {
	src := newFakeSource()
	src.gate, src.started = make(chan struct{}), make(chan struct{}, 10)
	defer close(src.gate)
	c, _ := newTestChannels(t, src, ChannelsConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Lookup(ctx, tenantA, ulid.Make().String()); !isStatus(err, http.StatusGatewayTimeout) {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	src := newFakeSource()
	c, _ := newTestChannels(t, src, ChannelsConfig{CacheSize: 10})
	for range 50 {
		ch := ulid.Make().String()
		src.put(tenantA, ch, channelv1.TypePublic, 0)
		if _, err := c.Lookup(context.Background(), tenantA, ch); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.cache.len(); n > 10 {
		t.Fatalf("cache holds %d channels, bound 10", n)
	}
}

func TestChannelsConfig(t *testing.T) {
	src := newFakeSource()
	for _, cfg := range []ChannelsConfig{{TTL: 6 * time.Second}, {TTL: -1}, {NotFoundTTL: 2 * time.Second}, {NotFoundTTL: -1}} {
		if _, err := NewChannels(src, cfg); err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
	}
	if _, err := NewChannels(nil, ChannelsConfig{}); err == nil {
		t.Fatal("nil source accepted")
	}
}

// TestChannelEvents: the event feed over a real NATS: created and updated drop what is
// cached, deleted caches the absence and tells OnDeleted; malformed events change nothing.
func TestChannelEvents(t *testing.T) {
	ns := natsrpctest.Server(t)
	pub, sub := natsrpctest.Connect(t, ns), natsrpctest.Connect(t, ns)
	src := newFakeSource()
	applied := make(chan string, 100)
	c, _ := newTestChannels(t, src, ChannelsConfig{Applied: func(s string) { applied <- s }})
	stop, err := c.Subscribe(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var delMu sync.Mutex
	var deleted []string
	c.OnDeleted(func(tenant, channel string) {
		delMu.Lock()
		defer delMu.Unlock()
		deleted = append(deleted, tenant+"/"+channel)
	})
	send := func(tenant, action string, data any) {
		t.Helper()
		raw, _ := json.Marshal(data)
		b, _ := json.Marshal(eventsv1.Event{Type: "channels." + action, TenantID: tenant, Timestamp: time.Now(), Data: raw})
		subject := eventsv1.Subject(tenant, eventsv1.EntityChannels, action)
		if err := pub.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-applied:
			if got != subject {
				t.Fatalf("applied %s, want %s", got, subject)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("event not applied")
		}
	}
	ctx := context.Background()
	ch := ulid.Make().String()

	// A cached 404, then the channel is created: its event makes it visible at once.
	if _, err := c.Lookup(ctx, tenantA, ch); !isStatus(err, http.StatusNotFound) {
		t.Fatal(err)
	}
	src.put(tenantA, ch, channelv1.TypePublic, 0)
	send(tenantA, eventsv1.ActionCreated, eventsv1.ChannelRef{ChannelID: ch, Type: channelv1.TypePublic})
	if info, err := c.Lookup(ctx, tenantA, ch); err != nil || info.Type != channelv1.TypePublic {
		t.Fatalf("after created: %+v %v", info, err)
	}
	// Updated (type and roles): read again at once.
	src.put(tenantA, ch, channelv1.TypePrivate, 30)
	src.setRole(tenantA, ch, ch, channelv1.RoleAdmin)
	if r, err := c.AgentRole(ctx, tenantA, ch, ch); err != nil || r != channelv1.RoleAdmin {
		t.Fatalf("role: %q %v", r, err)
	}
	src.setRole(tenantA, ch, ch, "")
	send(tenantA, eventsv1.ActionUpdated, eventsv1.ChannelRef{ChannelID: strings.ToLower(ch)})
	if info, err := c.Lookup(ctx, tenantA, ch); err != nil || info.Type != channelv1.TypePrivate || info.MaxAgeSeconds != 30 {
		t.Fatalf("after updated: %+v %v", info, err)
	}
	if r, err := c.AgentRole(ctx, tenantA, ch, ch); err != nil || r != "" {
		t.Fatalf("role after updated: %q %v", r, err)
	}
	// Events of another tenant with the same channel id touch nothing of this one.
	n := src.count()
	send("abcdef00-0000-4000-8000-000000000002", eventsv1.ActionDeleted, eventsv1.ChannelRef{ChannelID: ch})
	if _, err := c.Lookup(ctx, tenantA, ch); err != nil || src.count() != n {
		t.Fatalf("another tenant's deletion: %v (%d calls)", err, src.count()-n)
	}
	// Deleted: 404 at once, without asking, and OnDeleted hears of it.
	send(tenantA, eventsv1.ActionDeleted, eventsv1.ChannelRef{ChannelID: ch})
	if _, err := c.Lookup(ctx, tenantA, ch); !isStatus(err, http.StatusNotFound) || src.count() != n {
		t.Fatalf("after deleted: %v (%d calls)", err, src.count()-n)
	}
	delMu.Lock()
	got := fmt.Sprint(deleted)
	delMu.Unlock()
	if got != fmt.Sprint([]string{"abcdef00-0000-4000-8000-000000000002/" + ch, tenantA + "/" + ch}) {
		t.Fatalf("OnDeleted heard %s", got)
	}

	// Malformed events are ignored (and still reported as handled).
	other := ulid.Make().String()
	src.put(tenantA, other, channelv1.TypePublic, 0)
	if _, err := c.Lookup(ctx, tenantA, other); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		subject string
		data    string
	}{
		{eventsv1.Subject(tenantA, eventsv1.EntityChannels, eventsv1.ActionDeleted), `not json`},
		{eventsv1.Subject(tenantA, eventsv1.EntityChannels, eventsv1.ActionDeleted), `{"data":{"channel_id":"nope"}}`},
		{eventsv1.Subject(tenantA, eventsv1.EntityChannels, "exploded"), `{"data":{"channel_id":"` + other + `"}}`},
		{eventsv1.Subject("not-a-uuid", eventsv1.EntityChannels, eventsv1.ActionDeleted), `{"data":{"channel_id":"` + other + `"}}`},
	} {
		if err := pub.Publish(bad.subject, []byte(bad.data)); err != nil {
			t.Fatal(err)
		}
		<-applied
	}
	n = src.count()
	if _, err := c.Lookup(ctx, tenantA, other); err != nil || src.count() != n {
		t.Fatalf("after malformed events: %v (%d calls)", err, src.count()-n)
	}
	delMu.Lock()
	defer delMu.Unlock()
	if len(deleted) != 2 {
		t.Fatalf("OnDeleted heard %v", deleted)
	}
}

// TestAccessEvents: subscriptions.added/removed drop the agent's cached role; a removal,
// and a channel updated to private, tell OnAccessChanged after the cache forgot.
func TestAccessEvents(t *testing.T) {
	ns := natsrpctest.Server(t)
	pub, sub := natsrpctest.Connect(t, ns), natsrpctest.Connect(t, ns)
	src := newFakeSource()
	applied := make(chan string, 100)
	c, _ := newTestChannels(t, src, ChannelsConfig{Applied: func(s string) { applied <- s }})
	stop, err := c.Subscribe(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	ch, agent := ulid.Make().String(), ulid.Make().String()
	var mu sync.Mutex
	var heard []string
	c.OnAccessChanged(func(tenant, channel, agentID string) {
		// The cache has already forgotten: a check made here reads the truth.
		r, err := c.AgentRole(ctx, tenant, channel, agent)
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, fmt.Sprintf("%s/%s/%s role=%q err=%v", tenant, channel, agentID, r, err))
	})
	send := func(entity, action string, data any) {
		t.Helper()
		raw, _ := json.Marshal(data)
		b, _ := json.Marshal(eventsv1.Event{Type: entity + "." + action, TenantID: tenantA, Timestamp: time.Now(), Data: raw})
		subject := eventsv1.Subject(tenantA, entity, action)
		if err := pub.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-applied:
			if got != subject {
				t.Fatalf("applied %s, want %s", got, subject)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("event not applied")
		}
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := heard
		heard = nil
		return out
	}
	src.put(tenantA, ch, channelv1.TypePrivate, 0)
	role := func(want string) {
		t.Helper()
		if r, err := c.AgentRole(ctx, tenantA, ch, agent); err != nil || r != want {
			t.Fatalf("role %q %v, want %q", r, err, want)
		}
	}
	role("")
	// Added elsewhere: the cached "no role" goes at once; nobody lost access.
	src.setRole(tenantA, ch, agent, channelv1.RolePublisher)
	send(eventsv1.EntitySubscriptions, eventsv1.ActionAdded, eventsv1.SubscriptionRef{ChannelID: ch, AgentID: agent, Role: channelv1.RolePublisher})
	role(channelv1.RolePublisher)
	if h := take(); len(h) != 0 {
		t.Fatalf("an addition told OnAccessChanged: %v", h)
	}
	// Removed: forgotten before the callback, which reads "no role".
	src.setRole(tenantA, ch, agent, "")
	send(eventsv1.EntitySubscriptions, eventsv1.ActionRemoved, eventsv1.SubscriptionRef{ChannelID: ch, AgentID: strings.ToLower(agent)})
	if h := take(); len(h) != 1 || h[0] != fmt.Sprintf("%s/%s/%s role=\"\" err=<nil>", tenantA, ch, agent) {
		t.Fatalf("OnAccessChanged heard %v", h)
	}
	role("")
	// Updated to private: every agent is checked (agent ""); to public: nobody.
	send(eventsv1.EntityChannels, eventsv1.ActionUpdated, eventsv1.ChannelRef{ChannelID: ch, Type: channelv1.TypePrivate})
	if h := take(); len(h) != 1 || !strings.HasPrefix(h[0], tenantA+"/"+ch+"/ ") {
		t.Fatalf("OnAccessChanged heard %v", h)
	}
	send(eventsv1.EntityChannels, eventsv1.ActionUpdated, eventsv1.ChannelRef{ChannelID: ch, Type: channelv1.TypePublic})
	if h := take(); len(h) != 0 {
		t.Fatalf("a public channel told OnAccessChanged: %v", h)
	}
	// Malformed subscription events change nothing and tell nobody.
	for _, bad := range []eventsv1.SubscriptionRef{{ChannelID: ch}, {ChannelID: "nope", AgentID: agent}} {
		send(eventsv1.EntitySubscriptions, eventsv1.ActionRemoved, bad)
	}
	send(eventsv1.EntitySubscriptions, "exploded", eventsv1.SubscriptionRef{ChannelID: ch, AgentID: agent})
	if h := take(); len(h) != 0 {
		t.Fatalf("malformed events told OnAccessChanged: %v", h)
	}
}
