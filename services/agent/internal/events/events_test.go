package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/agent/internal/events"
)

// The deletion hint reaches subscribers.
func TestAgentDeletedHint(t *testing.T) {
	t.Parallel()
	nc := natsrpctest.Connect(t, natsrpctest.Server(t))
	got := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(agentv1.SubjectAgentChanged, got)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	const tenantID, agentID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20", "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	events.NewPublisher(nc, zerolog.Nop()).AgentDeleted(context.Background(), tenantID, agentID)
	select {
	case m := <-got:
		var ev agentv1.AgentChanged
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev != (agentv1.AgentChanged{TenantID: tenantID, AgentID: agentID, Change: agentv1.ChangeDeleted}) {
			t.Fatalf("hint %s: %v", m.Data, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no hint")
	}
}

// Tenant events go to the tenant's own subject in the eventsv1 envelope.
func TestTenantEvents(t *testing.T) {
	t.Parallel()
	nc := natsrpctest.Connect(t, natsrpctest.Server(t))
	const tenantID, other, agentID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20", "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01", "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	mine, theirs := make(chan *nats.Msg, 8), make(chan *nats.Msg, 8)
	for subject, ch := range map[string]chan *nats.Msg{eventsv1.TenantWildcard(tenantID): mine, eventsv1.TenantWildcard(other): theirs} {
		sub, err := nc.ChanSubscribe(subject, ch)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	p := events.NewPublisher(nc, zerolog.Nop())
	ctx := context.Background()
	p.Changed(ctx, tenantID, eventsv1.ActionCreated, eventsv1.AgentRef{AgentID: agentID, Name: "n"})
	p.StatusChanged(ctx, tenantID, eventsv1.AgentStatus{AgentID: agentID, Status: agentv1.StatusBusy, Previous: agentv1.StatusOnline})

	for _, want := range []struct{ action, data string }{
		{eventsv1.ActionCreated, `{"agent_id":"` + agentID + `","name":"n"}`},
		{eventsv1.ActionStatus, `{"agent_id":"` + agentID + `","status":"busy","previous":"online"}`},
	} {
		select {
		case m := <-mine:
			var ev eventsv1.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if m.Subject != eventsv1.Subject(tenantID, eventsv1.EntityAgents, want.action) || ev.Type != "agents."+want.action ||
				ev.TenantID != tenantID || ev.Timestamp.IsZero() || string(ev.Data) != want.data {
				t.Fatalf("event on %s: %s", m.Subject, m.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", want.action)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-theirs:
		t.Fatalf("another tenant got %s", m.Data)
	default:
	}
}
