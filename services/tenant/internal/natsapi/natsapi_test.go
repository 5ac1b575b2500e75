package natsapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/events"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

type fixture struct {
	client *natsrpc.Client
	nc     *nats.Conn // the service's connection
	js     jetstream.JetStream
	table  store.Table
	repo   *repo.Repo
}

// start runs the tenant service (micro endpoints, real store, real JetStream) on an
// in-process NATS server and returns a client on a connection of its own.
func start(t *testing.T) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := platform.EnsureStream(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	table := storetest.NewTable(t, repo.Table)
	rp := repo.New(table)
	svc := tenant.NewService(rp, events.NewPublisher(nc, js, zerolog.Nop()))
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: tenantv1.Service, Description: "test", ContractVersion: tenantv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	if err := natsapi.Register(ms, srv, svc); err != nil {
		t.Fatal(err)
	}
	// The endpoints' subscriptions reach the server with the next round trip; until then
	// a client on another connection would find no responders.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &fixture{client: natsrpc.NewClient(natsrpctest.Connect(t, ns)), nc: nc, js: js, table: table, repo: rp}
}

func as(kind natsrpc.PrincipalKind, id string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{RequestID: "req-1", Kind: kind, PrincipalID: id, Email: id + "@example.com"})
}

func asUser(id string) context.Context { return as(natsrpc.KindUser, id) }

func asAdmin(id string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{Kind: natsrpc.KindUser, PrincipalID: id, PlatformAdmin: true})
}

var system = as(natsrpc.KindSystem, "gateway")

func (f *fixture) call(t *testing.T, ctx context.Context, op string, req, resp any) {
	t.Helper()
	if err := f.client.Call(ctx, tenantv1.Subject(op), req, resp); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// fails calls op and checks the wire error's status and code.
func (f *fixture) fails(t *testing.T, ctx context.Context, op string, req any, status int, code string) *natsrpc.Error {
	t.Helper()
	err := f.client.Call(ctx, tenantv1.Subject(op), req, nil)
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: error %v, want %d %s", op, err, status, code)
	}
	return e
}

func (f *fixture) create(t *testing.T, ctx context.Context, name string) tenantv1.CreateResponse {
	t.Helper()
	var out tenantv1.CreateResponse
	f.call(t, ctx, tenantv1.OpCreate, tenantv1.CreateRequest{Name: name, AdminEmail: "ops@acme.test"}, &out)
	return out
}

