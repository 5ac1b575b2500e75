package main

import (
	"context"
	"errors"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

func TestSpecServesEveryOperation(t *testing.T) {
	if s := spec(); s.Name != tenantv1.Service || s.ContractVersion != tenantv1.Version {
		t.Fatalf("spec %+v", s)
	}
	in := servicetest.Start(t, spec())
	in.WantEndpoints(t, tenantv1.Group,
		tenantv1.OpCreate, tenantv1.OpList, tenantv1.OpGet, tenantv1.OpUpdate, tenantv1.OpSetPlan,
		tenantv1.OpDelete, tenantv1.OpRotateAPIKey, tenantv1.OpMembersList, tenantv1.OpMembersAdd,
		tenantv1.OpMembersUpdate, tenantv1.OpMembersRemove, tenantv1.OpLookupMembership,
		tenantv1.OpLookupUserTenants, tenantv1.OpLookupAPIKey, tenantv1.OpLookupTenant, tenantv1.OpBilling)
}

// A deleted tenant reaches the service's own cascade, which purges it with the domain's
// Purge: the tenant item, kept (marked deleting) until then, is gone.
func TestSpecPurgesDeletedTenants(t *testing.T) {
	in := servicetest.Start(t, spec())
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{Kind: natsrpc.KindUser, PrincipalID: "u"})
	var created tenantv1.CreateResponse
	if err := in.Client.Call(ctx, tenantv1.Subject(tenantv1.OpCreate), tenantv1.CreateRequest{Name: "T", AdminEmail: "a@b.test"}, &created); err != nil {
		t.Fatal(err)
	}
	if err := in.Client.Call(ctx, tenantv1.Subject(tenantv1.OpDelete), tenantv1.DeleteRequest{TenantID: created.TenantID}, &tenantv1.Empty{}); err != nil {
		t.Fatal(err)
	}
	in.Settled(t)
	if _, err := repo.New(in.Table).GetTenant(context.Background(), created.TenantID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("tenant item after the cascade: %v", err)
	}
}
