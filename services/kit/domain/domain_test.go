package domain

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
)

var errKind = errors.New("thing: not found")

func TestErrorf(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", Errorf(errKind, "thing %s not found", "x"))
	if !errors.Is(err, errKind) {
		t.Fatal("the kind is lost")
	}
	if got := Detail(err, "default"); got != "thing x not found" {
		t.Fatalf("Detail = %q", got)
	}
	if got := Detail(errKind, "default"); got != "default" {
		t.Fatalf("Detail of a bare sentinel = %q, want the default", got)
	}
}

func TestBackoffStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Backoff(ctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backoff after cancel = %v", err)
	}
	if err := Backoff(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestActorFromIdentityAndItsChecks(t *testing.T) {
	const tenant = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAgent,
		PrincipalID: "01J00000000000000000000000", Role: "", Plan: plans.Pro})
	a := ActorFrom(ctx)
	if a.TenantID != tenant || a.Kind != natsrpc.KindAgent || a.ID != "01J00000000000000000000000" || a.Plan != plans.Pro {
		t.Fatalf("ActorFrom = %+v", a)
	}
	if got, err := a.Tenant(); err != nil || got != tenant {
		t.Fatalf("Tenant = %q, %v", got, err)
	}
	if p, err := a.TenantPlan(); err != nil || p.ID != plans.Pro {
		t.Fatalf("TenantPlan = %+v, %v", p, err)
	}
	// What the gateway never sends is an error (a 500), not a usable value.
	for _, bad := range []Actor{{TenantID: "not-a-uuid", Plan: plans.Pro}, {TenantID: tenant, Plan: "platinum"}} {
		_, terr := bad.Tenant()
		_, perr := bad.TenantPlan()
		if terr == nil && perr == nil {
			t.Fatalf("%+v passed both checks", bad)
		}
	}
}
