package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/gauge/gaugetest"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
)

func TestSpecServesEveryOperation(t *testing.T) {
	if s := spec(); s.Name != agentv1.Service || s.ContractVersion != agentv1.Version {
		t.Fatalf("spec %+v", s)
	}
	in := servicetest.Start(t, spec())
	in.WantEndpoints(t, agentv1.Group,
		agentv1.OpCreate, agentv1.OpList, agentv1.OpGet, agentv1.OpUpdate, agentv1.OpSetStatus,
		agentv1.OpDelete, agentv1.OpStatusSummary, agentv1.OpLookup)
}

// A deleted tenant's agents are purged by the service's own cascade.
func TestSpecPurgesDeletedTenants(t *testing.T) {
	in := servicetest.Start(t, spec())
	const tenantID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: tenantID, Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleMember, Plan: plans.Free,
	})
	agents := func() int {
		t.Helper()
		var out agentv1.ListResponse
		if err := in.Client.Call(ctx, agentv1.Subject(agentv1.OpList), agentv1.ListRequest{}, &out); err != nil {
			t.Fatal(err)
		}
		return len(out.Agents)
	}
	if err := in.Client.Call(ctx, agentv1.Subject(agentv1.OpCreate), agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "A"}}, &agentv1.CreateResponse{}); err != nil {
		t.Fatal(err)
	}
	if n := agents(); n != 1 {
		t.Fatalf("%d agents before the deletion", n)
	}
	// The new count reaches usage as a gauge event.
	gaugetest.Wait(t, in.JetStream(t), tenantID, usagev1.GaugeAgents, 1)
	in.DeleteTenant(t, tenantID)
	in.Settled(t)
	if n := agents(); n != 0 {
		t.Fatalf("%d agents left after the cascade", n)
	}
}

// The service runs the presence watcher beside its endpoints: an agent session's key in
// the bucket (which the service creates) turns the agent online, and the tenant sees
// the change as agents.status.
func TestSpecRunsPresence(t *testing.T) {
	in := servicetest.Start(t, spec())
	const tenantID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: tenantID, Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleMember, Plan: plans.Free,
	})
	events := make(chan *nats.Msg, 16)
	sub, err := in.Conn.ChanSubscribe(eventsv1.Subject(tenantID, eventsv1.EntityAgents, eventsv1.ActionStatus), events)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var created agentv1.CreateResponse
	if err := in.Client.Call(ctx, agentv1.Subject(agentv1.OpCreate), agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "A"}}, &created); err != nil {
		t.Fatal(err)
	}

	js := in.JetStream(t)
	var kv jetstream.KeyValue
	deadline := time.Now().Add(time.Minute)
	for kv == nil {
		if kv, err = js.KeyValue(context.Background(), presencev1.Bucket); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("the service did not create the presence bucket: %v", err)
			}
			kv = nil
			time.Sleep(20 * time.Millisecond)
		}
	}
	value := []byte(`{"status":"online","gateway":"gw","since":"2025-01-01T00:00:00Z"}`)
	if _, err := kv.Create(context.Background(), presencev1.Key(tenantID, created.Agent.ID, "s1"), value, jetstream.KeyTTL(presencev1.TTL)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-events:
		var ev eventsv1.Event
		var st eventsv1.AgentStatus
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(ev.Data, &st); err != nil || st != (eventsv1.AgentStatus{AgentID: created.Agent.ID, Status: agentv1.StatusOnline, Previous: agentv1.StatusOffline}) {
			t.Fatalf("event %s (%v)", m.Data, err)
		}
	case <-time.After(time.Minute):
		t.Fatal("no agents.status event")
	}
	var got agentv1.AgentResponse
	if err := in.Client.Call(ctx, agentv1.Subject(agentv1.OpGet), agentv1.GetRequest{AgentID: created.Agent.ID}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Agent.Status != agentv1.StatusOnline || got.Agent.LastSeen == nil {
		t.Fatalf("agent %+v", got.Agent)
	}
}
