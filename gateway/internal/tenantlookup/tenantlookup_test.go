package tenantlookup

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

func TestLookups(t *testing.T) {
	const tid = "abcdef00-0000-4000-8000-000000000001"
	ns := natsrpctest.Server(t)
	c := New(natsrpc.NewClient(natsrpctest.Connect(t, ns)))
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{RequestID: "req-1", Kind: natsrpc.KindUser, PrincipalID: "alice"})

	// Nobody serves the lookups yet: 503, never a "not a member".
	if _, err := c.Membership(ctx, tid, "u"); statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("no responders: %v", err)
	}

	nc := natsrpctest.Connect(t, ns)
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	svc, err := micro.AddService(nc, micro.Config{Name: tenantv1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	var (
		mu   sync.Mutex
		seen []natsrpc.Identity
	)
	record := func(ctx context.Context) {
		mu.Lock()
		seen = append(seen, natsrpc.IdentityFrom(ctx))
		mu.Unlock()
	}
	g := svc.AddGroup(tenantv1.Group)
	must(t, g.AddEndpoint(tenantv1.OpLookupMembership, natsrpc.Handle(srv, tenantv1.OpLookupMembership,
		func(ctx context.Context, r *tenantv1.LookupMembershipRequest) (*tenantv1.Membership, error) {
			record(ctx)
			if r.UserID != "alice" {
				return nil, natsrpc.NotFound("not a member")
			}
			return &tenantv1.Membership{TenantID: r.TenantID, Role: "owner", TenantStatus: "active"}, nil
		})))
	must(t, g.AddEndpoint(tenantv1.OpLookupUserTenants, natsrpc.Handle(srv, tenantv1.OpLookupUserTenants,
		func(ctx context.Context, r *tenantv1.LookupUserTenantsRequest) (*tenantv1.LookupUserTenantsResponse, error) {
			record(ctx)
			return &tenantv1.LookupUserTenantsResponse{Memberships: []tenantv1.Membership{{TenantID: r.UserID}}, More: r.Limit == 1}, nil
		})))
	must(t, g.AddEndpoint(tenantv1.OpLookupAPIKey, natsrpc.Handle(srv, tenantv1.OpLookupAPIKey,
		func(ctx context.Context, r *tenantv1.LookupAPIKeyRequest) (*tenantv1.LookupAPIKeyResponse, error) {
			record(ctx)
			return &tenantv1.LookupAPIKeyResponse{TenantID: "tenant-of-" + r.KeyHash, TenantStatus: "suspended"}, nil
		})))
	must(t, g.AddEndpoint(tenantv1.OpLookupTenant, natsrpc.Handle(srv, tenantv1.OpLookupTenant,
		func(ctx context.Context, r *tenantv1.LookupTenantRequest) (*tenantv1.TenantStanding, error) {
			record(ctx)
			if r.TenantID != tid {
				return nil, natsrpc.NotFound("tenant not found")
			}
			return &tenantv1.TenantStanding{TenantID: r.TenantID, TenantStatus: "active", TenantTier: "pro"}, nil
		})))
	must(t, nc.Flush())

	st, err := c.Tenant(ctx, tid)
	if err != nil || st.TenantID != tid || st.TenantStatus != "active" || st.TenantTier != "pro" {
		t.Fatalf("tenant = %+v, %v", st, err)
	}
	if _, err := c.Tenant(ctx, "abcdef00-0000-4000-8000-000000000002"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("unknown tenant: %v", err)
	}

	m, err := c.Membership(ctx, tid, "alice")
	if err != nil || m.Role != "owner" || m.TenantID != tid {
		t.Fatalf("membership = %+v, %v", m, err)
	}
	if _, err := c.Membership(ctx, tid, "bob"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("non-member: %v", err)
	}
	ut, err := c.UserTenants(ctx, "alice", 1)
	if err != nil || len(ut.Memberships) != 1 || !ut.More {
		t.Fatalf("user tenants = %+v, %v", ut, err)
	}
	k, err := c.APIKey(ctx, "abc")
	if err != nil || k.TenantID != "tenant-of-abc" || k.TenantStatus != "suspended" {
		t.Fatalf("api key = %+v, %v", k, err)
	}
	// Lookups go out as the system, keeping the request id; never as the caller.
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 6 {
		t.Fatalf("%d calls seen", len(seen))
	}
	for _, id := range seen {
		if id.Kind != natsrpc.KindSystem || id.RequestID != "req-1" || id.PrincipalID != "" {
			t.Fatalf("identity = %+v", id)
		}
	}
}

func statusOf(err error) int {
	if e, ok := natsrpc.AsError(err); ok {
		return e.Status
	}
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
