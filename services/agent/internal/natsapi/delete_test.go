package natsapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/channeltest"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeytest"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Delete asks the sshkey service to delete the agent's keys while the agent item still
// exists (marked, so nobody sees it any more), then removes it and tells caches.
func TestDeleteRemovesKeysFirst(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	doomed := f.create(t, ctx, agentv1.CreateBody{Name: "doomed", Type: agentv1.TypeSystem, PublicKey: pubKey,
		Capabilities: []agentv1.Capability{{Name: "a"}, {Name: "b"}}}).Agent
	kept := f.create(t, ctx, agentv1.CreateBody{Name: "kept", Type: agentv1.TypeSystem,
		Capabilities: []agentv1.Capability{{Name: "a"}}}).Agent

	hints := make(chan agentv1.AgentChanged, 4)
	sub, err := f.nc.Subscribe(agentv1.SubjectAgentChanged, func(m *nats.Msg) {
		var ev agentv1.AgentChanged
		if err := json.Unmarshal(m.Data, &ev); err == nil {
			hints <- ev
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	var keysDeleted atomic.Bool
	var checked atomic.Value // string: what was wrong, "" when nothing
	f.keys.Before(sshkeyv1.OpDeleteForAgent, func(c sshkeytest.Call) {
		defer keysDeleted.Store(true)
		a, err := f.repo.Get(context.Background(), tenantA, c.AgentID)
		switch {
		case err != nil:
			checked.Store(err.Error())
		case !a.Deleting():
			checked.Store("the agent is not marked deleting while its keys go")
		case c.Identity.TenantID != tenantA:
			checked.Store("delete_for_agent without the caller's tenant")
		default:
			// Marked: invisible to everyone already.
			err := f.client.Call(ctx, agentv1.Subject(agentv1.OpGet), agentv1.GetRequest{AgentID: c.AgentID}, nil)
			if e, ok := natsrpc.AsError(err); !ok || e.Status != http.StatusNotFound {
				checked.Store("a deleting agent is still visible")
			} else {
				checked.Store("")
			}
		}
	})

	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: doomed.ID}, nil)
	if !keysDeleted.Load() {
		t.Fatal("delete_for_agent was not called")
	}
	if problem, _ := checked.Load().(string); problem != "" {
		t.Fatal(problem)
	}
	if k := f.keys.KeysOf(tenantA, doomed.ID); len(k) != 0 {
		t.Fatalf("keys left: %+v", k)
	}
	select {
	case ev := <-hints:
		if ev != (agentv1.AgentChanged{TenantID: tenantA, AgentID: doomed.ID, Change: agentv1.ChangeDeleted}) {
			t.Fatalf("hint: %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no AgentChanged hint")
	}

	// Gone from the store: the item and every index item; the other agent's stay.
	if _, err := f.repo.Get(context.Background(), tenantA, doomed.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("agent item: %v", err)
	}
	page, err := f.table.Query(context.Background(), "T#"+tenantA, store.QueryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range page.Items {
		if strings.HasSuffix(it.SK, doomed.ID) {
			t.Fatalf("item of the deleted agent left: %s", it.SK)
		}
	}
	for _, q := range []agentv1.ListRequest{{Type: agentv1.TypeSystem}, {Capability: "a"}, {Status: agentv1.StatusOffline}, {}} {
		if got := ids(f.listAll(t, ctx, q)); len(got) != 1 || got[0] != kept.ID {
			t.Fatalf("list %+v: %v", q, got)
		}
	}
}

// When the keys cannot be deleted the agent stays as it was, and a retry succeeds.
func TestDeleteWhenKeysCannotBeDeleted(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	a := f.create(t, ctx, agentv1.CreateBody{Name: "a", PublicKey: pubKey}).Agent
	f.keys.Fail(sshkeyv1.OpDeleteForAgent, natsrpc.Unavailable("sshkey down"))
	f.fails(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	if got := f.get(t, ctx, a.ID); got.ID != a.ID {
		t.Fatalf("after a failed delete: %+v", got)
	}
	if got := ids(f.listAll(t, ctx, agentv1.ListRequest{Status: agentv1.StatusOffline})); len(got) != 1 {
		t.Fatalf("listed after a failed delete: %v", got)
	}
	if s := f.summary(t, ctx); s.Total != 1 {
		t.Fatalf("summary after a failed delete: %+v", s)
	}
	f.keys.Fail(sshkeyv1.OpDeleteForAgent, nil)
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, nil)
	if k := f.keys.KeysOf(tenantA, a.ID); len(k) != 0 {
		t.Fatalf("keys left: %+v", k)
	}
	if s := f.summary(t, ctx); s.Total != 0 {
		t.Fatalf("summary after the delete: %+v", s)
	}
}

// Delete asks the channel service to remove the agent's subscriptions while the agent is
// marked (after its keys), with the caller's tenant; when that fails the agent stays
// marked (gone for callers) and the error is the caller's.
func TestDeleteRemovesSubscriptions(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	a := f.create(t, ctx, agentv1.CreateBody{Name: "a", PublicKey: pubKey}).Agent
	var checked atomic.Value // string: what was wrong, "" when nothing
	f.chans.Before(func(c channeltest.Call) {
		st, err := f.repo.Get(context.Background(), tenantA, c.AgentID)
		switch {
		case err != nil:
			checked.Store(err.Error())
		case !st.Deleting():
			checked.Store("the agent is not marked deleting while its subscriptions go")
		case c.Identity.TenantID != tenantA || c.Identity.RequestID != "req-test":
			checked.Store("agent_removed without the caller's identity")
		case len(f.keys.KeysOf(tenantA, c.AgentID)) != 0:
			checked.Store("subscriptions removed before the keys")
		default:
			checked.Store("")
		}
	})
	f.chans.Fail(natsrpc.Unavailable("channel service down"))
	f.fails(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	if problem, ok := checked.Load().(string); !ok || problem != "" {
		t.Fatalf("agent_removed: called %v, problem %q", ok, problem)
	}
	if st, err := f.repo.Get(context.Background(), tenantA, a.ID); err != nil || !st.Deleting() {
		t.Fatalf("after the failure: %+v %v (want it marked)", st, err)
	}
	f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)

	// Another agent's deletion goes through once the channel service answers.
	b := f.create(t, ctx, agentv1.CreateBody{Name: "b"}).Agent
	f.chans.Fail(nil)
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: b.ID}, nil)
	if calls := f.chans.Calls(); len(calls) != 1 || calls[0].AgentID != b.ID {
		t.Fatalf("agent_removed calls %+v", calls)
	}
	if _, err := f.repo.Get(context.Background(), tenantA, b.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("agent item: %v", err)
	}
}