func TestEveryOperation(t *testing.T) {
	t.Parallel()
	f := start(t)
	alice := asUser("alice")

	// create
	created := f.create(t, alice, "Acme")
	id := created.TenantID
	if created.Tenant.ID != id || created.Tenant.TenantID != id || created.Tenant.SubscriptionTier != plans.Basic ||
		created.APIKey[:4] != tenantv1.APIKeyPrefix || created.Tenant.Role != natsrpc.RoleOwner {
		t.Fatalf("create: %+v", created)
	}
	// No reply carries the key hash or bookkeeping (read the raw JSON).
	var got tenantv1.TenantResponse
	msg := nats.NewMsg(tenantv1.Subject(tenantv1.OpGet))
	msg.Header.Set(natsrpc.HeaderPrincipalKind, string(natsrpc.KindUser))
	msg.Header.Set(natsrpc.HeaderPrincipalID, "alice")
	msg.Data = []byte(`{"tenant_id":"` + id + `"}`)
	reply, err := f.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]map[string]any
	if err := json.Unmarshal(reply.Data, &generic); err != nil {
		t.Fatal(err)
	}
	for k := range generic["tenant"] {
		if k == "api_key_hash" || k == "owner_count" || k == "deleting" {
			t.Fatalf("reply leaks %s: %s", k, reply.Data)
		}
	}
	if _, ok := generic["tenant"]["subscription_expires_at"]; !ok {
		t.Fatalf("subscription_expires_at missing: %s", reply.Data)
	}

	// get (API key) and list
	f.call(t, as(natsrpc.KindAPIKey, id), tenantv1.OpGet, tenantv1.GetRequest{TenantID: id}, &got)
	if got.Tenant.Name != "Acme" || !got.Tenant.CreatedAt.Equal(created.Tenant.CreatedAt) || got.Tenant.CreatedAt.Location() != time.UTC {
		t.Fatalf("get: %+v", got.Tenant)
	}
	var list tenantv1.ListResponse
	f.call(t, alice, tenantv1.OpList, tenantv1.ListRequest{}, &list)
	if len(list.Tenants) != 1 || list.Tenants[0].Role != natsrpc.RoleOwner || list.Cursor != "" {
		t.Fatalf("list: %+v", list)
	}

	// update
	f.call(t, alice, tenantv1.OpUpdate, tenantv1.UpdateRequest{TenantID: id, Changes: tenantv1.UpdateBody{
		Name: patch.Of("Renamed"), Website: patch.Of("https://acme.test"),
	}}, &got)
	if got.Tenant.Name != "Renamed" || got.Tenant.Website == nil || *got.Tenant.Website != "https://acme.test" {
		t.Fatalf("update: %+v", got.Tenant)
	}

	// set_plan
	f.call(t, asAdmin("root"), tenantv1.OpSetPlan, tenantv1.SetPlanRequest{TenantID: id, Changes: tenantv1.SetPlanBody{SubscriptionTier: plans.Pro}}, &got)
	if got.Tenant.SubscriptionTier != plans.Pro || *got.Tenant.Limits.MaxChannels != 100 {
		t.Fatalf("set_plan: %+v", got.Tenant)
	}

	// members
	var mr tenantv1.MemberResponse
	f.call(t, alice, tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "bob", Email: "bob@x.test", Role: natsrpc.RoleAdmin}}, &mr)
	if mr.Member.ID != "bob" || mr.Member.UserID != "bob" || mr.Member.Role != natsrpc.RoleAdmin || mr.Member.Email != "bob@x.test" || mr.Member.JoinedAt.IsZero() {
		t.Fatalf("members_add: %+v", mr.Member)
	}
	f.call(t, asUser("bob"), tenantv1.OpMembersUpdate, tenantv1.MembersUpdateRequest{TenantID: id, UserID: "bob", Changes: tenantv1.MemberUpdateBody{Role: natsrpc.RoleMember}}, &mr)
	if mr.Member.Role != natsrpc.RoleMember {
		t.Fatalf("members_update: %+v", mr.Member)
	}
	var members tenantv1.MembersListResponse
	f.call(t, asUser("bob"), tenantv1.OpMembersList, tenantv1.MembersListRequest{TenantID: id}, &members)
	if len(members.Members) != 2 {
		t.Fatalf("members_list: %+v", members)
	}

	// lookups
	var mem tenantv1.Membership
	f.call(t, system, tenantv1.OpLookupMembership, tenantv1.LookupMembershipRequest{TenantID: id, UserID: "bob"}, &mem)
	if mem.TenantID != id || mem.Role != natsrpc.RoleMember || mem.TenantStatus != tenantv1.StatusActive {
		t.Fatalf("lookup_membership: %+v", mem)
	}
	var ut tenantv1.LookupUserTenantsResponse
	f.call(t, system, tenantv1.OpLookupUserTenants, tenantv1.LookupUserTenantsRequest{UserID: "alice"}, &ut)
	if len(ut.Memberships) != 1 || ut.More || ut.Memberships[0].Role != natsrpc.RoleOwner {
		t.Fatalf("lookup_user_tenants: %+v", ut)
	}
	var key tenantv1.LookupAPIKeyResponse
	f.call(t, system, tenantv1.OpLookupAPIKey, tenantv1.LookupAPIKeyRequest{KeyHash: tenant.HashAPIKey(created.APIKey)}, &key)
	if key.TenantID != id || key.TenantStatus != tenantv1.StatusActive || key.TenantTier != mem.TenantTier || mem.TenantTier == "" {
		t.Fatalf("lookup_api_key: %+v (membership tier %q)", key, mem.TenantTier)
	}
	var standing tenantv1.TenantStanding
	f.call(t, system, tenantv1.OpLookupTenant, tenantv1.LookupTenantRequest{TenantID: id}, &standing)
	if standing.TenantID != id || standing.TenantStatus != tenantv1.StatusActive || standing.TenantTier != mem.TenantTier {
		t.Fatalf("lookup_tenant: %+v", standing)
	}

	// rotate: the old key stops at once, the new one works
	var rot tenantv1.RotateAPIKeyResponse
	f.call(t, alice, tenantv1.OpRotateAPIKey, tenantv1.RotateAPIKeyRequest{TenantID: id}, &rot)
	f.fails(t, system, tenantv1.OpLookupAPIKey, tenantv1.LookupAPIKeyRequest{KeyHash: tenant.HashAPIKey(created.APIKey)}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.call(t, system, tenantv1.OpLookupAPIKey, tenantv1.LookupAPIKeyRequest{KeyHash: tenant.HashAPIKey(rot.APIKey)}, &key)

	// members_remove
	f.call(t, alice, tenantv1.OpMembersRemove, tenantv1.MembersRemoveRequest{TenantID: id, UserID: "bob"}, nil)
	f.fails(t, system, tenantv1.OpLookupMembership, tenantv1.LookupMembershipRequest{TenantID: id, UserID: "bob"}, http.StatusNotFound, natsrpc.CodeNotFound)

	// delete: the event is on the stream, with its dedup id; the tenant is gone at once
	f.call(t, alice, tenantv1.OpDelete, tenantv1.DeleteRequest{TenantID: id}, nil)
	sm, err := f.js.Stream(context.Background(), platform.Stream)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := sm.GetLastMsgForSubject(context.Background(), tenantv1.SubjectTenantDeleted)
	if err != nil {
		t.Fatal(err)
	}
	var deleted tenantv1.TenantDeleted
	if err := json.Unmarshal(ev.Data, &deleted); err != nil || deleted.TenantID != id || deleted.RequestID != "req-1" {
		t.Fatalf("deletion event %s: %v", ev.Data, err)
	}
	if ev.Header.Get(jetstream.MsgIDHeader) != tenantv1.DeletedMsgID(id) {
		t.Fatalf("deletion event id %q", ev.Header.Get(jetstream.MsgIDHeader))
	}
	f.fails(t, alice, tenantv1.OpGet, tenantv1.GetRequest{TenantID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, tenantv1.OpLookupAPIKey, tenantv1.LookupAPIKeyRequest{KeyHash: tenant.HashAPIKey(rot.APIKey)}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, tenantv1.OpLookupTenant, tenantv1.LookupTenantRequest{TenantID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
}

func TestChangeEvents(t *testing.T) {
	t.Parallel()
	f := start(t)
	sub, err := f.nc.SubscribeSync(tenantv1.SubjectTenantChanged)
	if err != nil {
		t.Fatal(err)
	}
	id := f.create(t, asUser("alice"), "A").TenantID
	f.call(t, asUser("alice"), tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "bob", Role: natsrpc.RoleViewer}}, nil)
	f.call(t, asUser("alice"), tenantv1.OpRotateAPIKey, tenantv1.RotateAPIKeyRequest{TenantID: id}, nil)
	f.call(t, asAdmin("root"), tenantv1.OpSetPlan, tenantv1.SetPlanRequest{TenantID: id, Changes: tenantv1.SetPlanBody{Status: tenantv1.StatusSuspended}}, nil)
	f.call(t, asUser("alice"), tenantv1.OpDelete, tenantv1.DeleteRequest{TenantID: id}, nil)
	for _, want := range []string{tenantv1.ChangeMembers, tenantv1.ChangeAPIKey, tenantv1.ChangeStatus, tenantv1.ChangeDeleted} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		var ev tenantv1.TenantChanged
		if err := json.Unmarshal(m.Data, &ev); err != nil || ev.TenantID != id || ev.Change != want {
			t.Fatalf("event %s, want %s", m.Data, want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	f := start(t)
	alice := asUser("alice")
	id := f.create(t, alice, "Acme").TenantID
	f.call(t, alice, tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "viewer", Role: natsrpc.RoleViewer}}, nil)
	unknown := "7a1b2c3d-0000-4000-8000-000000000000"

	// 400
	reply, err := f.nc.Request(tenantv1.Subject(tenantv1.OpCreate), []byte("{not json"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := natsrpc.ReplyError(reply); e == nil || e.Status != http.StatusBadRequest || e.Code != natsrpc.CodeInvalidJSON {
		t.Fatalf("malformed JSON: %v", e)
	}
	f.fails(t, alice, tenantv1.OpList, tenantv1.ListRequest{Cursor: "forged"}, http.StatusBadRequest, natsrpc.CodeInvalidNextToken)
	f.fails(t, alice, tenantv1.OpMembersList, tenantv1.MembersListRequest{TenantID: id, Cursor: "forged"}, http.StatusBadRequest, natsrpc.CodeInvalidNextToken)

	// 422: from the contract's Validate and from the domain's caller-dependent rules
	e := f.fails(t, alice, tenantv1.OpCreate, tenantv1.CreateRequest{AdminEmail: "a@b.test"}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 1 || e.Errors[0].Field != "name" {
		t.Fatalf("missing name: %+v", e)
	}
	e = f.fails(t, alice, tenantv1.OpCreate, tenantv1.CreateRequest{Name: "x", AdminEmail: "a@b.test", SubscriptionTier: plans.Enterprise}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 1 || e.Errors[0].Field != "subscription_tier" {
		t.Fatalf("enterprise by a user: %+v", e)
	}
	e = f.fails(t, alice, tenantv1.OpCreate, tenantv1.CreateRequest{Name: "x", AdminEmail: "a@b.test", TrialDays: 31}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 1 || e.Errors[0].Field != "trial_days" {
		t.Fatalf("long trial by a user: %+v", e)
	}
	f.fails(t, alice, tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "x", Role: "boss"}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)

	// 403
	f.fails(t, as(natsrpc.KindAPIKey, id), tenantv1.OpCreate, tenantv1.CreateRequest{Name: "x", AdminEmail: "a@b.test"}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, asUser("viewer"), tenantv1.OpUpdate, tenantv1.UpdateRequest{TenantID: id, Changes: tenantv1.UpdateBody{Name: patch.Of("x")}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, alice, tenantv1.OpSetPlan, tenantv1.SetPlanRequest{TenantID: id, Changes: tenantv1.SetPlanBody{SubscriptionTier: plans.Free}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, as(natsrpc.KindAPIKey, id), tenantv1.OpDelete, tenantv1.DeleteRequest{TenantID: id}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, as(natsrpc.KindAPIKey, id), tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "x", Role: natsrpc.RoleViewer}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, asUser("viewer"), tenantv1.OpRotateAPIKey, tenantv1.RotateAPIKeyRequest{TenantID: id}, http.StatusForbidden, natsrpc.CodeForbidden)

	// 404: malformed ids (contract), unknown tenant, another tenant's caller, unknown member
	f.fails(t, alice, tenantv1.OpGet, tenantv1.GetRequest{TenantID: "NOT-A-UUID"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, alice, tenantv1.OpGet, tenantv1.GetRequest{TenantID: unknown}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, asUser("mallory"), tenantv1.OpGet, tenantv1.GetRequest{TenantID: id}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, as(natsrpc.KindAPIKey, unknown), tenantv1.OpUpdate, tenantv1.UpdateRequest{TenantID: id, Changes: tenantv1.UpdateBody{Name: patch.Of("x")}}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, alice, tenantv1.OpMembersUpdate, tenantv1.MembersUpdateRequest{TenantID: id, UserID: "ghost", Changes: tenantv1.MemberUpdateBody{Role: natsrpc.RoleViewer}}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, alice, tenantv1.OpMembersRemove, tenantv1.MembersRemoveRequest{TenantID: id, UserID: "ghost"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, tenantv1.OpLookupMembership, tenantv1.LookupMembershipRequest{TenantID: id, UserID: "ghost"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, tenantv1.OpLookupAPIKey, tenantv1.LookupAPIKeyRequest{KeyHash: "nothex"}, http.StatusNotFound, natsrpc.CodeNotFound)

	// 409
	f.fails(t, alice, tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "viewer", Role: natsrpc.RoleViewer}}, http.StatusConflict, natsrpc.CodeConflict)
	e = f.fails(t, alice, tenantv1.OpMembersUpdate, tenantv1.MembersUpdateRequest{TenantID: id, UserID: "alice", Changes: tenantv1.MemberUpdateBody{Role: natsrpc.RoleAdmin}}, http.StatusConflict, natsrpc.CodeConflict)
	if e.Detail != "the last owner cannot be removed or demoted" {
		t.Fatalf("last owner detail %q", e.Detail)
	}
	f.fails(t, alice, tenantv1.OpMembersRemove, tenantv1.MembersRemoveRequest{TenantID: id, UserID: "alice"}, http.StatusConflict, natsrpc.CodeConflict)

	// 503: the deletion event cannot be stored (no stream); nothing is deleted
	if err := f.js.DeleteStream(context.Background(), platform.Stream); err != nil {
		t.Fatal(err)
	}
	f.fails(t, alice, tenantv1.OpDelete, tenantv1.DeleteRequest{TenantID: id}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.call(t, alice, tenantv1.OpGet, tenantv1.GetRequest{TenantID: id}, nil)

	// 500: a failure nobody classified (a tenant item that does not decode) is internal,
	// with nothing of the cause in the reply.
	broken := "7a1b2c3d-0000-4000-8000-00000000b0b0"
	if _, err := f.table.Put(context.Background(), store.Item{Key: store.Key{PK: "T#" + broken, SK: "TENANT"}, Data: []byte("{not json")}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	e = f.fails(t, system, tenantv1.OpGet, tenantv1.GetRequest{TenantID: broken}, http.StatusInternalServerError, natsrpc.CodeInternal)
	if e.Detail != "internal error" {
		t.Fatalf("500 detail %q", e.Detail)
	}
}

func TestTooManyTenantsUnderConcurrency(t *testing.T) {
	t.Parallel()
	f := start(t)
	carol := asUser("carol")
	for range tenantv1.MaxOwnedTenants - 1 {
		f.create(t, carol, "t")
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = f.client.Call(carol, tenantv1.Subject(tenantv1.OpCreate), tenantv1.CreateRequest{Name: "race", AdminEmail: "a@b.test"}, nil)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		if e, isWire := natsrpc.AsError(err); !isWire || e.Status != http.StatusForbidden || e.Code != natsrpc.CodeForbidden {
			t.Fatalf("refused create: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent creates succeeded, want 1", ok, n)
	}
	var list tenantv1.ListResponse
	f.call(t, carol, tenantv1.OpList, tenantv1.ListRequest{Limit: 100}, &list)
	if len(list.Tenants) != tenantv1.MaxOwnedTenants {
		t.Fatalf("carol lists %d tenants, want %d", len(list.Tenants), tenantv1.MaxOwnedTenants)
	}
	if n, _ := f.repo.Owned(context.Background(), "carol"); n != tenantv1.MaxOwnedTenants {
		t.Fatalf("owned counter %d", n)
	}
}

func TestConcurrentDemotionOfLastTwoOwners(t *testing.T) {
	t.Parallel()
	f := start(t)
	for round := range 5 {
		id := f.create(t, asUser("a"), "t").TenantID
		f.call(t, asUser("a"), tenantv1.OpMembersAdd, tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "b", Role: natsrpc.RoleOwner}}, nil)

		// Each owner demotes the other at the same time (round 0, 2, 4), or removes them.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
			wg.Go(func() {
				if round%2 == 0 {
					errs[i] = f.client.Call(asUser(pair[0]), tenantv1.Subject(tenantv1.OpMembersUpdate),
						tenantv1.MembersUpdateRequest{TenantID: id, UserID: pair[1], Changes: tenantv1.MemberUpdateBody{Role: natsrpc.RoleAdmin}}, nil)
				} else {
					errs[i] = f.client.Call(asUser(pair[0]), tenantv1.Subject(tenantv1.OpMembersRemove),
						tenantv1.MembersRemoveRequest{TenantID: id, UserID: pair[1]}, nil)
				}
			})
		}
		wg.Wait()
		failed := 0
		for _, err := range errs {
			if err != nil {
				failed++
				// The loser either hit the last-owner rule or had lost its own owner role.
				e, ok := natsrpc.AsError(err)
				if !ok || (e.Status != http.StatusConflict && e.Status != http.StatusForbidden && e.Status != http.StatusNotFound) {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
		if failed != 1 {
			t.Fatalf("round %d: %d of 2 demotions failed, want exactly 1 (%v)", round, failed, errs)
		}
		var members tenantv1.MembersListResponse
		f.call(t, system, tenantv1.OpMembersList, tenantv1.MembersListRequest{TenantID: id}, &members)
		owners := 0
		for _, m := range members.Members {
			if m.Role == natsrpc.RoleOwner {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("round %d: %d owners left: %+v", round, owners, members.Members)
		}
	}
}

func TestMicroDiscovery(t *testing.T) {
	t.Parallel()
	f := start(t)
	reply, err := f.nc.Request("$SRV.INFO."+tenantv1.Service, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != tenantv1.Service || info.Version != buildinfo.Version {
		t.Fatalf("info: name %q version %q", info.Name, info.Version)
	}
	if info.Metadata["contract_version"] != tenantv1.Version || info.Metadata["git_sha"] != buildinfo.GitSHA || info.Metadata["go_version"] == "" {
		t.Fatalf("metadata: %v", info.Metadata)
	}
	subjects := map[string]bool{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = true
	}
	for _, op := range []string{tenantv1.OpCreate, tenantv1.OpList, tenantv1.OpGet, tenantv1.OpUpdate, tenantv1.OpSetPlan,
		tenantv1.OpDelete, tenantv1.OpRotateAPIKey, tenantv1.OpMembersList, tenantv1.OpMembersAdd, tenantv1.OpMembersUpdate,
		tenantv1.OpMembersRemove, tenantv1.OpLookupMembership, tenantv1.OpLookupUserTenants, tenantv1.OpLookupAPIKey, tenantv1.OpLookupTenant,
		tenantv1.OpBilling} {
		if !subjects[tenantv1.Subject(op)] {
			t.Errorf("endpoint %s not listed", tenantv1.Subject(op))
		}
	}
	if len(info.Endpoints) != 16 {
		t.Errorf("%d endpoints listed, want 16", len(info.Endpoints))
	}
}
