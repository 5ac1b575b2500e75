package natsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/channel/internal/stream"
	"github.com/artcafe-ai/pubsub/services/channel/internal/streamtest"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

func TestCreateGetUpdate(t *testing.T) {
	t.Parallel()
	f := start(t)
	next := f.events(t)

	c := f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{Name: "ops", Description: "the ops room", Metadata: map[string]any{"team": "ops"}})
	if c.ID == "" || c.ChannelID != c.ID || c.TenantID != tenantA || c.Name != "ops" || c.Description != "the ops room" ||
		c.Type != channelv1.TypePublic || c.Status != channelv1.StatusActive || c.Metadata["team"] != "ops" ||
		c.SubscriberCount != 0 || c.TotalMessages != 0 || c.LastMessageAt != nil || c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) {
		t.Fatalf("created %+v", c)
	}
	if c.History != (channelv1.History{MaxMessages: 1_000, MaxAgeSeconds: 86_400}) {
		t.Fatalf("history %+v, want the free plan's bounds", c.History)
	}
	ev := next()
	var ref eventsv1.ChannelRef
	if err := json.Unmarshal(ev.Data, &ref); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "channels.created" || ev.TenantID != tenantA || ref != (eventsv1.ChannelRef{ChannelID: c.ID, Name: "ops", Type: channelv1.TypePublic, MaxAgeSeconds: 86_400}) {
		t.Fatalf("event %+v %+v", ev, ref)
	}

	// Every reader role sees it; the stored form is the wire form.
	for _, ctx := range []context.Context{user(tenantA), viewer(tenantA), apiKey(tenantA), agentToken(tenantA, f.agent(tenantA))} {
		if got := f.get(t, ctx, c.ID); got.ID != c.ID || got.Name != "ops" || !got.CreatedAt.Equal(c.CreatedAt) || got.History != c.History {
			t.Fatalf("get %+v", got)
		}
	}

	// Partial update: absent keeps, null clears, a value replaces.
	var out channelv1.ChannelResponse
	f.call(t, member(tenantA, plans.Free), channelv1.OpUpdate, channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{
		Type: patch.Of(channelv1.TypePrivate), Description: patch.Null[string](), Metadata: patch.Of(map[string]any{"x": 1.0}),
		History: patch.Of(channelv1.History{MaxMessages: 10}),
	}}, &out)
	u := out.Channel
	if u.Name != "ops" || u.Description != "" || u.Type != channelv1.TypePrivate || u.Metadata["x"] != 1.0 || len(u.Metadata) != 1 ||
		u.History != (channelv1.History{MaxMessages: 10, MaxAgeSeconds: 86_400}) || !u.UpdatedAt.After(c.UpdatedAt) && !u.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("updated %+v", u)
	}
	ev = next()
	if err := json.Unmarshal(ev.Data, &ref); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "channels.updated" || ref.Type != channelv1.TypePrivate || ref.ChannelID != c.ID {
		t.Fatalf("event %+v %+v", ev, ref)
	}
	// Metadata null clears to {}, history null resets to the plan's bounds.
	out = channelv1.ChannelResponse{} // a decode would merge into the old map
	f.call(t, member(tenantA, plans.Free), channelv1.OpUpdate, channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{
		Metadata: patch.Null[map[string]any](), History: patch.Null[channelv1.History](), Name: patch.Of("ops-2"),
	}}, &out)
	if u := out.Channel; u.Name != "ops-2" || u.Metadata == nil || len(u.Metadata) != 0 || u.History != (channelv1.History{MaxMessages: 1_000, MaxAgeSeconds: 86_400}) || u.Type != channelv1.TypePrivate {
		t.Fatalf("updated %+v", u)
	}
	if got := f.get(t, viewer(tenantA), c.ID); got.Name != "ops-2" || got.Type != channelv1.TypePrivate {
		t.Fatalf("get after update %+v", got)
	}
}

