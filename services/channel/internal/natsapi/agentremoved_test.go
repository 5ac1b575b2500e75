package natsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/channel/internal/repo"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// indexSK is the SK of agentID's index entry for channelID.
func indexSK(agentID, channelID string) string {
	return repo.AgentIndexKey(tenantA, agentID, channelID).SK
}

// subscriptionEvents collects subscriptions.* events of every tenant as "action channel agent".
func (f *fixture) subscriptionEvents(t testing.TB) func() string {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := f.nc.ChanSubscribe(eventsv1.AllSubscriptionEvents, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() string {
		t.Helper()
		select {
		case m := <-ch:
			var ev eventsv1.Event
			var ref eventsv1.SubscriptionRef
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(ev.Data, &ref); err != nil {
				t.Fatal(err)
			}
			action := strings.TrimPrefix(ev.Type, eventsv1.EntitySubscriptions+".")
			if want := eventsv1.Subject(ev.TenantID, eventsv1.EntitySubscriptions, action); m.Subject != want || ev.TenantID != tenantA {
				t.Fatalf("event %s of %s on %s", ev.Type, ev.TenantID, m.Subject)
			}
			return action + " " + ref.ChannelID + " " + ref.AgentID
		case <-time.After(5 * time.Second):
			t.Fatal("no subscription event")
			return ""
		}
	}
}

// Every subscription has its agent's index entry, written with it and removed with it
// (by a removal or by the channel's deletion); additions and removals are announced.
func TestAgentIndexFollowsSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t)
	next := f.subscriptionEvents(t)
	c1 := f.create(t, user(tenantA), channelv1.CreateBody{Type: channelv1.TypePrivate})
	c2 := f.create(t, user(tenantA), channelv1.CreateBody{})
	a := f.agent(tenantA)

	f.subscribe(t, user(tenantA), c1.ID, a, "")
	if got := next(); got != "added "+c1.ID+" "+a {
		t.Fatalf("event %q", got)
	}
	f.subscribe(t, user(tenantA), c2.ID, a, channelv1.RolePublisher)
	if got := next(); got != "added "+c2.ID+" "+a {
		t.Fatalf("event %q", got)
	}
	items := f.items(t, tenantA)
	for _, sk := range []string{indexSK(a, c1.ID), indexSK(a, c2.ID)} {
		if !slices.Contains(items, sk) {
			t.Fatalf("index entry %s missing from %v", sk, items)
		}
	}
	// A duplicate (409) keeps the entry of the existing record.
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c1.ID,
		Subscription: channelv1.SubscriptionAddBody{AgentID: a}}, http.StatusConflict, natsrpc.CodeConflict)
	if !slices.Contains(f.items(t, tenantA), indexSK(a, c1.ID)) {
		t.Fatal("a duplicate add removed the existing record's index entry")
	}

	f.call(t, user(tenantA), channelv1.OpSubscriptionsRemove, channelv1.SubscriptionsRemoveRequest{ChannelID: c1.ID, AgentID: a}, nil)
	if got := next(); got != "removed "+c1.ID+" "+a {
		t.Fatalf("event %q", got)
	}
	if slices.Contains(f.items(t, tenantA), indexSK(a, c1.ID)) {
		t.Fatal("index entry left after the removal")
	}
	f.call(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: c2.ID}, nil)
	for _, sk := range f.items(t, tenantA) {
		if strings.HasPrefix(sk, "G#") {
			t.Fatalf("index entry %s left after the channel's deletion", sk)
		}
	}
}

