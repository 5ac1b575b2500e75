package main

import (
	"context"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/streamtest"
	"github.com/artcafe-ai/pubsub/services/kit/gauge/gaugetest"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
)

// The binary's spec serves every operation, owns the message stream, and purges deleted
// tenants' channels and messages through its cascade.
func TestSpec(t *testing.T) {
	if s := spec(); s.Name != channelv1.Service || s.ContractVersion != channelv1.Version {
		t.Fatalf("spec %+v", s)
	}
	in := servicetest.Start(t, spec())
	in.WantEndpoints(t, channelv1.Group,
		channelv1.OpCreate, channelv1.OpList, channelv1.OpGet, channelv1.OpUpdate, channelv1.OpDelete,
		channelv1.OpSubscriptionsList, channelv1.OpSubscriptionsAdd, channelv1.OpSubscriptionsRemove,
		channelv1.OpHistory, channelv1.OpLookup, channelv1.OpAgentRemoved)

	js := in.JetStream(t)
	if _, err := js.Stream(context.Background(), messagev1.Stream); err != nil {
		t.Fatalf("the message stream: %v", err)
	}

	const tenantID = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: tenantID, Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleOwner, Plan: plans.Free,
	})
	var created channelv1.ChannelResponse
	if err := in.Client.Call(ctx, channelv1.Subject(channelv1.OpCreate), channelv1.CreateRequest{Channel: channelv1.CreateBody{Name: "c"}}, &created); err != nil {
		t.Fatal(err)
	}
	// The new count reaches usage as a gauge event.
	gaugetest.Wait(t, js, tenantID, usagev1.GaugeChannels, 1)
	streamtest.Publish(t, js, tenantID, created.Channel.ID, `{"x":1}`, streamtest.Options{})
	var h channelv1.HistoryResponse
	if err := in.Client.Call(ctx, channelv1.Subject(channelv1.OpHistory), channelv1.HistoryRequest{ChannelID: created.Channel.ID}, &h); err != nil || len(h.Messages) != 1 {
		t.Fatalf("history: %+v %v", h, err)
	}

	in.DeleteTenant(t, tenantID)
	in.Settled(t)
	var list channelv1.ListResponse
	if err := in.Client.Call(ctx, channelv1.Subject(channelv1.OpList), channelv1.ListRequest{}, &list); err != nil || len(list.Channels) != 0 {
		t.Fatalf("channels after the cascade: %+v %v", list, err)
	}
	s, err := js.Stream(context.Background(), messagev1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetLastMsgForSubject(context.Background(), messagev1.Subject(tenantID, created.Channel.ID)); err == nil {
		t.Fatalf("a message of the deleted tenant is left: %d", m.Sequence)
	}
}