// A channel's history defaults to the plan's bounds; asking for more than the plan allows
// is 422 naming the field, on create and on update; unlimited plans store 0 (unlimited).
func TestHistoryBounds(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, tc := range []struct {
		plan string
		want channelv1.History
	}{
		{plans.Free, channelv1.History{MaxMessages: 1_000, MaxAgeSeconds: 86_400}},
		{plans.Basic, channelv1.History{MaxMessages: 10_000, MaxAgeSeconds: 7 * 86_400}},
		{plans.Pro, channelv1.History{MaxMessages: 100_000, MaxAgeSeconds: 30 * 86_400}},
		{plans.Enterprise, channelv1.History{}},
	} {
		if c := f.create(t, member(tenantA, tc.plan), channelv1.CreateBody{}); c.History != tc.want {
			t.Fatalf("%s: history %+v, want %+v", tc.plan, c.History, tc.want)
		}
		// A part given keeps it; the other part takes the plan's bound.
		c := f.create(t, member(tenantA, tc.plan), channelv1.CreateBody{History: &channelv1.History{MaxMessages: 7}})
		if c.History != (channelv1.History{MaxMessages: 7, MaxAgeSeconds: tc.want.MaxAgeSeconds}) {
			t.Fatalf("%s: history %+v", tc.plan, c.History)
		}
	}
	if c := f.create(t, member(tenantA, plans.Enterprise), channelv1.CreateBody{History: &channelv1.History{MaxMessages: 5_000_000, MaxAgeSeconds: 10 * 365 * 86_400}}); c.History.MaxMessages != 5_000_000 {
		t.Fatalf("enterprise history %+v", c.History)
	}

	e := f.fails(t, member(tenantA, plans.Free), channelv1.OpCreate, channelv1.CreateRequest{Channel: channelv1.CreateBody{
		Name: "big", History: &channelv1.History{MaxMessages: 1_001, MaxAgeSeconds: 86_401},
	}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 2 || e.Errors[0].Field != "history.max_messages" || e.Errors[1].Field != "history.max_age_seconds" {
		t.Fatalf("errors %+v", e.Errors)
	}
	c := f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{History: &channelv1.History{MaxMessages: 1_000, MaxAgeSeconds: 86_400}})
	e = f.fails(t, member(tenantA, plans.Free), channelv1.OpUpdate, channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{
		History: patch.Of(channelv1.History{MaxAgeSeconds: 86_401}),
	}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 1 || e.Errors[0].Field != "history.max_age_seconds" {
		t.Fatalf("errors %+v", e.Errors)
	}
	// Negative values are the contract's 422.
	f.fails(t, member(tenantA, plans.Free), channelv1.OpCreate, channelv1.CreateRequest{Channel: channelv1.CreateBody{
		Name: "neg", History: &channelv1.History{MaxMessages: -1},
	}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	// Nothing changed.
	if got := f.get(t, user(tenantA), c.ID); got.History != (channelv1.History{MaxMessages: 1_000, MaxAgeSeconds: 86_400}) {
		t.Fatalf("history after a refused update %+v", got.History)
	}
}

// max_channels holds under concurrent creates: exactly the limit succeeds, the rest get
// 402 naming the count, limit and plan; a deletion makes room again.
func TestMaxChannelsConcurrent(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := member(tenantA, plans.Free) // 10 channels
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = f.client.Call(ctx, channelv1.Subject(channelv1.OpCreate), channelv1.CreateRequest{Channel: channelv1.CreateBody{Name: fmt.Sprint("c", i)}}, nil)
		})
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, err := range errs {
		e, isWire := natsrpc.AsError(err)
		switch {
		case err == nil:
			ok++
		case isWire && e.Status == http.StatusPaymentRequired && e.Code == natsrpc.CodePlanLimitExceeded:
			if e.Detail != "channel limit reached: 10 of 10 on the free plan" {
				t.Fatalf("detail %q", e.Detail)
			}
			limited++
		default:
			t.Fatalf("create: %v", err)
		}
	}
	if ok != 10 || limited != 10 {
		t.Fatalf("%d created, %d limited; want 10 and 10", ok, limited)
	}
	var list channelv1.ListResponse
	f.call(t, ctx, channelv1.OpList, channelv1.ListRequest{Limit: 100}, &list)
	if len(list.Channels) != 10 {
		t.Fatalf("%d channels listed", len(list.Channels))
	}
	// Another tenant has its own count.
	f.create(t, member(tenantB, plans.Free), channelv1.CreateBody{})
	f.call(t, ctx, channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: list.Channels[0].ID}, nil)
	f.create(t, ctx, channelv1.CreateBody{})
	f.fails(t, ctx, channelv1.OpCreate, channelv1.CreateRequest{Channel: channelv1.CreateBody{Name: "x"}}, http.StatusPaymentRequired, natsrpc.CodePlanLimitExceeded)
}

func TestListPages(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	var want []string
	for range 7 {
		want = append(want, f.create(t, ctx, channelv1.CreateBody{}).ID)
	}
	f.create(t, user(tenantB), channelv1.CreateBody{}) // never listed for A
	var got []string
	req := channelv1.ListRequest{Limit: 3}
	for pages := 0; ; pages++ {
		var page channelv1.ListResponse
		f.call(t, viewer(tenantA), channelv1.OpList, req, &page)
		if len(page.Channels) == 0 || len(page.Channels) > 3 {
			t.Fatalf("page of %d channels", len(page.Channels))
		}
		for _, c := range page.Channels {
			if c.TenantID != tenantA {
				t.Fatalf("channel of tenant %s listed", c.TenantID)
			}
			got = append(got, c.ID)
		}
		if page.Cursor == "" {
			break
		}
		req.Cursor = page.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v (id order)", got, want)
	}
	f.fails(t, ctx, channelv1.OpList, channelv1.ListRequest{Cursor: "not-a-cursor"}, http.StatusBadRequest, natsrpc.CodeInvalidNextToken)
	f.fails(t, ctx, channelv1.OpList, channelv1.ListRequest{Limit: 101}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
}

// Who may do what (SPEC §13), and every other error class of the wire.
func TestErrors(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{})
	agentID := f.agent(tenantA)
	create := channelv1.CreateRequest{Channel: channelv1.CreateBody{Name: "x"}}
	update := channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{Name: patch.Of("y")}}
	del := channelv1.DeleteRequest{ChannelID: c.ID}
	add := channelv1.SubscriptionsAddRequest{ChannelID: c.ID, Subscription: channelv1.SubscriptionAddBody{AgentID: agentID}}
	remove := channelv1.SubscriptionsRemoveRequest{ChannelID: c.ID, AgentID: agentID}

	// 403: viewers and agents do not manage; a caller without a role reads nothing.
	for name, ctx := range map[string]context.Context{"viewer": viewer(tenantA), "agent": agentToken(tenantA, agentID)} {
		for op, req := range map[string]any{channelv1.OpCreate: create, channelv1.OpUpdate: update, channelv1.OpDelete: del,
			channelv1.OpSubscriptionsAdd: add, channelv1.OpSubscriptionsRemove: remove} {
			t.Run(name+" "+op, func(t *testing.T) { f.fails(t, ctx, op, req, http.StatusForbidden, natsrpc.CodeForbidden) })
		}
	}
	noRole := with(natsrpc.Identity{TenantID: tenantA, Kind: natsrpc.KindUser, PrincipalID: "u-none", Plan: plans.Pro})
	f.fails(t, noRole, channelv1.OpGet, channelv1.GetRequest{ChannelID: c.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, noRole, channelv1.OpHistory, channelv1.HistoryRequest{ChannelID: c.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	// API keys manage.
	f.call(t, apiKey(tenantA), channelv1.OpUpdate, update, nil)

	// 400: a body that does not decode.
	if _, err := f.client.CallRaw(user(tenantA), channelv1.Subject(channelv1.OpCreate), json.RawMessage(`{"channel":"x"}`)); !isWire(err, http.StatusBadRequest, natsrpc.CodeInvalidJSON) {
		t.Fatalf("bad json: %v", err)
	}
	// 422: the contract's and the domain's checks.
	f.fails(t, user(tenantA), channelv1.OpCreate, channelv1.CreateRequest{}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, user(tenantA), channelv1.OpCreate, channelv1.CreateRequest{Channel: channelv1.CreateBody{Name: "x", Type: "secret"}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, user(tenantA), channelv1.OpUpdate, channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{Name: patch.Null[string]()}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, user(tenantA), channelv1.OpHistory, channelv1.HistoryRequest{ChannelID: c.ID, AfterSeq: 5, BeforeSeq: 6}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	// 404: unknown, malformed and lower-case ids.
	for _, id := range []string{"01J00000000000000000000000", "nope", "../x", ""} {
		f.fails(t, user(tenantA), channelv1.OpGet, channelv1.GetRequest{ChannelID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
		f.fails(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
		f.fails(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
	}
	// 500: an identity without a tenant or a plan is a gateway bug, never a 4xx.
	f.fails(t, with(natsrpc.Identity{Kind: natsrpc.KindUser, Role: natsrpc.RoleOwner, Plan: plans.Pro}), channelv1.OpList, channelv1.ListRequest{}, http.StatusInternalServerError, natsrpc.CodeInternal)
	f.fails(t, with(natsrpc.Identity{TenantID: tenantA, Kind: natsrpc.KindUser, Role: natsrpc.RoleOwner, Plan: "gold"}), channelv1.OpCreate, create, http.StatusInternalServerError, natsrpc.CodeInternal)

	// 503: the store throttles or is down.
	f.table.failWith(func(context.Context, string) error { return store.ErrUnavailable })
	for op, req := range map[string]any{channelv1.OpCreate: create, channelv1.OpGet: channelv1.GetRequest{ChannelID: c.ID},
		channelv1.OpList: channelv1.ListRequest{}, channelv1.OpUpdate: update, channelv1.OpDelete: del,
		channelv1.OpLookup: channelv1.LookupRequest{TenantID: tenantA, ChannelID: c.ID}, channelv1.OpHistory: channelv1.HistoryRequest{ChannelID: c.ID}} {
		f.fails(t, user(tenantA), op, req, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	}
	// A create whose commit fails gives its count back.
	f.table.failWith(func(_ context.Context, op string) error {
		if op == "put" {
			return store.ErrUnavailable
		}
		return nil
	})
	f.fails(t, member(tenantB, plans.Free), channelv1.OpCreate, create, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.table.failWith(nil)
	for range 10 {
		f.create(t, member(tenantB, plans.Free), channelv1.CreateBody{})
	}
	// 500: anything unclassified, without its text on the wire.
	f.table.failWith(func(context.Context, string) error { return errors.New("disk on fire") })
	e := f.fails(t, user(tenantA), channelv1.OpGet, channelv1.GetRequest{ChannelID: c.ID}, http.StatusInternalServerError, natsrpc.CodeInternal)
	if e.Detail != "internal error" {
		t.Fatalf("detail %q", e.Detail)
	}
	// 504: the store does not answer within the caller's budget.
	f.table.failWith(func(ctx context.Context, _ string) error {
		<-ctx.Done()
		return ctx.Err()
	})
	short, cancel := context.WithTimeout(user(tenantA), 300*time.Millisecond)
	defer cancel()
	if err := f.client.Call(short, channelv1.Subject(channelv1.OpGet), channelv1.GetRequest{ChannelID: c.ID}, nil); !isWire(err, http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout) {
		t.Fatalf("slow store: %v", err)
	}
	f.table.failWith(nil)
}

// Without the stream, history reads are 503; channel reads still answer, with the
// stats they last knew.
func TestStreamDown(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{})
	streamtest.Publish(t, f.js, tenantA, c.ID, `{"x":1}`, streamtest.Options{})
	if got := f.get(t, user(tenantA), c.ID); got.TotalMessages != 1 {
		t.Fatalf("total %d", got.TotalMessages)
	}
	if err := f.js.DeleteStream(context.Background(), messagev1.Stream); err != nil {
		t.Fatal(err)
	}
	f.fails(t, user(tenantA), channelv1.OpHistory, channelv1.HistoryRequest{ChannelID: c.ID}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	if got := f.get(t, user(tenantA), c.ID); got.TotalMessages != 1 || got.LastMessageAt == nil {
		t.Fatalf("channel while the stream is down: %+v", got)
	}
	var list channelv1.ListResponse
	f.call(t, user(tenantA), channelv1.OpList, channelv1.ListRequest{}, &list)
	// The trimmer's next sweep creates the stream again.
	if err := stream.NewTrimmer(f.messages, f.svc, zerolog.Nop()).Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: c.ID}); len(h.Messages) != 0 {
		t.Fatalf("history of a new stream %+v", h)
	}
	streamtest.Publish(t, f.js, tenantA, c.ID, `{"x":2}`, streamtest.Options{})
	if h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: c.ID}); len(h.Messages) != 1 {
		t.Fatalf("history after the stream came back %+v", h)
	}
	// A delete while the stream is down still removes the channel (its purge is left to
	// the trimmer).
	if err := f.js.DeleteStream(context.Background(), messagev1.Stream); err != nil {
		t.Fatal(err)
	}
	f.call(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: c.ID}, nil)
	f.fails(t, user(tenantA), channelv1.OpGet, channelv1.GetRequest{ChannelID: c.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
}

func isWire(err error, status int, code string) bool {
	e, ok := natsrpc.AsError(err)
	return ok && e.Status == status && e.Code == code
}

// Another tenant's ids are 404 on every operation, whatever the caller's role.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{Type: channelv1.TypePrivate})
	agentA, agentB := f.agent(tenantA), f.agent(tenantB)
	f.subscribe(t, user(tenantA), c.ID, agentA, "")
	for name, ctx := range map[string]context.Context{"member": user(tenantB), "api key": apiKey(tenantB), "agent": agentToken(tenantB, agentB)} {
		t.Run(name, func(t *testing.T) {
			for op, req := range map[string]any{
				channelv1.OpGet:                 channelv1.GetRequest{ChannelID: c.ID},
				channelv1.OpHistory:             channelv1.HistoryRequest{ChannelID: c.ID},
				channelv1.OpSubscriptionsList:   channelv1.SubscriptionsListRequest{ChannelID: c.ID},
				channelv1.OpUpdate:              channelv1.UpdateRequest{ChannelID: c.ID, Changes: channelv1.UpdateBody{Name: patch.Of("mine")}},
				channelv1.OpDelete:              channelv1.DeleteRequest{ChannelID: c.ID},
				channelv1.OpSubscriptionsAdd:    channelv1.SubscriptionsAddRequest{ChannelID: c.ID, Subscription: channelv1.SubscriptionAddBody{AgentID: agentB}},
				channelv1.OpSubscriptionsRemove: channelv1.SubscriptionsRemoveRequest{ChannelID: c.ID, AgentID: agentA},
			} {
				want := http.StatusNotFound
				code := natsrpc.CodeNotFound
				if name == "agent" && (op == channelv1.OpUpdate || op == channelv1.OpDelete || op == channelv1.OpSubscriptionsAdd || op == channelv1.OpSubscriptionsRemove) {
					want, code = http.StatusForbidden, natsrpc.CodeForbidden // agents never manage, in any tenant
				}
				f.fails(t, ctx, op, req, want, code)
			}
		})
	}
	f.fails(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantB, ChannelID: c.ID, AgentID: agentA}, http.StatusNotFound, natsrpc.CodeNotFound)
	// Untouched.
	if got := f.get(t, user(tenantA), c.ID); got.Name != c.Name || got.SubscriberCount != 1 {
		t.Fatalf("channel after the attempts %+v", got)
	}
	// A subscription add names the agent of another tenant: 422, not a cross-tenant link.
	e := f.fails(t, user(tenantA), channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{ChannelID: c.ID, Subscription: channelv1.SubscriptionAddBody{AgentID: agentB}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 1 || e.Errors[0].Field != "agent_id" {
		t.Fatalf("errors %+v", e.Errors)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	f := start(t)
	pub := f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{})
	priv := f.create(t, member(tenantA, plans.Enterprise), channelv1.CreateBody{Type: channelv1.TypePrivate})
	publisher, outsider := f.agent(tenantA), f.agent(tenantA)
	f.subscribe(t, user(tenantA), priv.ID, publisher, channelv1.RolePublisher)

	var l channelv1.Lookup
	f.call(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: pub.ID}, &l)
	if l != (channelv1.Lookup{ChannelID: pub.ID, Type: channelv1.TypePublic, MaxAgeSeconds: 86_400}) {
		t.Fatalf("lookup %+v", l)
	}
	for agentID, role := range map[string]string{publisher: channelv1.RolePublisher, outsider: "", "lower-" + publisher: "", "01J00000000000000000000000": ""} {
		l = channelv1.Lookup{}
		f.call(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: priv.ID, AgentID: agentID}, &l)
		if l != (channelv1.Lookup{ChannelID: priv.ID, Type: channelv1.TypePrivate, AgentRole: role}) {
			t.Fatalf("lookup for %s: %+v", agentID, l)
		}
	}
	// Agent ids are accepted in any case.
	f.call(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: priv.ID, AgentID: lower(publisher)}, &l)
	if l.AgentRole != channelv1.RolePublisher {
		t.Fatalf("lookup with a lower-case agent id: %+v", l)
	}
	f.fails(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: "not-a-tenant", ChannelID: pub.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.call(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: priv.ID}, nil)
	f.fails(t, system, channelv1.OpLookup, channelv1.LookupRequest{TenantID: tenantA, ChannelID: priv.ID, AgentID: publisher}, http.StatusNotFound, natsrpc.CodeNotFound)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
