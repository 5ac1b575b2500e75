package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
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
