package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
)

// The binary's spec serves metrics, applies metering events from the stream it ensures,
// exposes its applier metrics, and purges deleted tenants' usage through its cascade.
func TestSpec(t *testing.T) {
	if s := spec(); s.Name != usagev1.Service || s.ContractVersion != usagev1.Version {
		t.Fatalf("spec %+v", s)
	}
	in := servicetest.Start(t, spec())
	in.WantEndpoints(t, usagev1.Group, usagev1.OpMetrics)

	const tenantID = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
	js := in.JetStream(t)
	today := usagev1.Day(time.Now())
	ev := usagev1.CountsEvent{Source: "01SOURCE000000000000000000", Batch: 1, Entries: []usagev1.CountsEntry{{
		TenantID: tenantID, Date: today, Counts: usagev1.Counts{APICalls: 7, MessagesPublished: 2, MessagesDelivered: 3},
	}}}
	b, _ := json.Marshal(ev)
	deadline := time.Now().Add(30 * time.Second)
	for { // the applier creates the stream when it starts
		if _, err := js.Publish(context.Background(), usagev1.SubjectCounts, b, jetstream.WithMsgID(ev.MsgID())); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: tenantID, Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleViewer, Plan: plans.Free,
	})
	read := func() usagev1.MetricsResponse {
		t.Helper()
		var out usagev1.MetricsResponse
		if err := in.Client.Call(ctx, usagev1.Subject(usagev1.OpMetrics), usagev1.MetricsRequest{}, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for read().Totals.Messages != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the event was not applied: %+v", read().Totals)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := http.Get("http://" + in.Config.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `artcafe_usage_entries_total{kind="counts",outcome="applied"} 1`) {
		t.Fatalf("applier metrics missing:\n%s", body)
	}

	in.DeleteTenant(t, tenantID)
	in.Settled(t)
	if got := read(); got.Totals.APICalls != 0 {
		t.Fatalf("usage after the cascade: %+v", got.Totals)
	}
}
