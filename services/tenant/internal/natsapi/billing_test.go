package natsapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// in is the identity of a caller acting in tenant (the gateway resolved it).
func in(tenantID string, kind natsrpc.PrincipalKind, id, role string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		RequestID: "req-b", TenantID: tenantID, Kind: kind, PrincipalID: id, Role: role, Plan: plans.Basic,
	})
}

func TestBilling(t *testing.T) {
	t.Parallel()
	f := start(t)
	alice := asUser("alice")

	// A trial tenant: billed at the end of the trial.
	var trial tenantv1.CreateResponse
	f.call(t, alice, tenantv1.OpCreate, tenantv1.CreateRequest{Name: "Trial", AdminEmail: "a@x.test", TrialDays: 14, SubscriptionTier: plans.Pro}, &trial)
	var b tenantv1.BillingResponse
	f.call(t, in(trial.TenantID, natsrpc.KindUser, "alice", natsrpc.RoleOwner), tenantv1.OpBilling, tenantv1.BillingRequest{}, &b)
	wantEnd := trial.Tenant.SubscriptionExpiresAt.UTC().Format(time.DateOnly)
	if b.TenantID != trial.TenantID || b.Plan != plans.Pro || b.Amount != 29 || b.Currency != "USD" || b.BillingCycle != "monthly" ||
		b.Status != tenantv1.PaymentTrial || b.NextBillingDate != wantEnd {
		t.Fatalf("trial billing = %+v, want pro $29 trial next %s", b, wantEnd)
	}

	// A paying tenant: the next monthly anniversary of its creation, after today.
	plain := f.create(t, alice, "Plain")
	id := plain.TenantID
	f.call(t, alice, tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "vic", Role: natsrpc.RoleViewer}}, nil)
	for name, ctx := range map[string]context.Context{
		"viewer":  in(id, natsrpc.KindUser, "vic", natsrpc.RoleViewer),
		"api key": in(id, natsrpc.KindAPIKey, id, natsrpc.RoleAdmin),
	} {
		var got tenantv1.BillingResponse
		f.call(t, ctx, tenantv1.OpBilling, tenantv1.BillingRequest{}, &got)
		next, err := time.Parse(time.DateOnly, got.NextBillingDate)
		today := time.Now().UTC().Truncate(24 * time.Hour)
		if err != nil || got.Plan != plans.Basic || got.Amount != 9 || got.Status != plain.Tenant.PaymentStatus ||
			!next.After(today) || next.After(today.AddDate(0, 1, 1)) {
			t.Fatalf("%s: billing = %+v (%v), want basic $9 and a date within the next month", name, got, err)
		}
	}

	// Agents and outsiders do not read it; a suspended tenant still does.
	f.fails(t, in(id, natsrpc.KindAgent, "01HZY3K9W8X7V6T5S4R3Q2P1N0", ""), tenantv1.OpBilling, tenantv1.BillingRequest{}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, in(id, natsrpc.KindUser, "mallory", natsrpc.RoleOwner), tenantv1.OpBilling, tenantv1.BillingRequest{}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, in(id, natsrpc.KindAPIKey, trial.TenantID, natsrpc.RoleAdmin), tenantv1.OpBilling, tenantv1.BillingRequest{}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.call(t, asAdmin("root"), tenantv1.OpSetPlan, tenantv1.SetPlanRequest{TenantID: id, Changes: tenantv1.SetPlanBody{Status: tenantv1.StatusSuspended}}, nil)
	f.call(t, in(id, natsrpc.KindUser, "alice", natsrpc.RoleOwner), tenantv1.OpBilling, tenantv1.BillingRequest{}, &b)
	if b.Plan != plans.Basic {
		t.Fatalf("suspended tenant's billing = %+v", b)
	}
}
