package main

import (
	"context"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/gauge/gaugetest"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

func TestSpecServesEveryOperation(t *testing.T) {
	if s := spec(); s.Name != sshkeyv1.Service || s.ContractVersion != sshkeyv1.Version {
		t.Fatalf("spec %+v", s)
	}
	in := servicetest.Start(t, spec())
	in.WantEndpoints(t, sshkeyv1.Group,
		sshkeyv1.OpCreate, sshkeyv1.OpList, sshkeyv1.OpGet, sshkeyv1.OpRevoke, sshkeyv1.OpDelete,
		sshkeyv1.OpChallenge, sshkeyv1.OpVerify, sshkeyv1.OpCreateForAgent, sshkeyv1.OpDeleteForAgent,
		sshkeyv1.OpLookupCredential, sshkeyv1.OpCheckPublicKey)
}

// A deleted tenant's keys are purged by the service's own cascade.
func TestSpecPurgesDeletedTenants(t *testing.T) {
	in := servicetest.Start(t, spec())
	const tenantID = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: tenantID, Kind: natsrpc.KindSystem, PrincipalID: "agent", Plan: plans.Free,
	})
	keys := func() int {
		t.Helper()
		var out sshkeyv1.ListResponse
		if err := in.Client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpList), sshkeyv1.ListRequest{}, &out); err != nil {
			t.Fatal(err)
		}
		return len(out.Keys)
	}
	req := sshkeyv1.CreateForAgentRequest{
		AgentID: "01J00000000000000000000000",
		Key:     sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line},
	}
	if err := in.Client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCreateForAgent), req, &sshkeyv1.KeyResponse{}); err != nil {
		t.Fatal(err)
	}
	if n := keys(); n != 1 {
		t.Fatalf("%d keys before the deletion", n)
	}
	// The new count reaches usage as a gauge event.
	gaugetest.Wait(t, in.JetStream(t), tenantID, usagev1.GaugeSSHKeys, 1)
	in.DeleteTenant(t, tenantID)
	in.Settled(t)
	if n := keys(); n != 0 {
		t.Fatalf("%d keys left after the cascade", n)
	}
}
