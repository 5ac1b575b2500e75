package main

import (
	"context"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
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
	in.DeleteTenant(t, tenantID)
	in.Settled(t)
	if n := agents(); n != 0 {
		t.Fatalf("%d agents left after the cascade", n)
	}
}
