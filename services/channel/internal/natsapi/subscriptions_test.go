package natsapi_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{Type: channelv1.TypePrivate})
	other := f.create(t, user(tenantA), channelv1.CreateBody{})
	a1, a2, a3 := f.agent(tenantA), f.agent(tenantA), f.agent(tenantA)

	s1 := f.subscribe(t, user(tenantA), c.ID, a1, "")
	if s1.ID == "" || s1.SubscriptionID != s1.ID || s1.ChannelID != c.ID || s1.AgentID != a1 || s1.Role != channelv1.RoleSubscriber || s1.CreatedAt.IsZero() {
		t.Fatalf("subscription %+v (role must default to subscriber)", s1)
	}
	// The agent lookups (before the write, and again after it: a deletion racing the
	// add) carried the caller's identity (request id, tenant).
	ls := f.agents.Lookups()
	if len(ls) != 2 {
		t.Fatalf("agent lookups %+v, want 2", ls)
	}
	for _, l := range ls {
		if l.RequestID != "req-test" || l.TenantID != tenantA {
			t.Fatalf("agent lookups %+v", ls)
		}
	}
	// Agent ids are accepted in any case and stored upper-case.
	s2 := f.subscribe(t, apiKey(tenantA), c.ID, strings.ToLower(a2), channelv1.RolePublisher)
	if s2.AgentID != a2 || s2.Role != channelv1.RolePublisher {
		t.Fatalf("subscription %+v", s2)
	}
	f.subscribe(t, user(tenantA), c.ID, a3, channelv1.RoleAdmin)
	f.subscribe(t, user(tenantA), other.ID, a1, "") // the same agent in another channel

	// A duplicate pair is 409, whatever the role asked.
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c.ID,
		Subscription: channelv1.SubscriptionAddBody{AgentID: a1, Role: channelv1.RoleAdmin}}, http.StatusConflict, natsrpc.CodeConflict)
	// Unknown agents, malformed ids and bad roles are 422.
	for _, body := range []channelv1.SubscriptionAddBody{
		{AgentID: "01J00000000000000000000000"}, {AgentID: "not-an-agent"}, {}, {AgentID: a1, Role: "owner"},
	} {
		f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c.ID, Subscription: body}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	}
	// The agent service down: 503, nothing written.
	f.agents.SetDown(true)
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: other.ID,
		Subscription: channelv1.SubscriptionAddBody{AgentID: a2}}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.agents.SetDown(false)
	// An unknown channel is 404.
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: "01J00000000000000000000000",
		Subscription: channelv1.SubscriptionAddBody{AgentID: a1}}, http.StatusNotFound, natsrpc.CodeNotFound)

	// Counts follow the records.
	if got := f.get(t, user(tenantA), c.ID); got.SubscriberCount != 3 {
		t.Fatalf("subscriber_count %d, want 3", got.SubscriberCount)
	}
	var list channelv1.ListResponse
	f.call(t, viewer(tenantA), channelv1.OpList, channelv1.ListRequest{}, &list)
	counts := map[string]int64{}
	for _, ch := range list.Channels {
		counts[ch.ID] = ch.SubscriberCount
	}
	if counts[c.ID] != 3 || counts[other.ID] != 1 {
		t.Fatalf("counts in the list %v", counts)
	}

	// The list pages by agent id; agents read it too.
	want := []string{a1, a2, a3}
	sort.Strings(want)
	var got []string
	req := channelv1.SubscriptionsListRequest{ChannelID: c.ID, Limit: 2}
	for {
		var page channelv1.SubscriptionsListResponse
		f.call(t, agentToken(tenantA, a1), channelv1.OpSubscriptionsList, req, &page)
		if len(page.Subscriptions) == 0 {
			t.Fatal("empty page")
		}
		for _, s := range page.Subscriptions {
			got = append(got, s.AgentID)
		}
		if page.Cursor == "" {
			break
		}
		req.Cursor = page.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}

	// Remove: 204-like empty reply, then 404; the count follows.
	f.call(t, user(tenantA), channelv1.OpSubscriptionsRemove, channelv1.SubscriptionsRemoveRequest{ChannelID: c.ID, AgentID: strings.ToLower(a2)}, nil)
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsRemove, channelv1.SubscriptionsRemoveRequest{ChannelID: c.ID, AgentID: a2}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsRemove, channelv1.SubscriptionsRemoveRequest{ChannelID: c.ID, AgentID: "bad"}, http.StatusNotFound, natsrpc.CodeNotFound)
	if got := f.get(t, user(tenantA), c.ID); got.SubscriberCount != 2 {
		t.Fatalf("subscriber_count %d after a removal, want 2", got.SubscriberCount)
	}
	// It can be added again.
	f.subscribe(t, user(tenantA), c.ID, a2, "")

	// Deleting the channel removes its subscriptions and counter, not the other channel's.
	f.call(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: c.ID}, nil)
	for _, sk := range f.items(t, tenantA) {
		if strings.Contains(sk, c.ID) {
			t.Fatalf("item %s of the deleted channel left", sk)
		}
	}
	f.fails(t, user(tenantA), channelv1.OpSubscriptionsList, channelv1.SubscriptionsListRequest{ChannelID: c.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	if got := f.get(t, user(tenantA), other.ID); got.SubscriberCount != 1 {
		t.Fatalf("other channel's count %d", got.SubscriberCount)
	}
}