// agent_removed removes every subscription of an agent in its tenant (counts drop, each
// removal is announced), leaves other agents and tenants alone, and is idempotent.
func TestAgentRemoved(t *testing.T) {
	t.Parallel()
	f := start(t)
	c1 := f.create(t, user(tenantA), channelv1.CreateBody{Type: channelv1.TypePrivate})
	c2 := f.create(t, user(tenantA), channelv1.CreateBody{})
	c3 := f.create(t, user(tenantA), channelv1.CreateBody{})
	doomed, kept := f.agent(tenantA), f.agent(tenantA)
	for _, c := range []string{c1.ID, c2.ID, c3.ID} {
		f.subscribe(t, user(tenantA), c, doomed, "")
	}
	f.subscribe(t, user(tenantA), c1.ID, kept, "")
	// An entry without its subscription (a crash between the two writes): skipped and
	// removed, and it uncounts nothing.
	if err := repo.New(f.table).PutAgentIndex(context.Background(), tenantA, doomed, c3.ID+"X"); err != nil {
		t.Fatal(err)
	}
	next := f.subscriptionEvents(t)

	// Not for agents; a malformed id is 404; another tenant's call touches nothing here.
	f.fails(t, agentToken(tenantA, doomed), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: doomed}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: "nope"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.call(t, user(tenantB), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: doomed}, nil)
	if got := f.get(t, user(tenantA), c1.ID); got.SubscriberCount != 2 {
		t.Fatalf("another tenant's agent_removed changed the count: %d", got.SubscriberCount)
	}

	f.call(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: strings.ToLower(doomed)}, nil)
	var got []string
	for range 3 {
		got = append(got, next())
	}
	slices.Sort(got)
	want := []string{"removed " + c1.ID + " " + doomed, "removed " + c2.ID + " " + doomed, "removed " + c3.ID + " " + doomed}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	check := func() {
		t.Helper()
		for _, sk := range f.items(t, tenantA) {
			if strings.Contains(sk, doomed) {
				t.Fatalf("item %s of the removed agent left", sk)
			}
		}
		for c, n := range map[string]int64{c1.ID: 1, c2.ID: 0, c3.ID: 0} {
			if got := f.get(t, user(tenantA), c); got.SubscriberCount != n {
				t.Fatalf("channel %s: subscriber_count %d, want %d", c, got.SubscriberCount, n)
			}
		}
		var l channelv1.Lookup
		f.call(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: c1.ID, AgentID: doomed}, &l)
		if l.AgentRole != "" {
			t.Fatalf("removed agent's role %q", l.AgentRole)
		}
		f.call(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: c1.ID, AgentID: kept}, &l)
		if l.AgentRole != channelv1.RoleSubscriber {
			t.Fatalf("kept agent's role %q", l.AgentRole)
		}
	}
	check()
	// Again (a retried deletion): nothing changes, nothing is announced.
	f.call(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: doomed}, nil)
	check()
	// The agent service's repair runs as the system, in the tenant.
	f.call(t, with(natsrpc.Identity{TenantID: tenantA, Kind: natsrpc.KindSystem, PrincipalID: "agent-repair"}),
		channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: doomed}, nil)
	check()
}

// A subscription write that fails after the index entry leaves only the entry, which
// agent_removed then clears: nothing is left that the agent's deletion cannot reach.
func TestAgentIndexWrittenFirst(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{})
	a := f.agent(tenantA)
	var puts atomic.Int32
	f.table.failWith(func(_ context.Context, op string) error {
		if op == "put" && puts.Add(1) == 2 { // the index entry, then the subscription
			return store.ErrUnavailable
		}
		return nil
	})
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c.ID,
		Subscription: channelv1.SubscriptionAddBody{AgentID: a}}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.table.failWith(nil)
	items := f.items(t, tenantA)
	if !slices.Contains(items, indexSK(a, c.ID)) || slices.Contains(items, repo.SubscriptionKey(tenantA, c.ID, a).SK) {
		t.Fatalf("items after a failed subscription write: %v", items)
	}
	f.call(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: a}, nil)
	if slices.Contains(f.items(t, tenantA), indexSK(a, c.ID)) {
		t.Fatal("index entry left")
	}
	if got := f.get(t, user(tenantA), c.ID); got.SubscriberCount != 0 {
		t.Fatalf("subscriber_count %d", got.SubscriberCount)
	}
	// A failing store is a 503 and leaves the entries for the retry.
	f.subscribe(t, user(tenantA), c.ID, a, "")
	f.table.failWith(func(context.Context, string) error { return store.ErrUnavailable })
	f.fails(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: a}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.table.failWith(nil)
	f.call(t, user(tenantA), channelv1.OpAgentRemoved, channelv1.AgentRemovedRequest{AgentID: a}, nil)
	if _, err := f.table.Table.Get(context.Background(), repo.SubscriptionKey(tenantA, c.ID, a)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("subscription after the retry: %v", err)
	}
}

// An agent deleted while its subscription is being added (gone by the second lookup)
// gets no subscription: the add takes it back and answers 422.
func TestAddSubscriptionRacingAgentDeletion(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{})
	a := f.agent(tenantA)
	f.agents.RemoveAfter(tenantA, a, 1)
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c.ID,
		Subscription: channelv1.SubscriptionAddBody{AgentID: a}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	for _, sk := range f.items(t, tenantA) {
		if strings.Contains(sk, a) {
			t.Fatalf("item %s of the deleted agent left", sk)
		}
	}
	if got := f.get(t, user(tenantA), c.ID); got.SubscriberCount != 0 {
		t.Fatalf("subscriber_count %d", got.SubscriberCount)
	}
}
