package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

// recorder is a tenant.Events that remembers what was published; TenantDeleted fails
// while fail is set (the stream being down).
type recorder struct {
	mu      sync.Mutex
	deleted []string
	changed []string // "<tenant>:<change>"
	fail    atomic.Bool
}

func (r *recorder) TenantDeleted(_ context.Context, tenantID string, _ time.Time) error {
	if r.fail.Load() {
		return fmt.Errorf("%w: stream down", tenant.ErrUnavailable)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deleted = append(r.deleted, tenantID)
	return nil
}

func (r *recorder) TenantChanged(_ context.Context, tenantID, change string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changed = append(r.changed, tenantID+":"+change)
}

func (r *recorder) hasChange(tenantID, change string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changed {
		if c == tenantID+":"+change {
			return true
		}
	}
	return false
}

var epoch = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

type env struct {
	svc    *tenant.Service
	repo   *repo.Repo
	events *recorder
	now    atomic.Int64 // unix nanos
}

func newEnv(t *testing.T, wrap ...func(tenant.Repository) tenant.Repository) *env {
	t.Helper()
	e := &env{repo: repo.New(storetest.NewTable(t, repo.Table)), events: &recorder{}}
	e.now.Store(epoch.UnixNano())
	var r tenant.Repository = e.repo
	for _, w := range wrap {
		r = w(r)
	}
	e.svc = tenant.NewService(r, e.events, tenant.WithClock(func() time.Time { return time.Unix(0, e.now.Load()) }))
	return e
}

func (e *env) advance(d time.Duration) { e.now.Add(int64(d)) }

func user(id string) tenant.Actor {
	return tenant.Actor{Kind: natsrpc.KindUser, ID: id, Email: id + "@example.com"}
}

func platformAdmin(id string) tenant.Actor {
	a := user(id)
	a.PlatformAdmin = true
	return a
}

func apiKey(tenantID string) tenant.Actor {
	return tenant.Actor{Kind: natsrpc.KindAPIKey, ID: tenantID}
}

func (e *env) create(t *testing.T, a tenant.Actor) (tenant.Tenant, string) {
	t.Helper()
	tn, key, err := e.svc.Create(context.Background(), a, tenant.CreateInput{Name: "Acme", AdminEmail: "ops@acme.test"})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return tn, key
}

func (e *env) addMember(t *testing.T, by tenant.Actor, tenantID, userID, role string) {
	t.Helper()
	if _, err := e.svc.AddMember(context.Background(), by, tenantID, tenant.MemberInput{UserID: userID, Role: role}); err != nil {
		t.Fatalf("add %s as %s: %v", userID, role, err)
	}
}

func (e *env) owned(t *testing.T, userID string) int64 {
	t.Helper()
	n, err := e.repo.Owned(context.Background(), userID)
	if err != nil {
		t.Fatalf("owned: %v", err)
	}
	return n
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func TestCreateDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, key, err := e.svc.Create(ctx, user("alice"), tenant.CreateInput{Name: "Acme", AdminEmail: "ops@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case tn.Tier != plans.DefaultTier || tn.Status != tenantv1.StatusActive || tn.PaymentStatus != tenantv1.PaymentActive:
		t.Errorf("tier/status/payment = %s/%s/%s", tn.Tier, tn.Status, tn.PaymentStatus)
	case tn.SubscriptionExpiresAt != nil:
		t.Errorf("expires = %v, want nil", tn.SubscriptionExpiresAt)
	case tn.Metadata == nil || len(tn.Metadata) != 0:
		t.Errorf("metadata = %v, want {}", tn.Metadata)
	case !tn.CreatedAt.Equal(epoch) || tn.CreatedAt.Location() != time.UTC:
		t.Errorf("created_at = %v", tn.CreatedAt)
	case len(key) < 40 || key[:4] != tenantv1.APIKeyPrefix:
		t.Errorf("api key %q", key)
	case tn.APIKeyHash != tenant.HashAPIKey(key):
		t.Error("stored hash is not the key's hash")
	}
	// The tenant is readable again, the creator is its owner and counted.
	got, err := e.svc.Get(ctx, user("alice"), tn.ID)
	if err != nil || got.Name != "Acme" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	m, err := e.svc.LookupMembership(ctx, tn.ID, "alice")
	if err != nil || m.Role != natsrpc.RoleOwner {
		t.Fatalf("membership = %+v, %v", m, err)
	}
	if n := e.owned(t, "alice"); n != 1 {
		t.Fatalf("owned = %d, want 1", n)
	}
	if got, err := e.svc.LookupAPIKey(ctx, tenant.HashAPIKey(key)); err != nil || got.ID != tn.ID {
		t.Fatalf("lookup key = %v, %v", got.ID, err)
	}
}

func TestCreateRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		actor tenant.Actor
		in    tenant.CreateInput
		field string // expected ValidationError field
		err   error
	}{
		{"enterprise by a user", user("u1"), tenant.CreateInput{Tier: plans.Enterprise}, "subscription_tier", tenant.ErrInvalid},
		{"long trial by a user", user("u1"), tenant.CreateInput{TrialDays: 31}, "trial_days", tenant.ErrInvalid},
		{"negative trial", platformAdmin("p"), tenant.CreateInput{TrialDays: -1}, "trial_days", tenant.ErrInvalid},
		{"unknown tier", platformAdmin("p"), tenant.CreateInput{Tier: "gold"}, "subscription_tier", tenant.ErrInvalid},
		{"API key", apiKey("x"), tenant.CreateInput{}, "", tenant.ErrForbidden},
		{"agent", tenant.Actor{Kind: natsrpc.KindAgent, ID: "a"}, tenant.CreateInput{}, "", tenant.ErrForbidden},
		{"system", tenant.Actor{Kind: natsrpc.KindSystem}, tenant.CreateInput{}, "", tenant.ErrForbidden},
	}
	for _, tt := range tests {
		tt.in.Name, tt.in.AdminEmail = "N", "a@b.test"
		_, _, err := e.svc.Create(ctx, tt.actor, tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
			continue
		}
		var ve *tenant.ValidationError
		if tt.field != "" && (!errors.As(err, &ve) || ve.Field != tt.field) {
			t.Errorf("%s: err = %v, want a validation error on %s", tt.name, err, tt.field)
		}
	}
	if n := e.owned(t, "u1"); n != 0 {
		t.Errorf("refused creates left owned = %d", n)
	}

	// Allowed: a 30-day trial for a user; enterprise and 90 days for a platform admin.
	tn, _, err := e.svc.Create(ctx, user("u1"), tenant.CreateInput{Name: "T", AdminEmail: "a@b.test", Tier: plans.Free, TrialDays: 30})
	if err != nil {
		t.Fatal(err)
	}
	if tn.PaymentStatus != tenantv1.PaymentTrial || tn.SubscriptionExpiresAt == nil || !tn.SubscriptionExpiresAt.Equal(epoch.Add(30*24*time.Hour)) {
		t.Errorf("trial tenant: payment %s, expires %v", tn.PaymentStatus, tn.SubscriptionExpiresAt)
	}
	tn, _, err = e.svc.Create(ctx, platformAdmin("p"), tenant.CreateInput{Name: "E", AdminEmail: "a@b.test", Tier: plans.Enterprise, TrialDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	if tn.Tier != plans.Enterprise {
		t.Errorf("enterprise tenant: %s", tn.Tier)
	}
}

func TestOwnedTenantLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var first tenant.Tenant
	for i := range tenantv1.MaxOwnedTenants {
		tn, _ := e.create(t, user("bob"))
		if i == 0 {
			first = tn
		}
	}
	_, _, err := e.svc.Create(ctx, user("bob"), tenant.CreateInput{Name: "11", AdminEmail: "a@b.test"})
	wantErr(t, err, tenant.ErrTooManyTenants)

	// Deleting one (and its cascade) frees a slot.
	if err := e.svc.Delete(ctx, user("bob"), first.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Purge(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	e.create(t, user("bob"))

	// Platform admins are counted but not capped.
	for range tenantv1.MaxOwnedTenants + 2 {
		e.create(t, platformAdmin("root"))
	}
	if n := e.owned(t, "root"); n != tenantv1.MaxOwnedTenants+2 {
		t.Fatalf("admin owned = %d", n)
	}
}

// failingRepo fails one kind of write, so the compensation of Create can be watched.
type failingRepo struct {
	tenant.Repository
	failTenant, failKey bool
}

var errInjected = errors.New("injected failure")

func (f *failingRepo) CreateTenant(ctx context.Context, t *tenant.Tenant) error {
	if f.failTenant {
		return errInjected
	}
	return f.Repository.CreateTenant(ctx, t)
}

func (f *failingRepo) PutAPIKey(ctx context.Context, hash, tenantID string) error {
	if f.failKey {
		return errInjected
	}
	return f.Repository.PutAPIKey(ctx, hash, tenantID)
}

func TestCreateCompensates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func(*failingRepo)
	}{
		{"tenant item fails", func(f *failingRepo) { f.failTenant = true }},
		{"key index fails", func(f *failingRepo) { f.failKey = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := &failingRepo{}
			e := newEnv(t, func(r tenant.Repository) tenant.Repository { fr.Repository = r; return fr })
			ctx := context.Background()
			e.create(t, user("carol")) // one good tenant, to see the counter return to 1
			tc.fail(fr)
			_, _, err := e.svc.Create(ctx, user("carol"), tenant.CreateInput{Name: "X", AdminEmail: "a@b.test"})
			wantErr(t, err, errInjected)
			if n := e.owned(t, "carol"); n != 1 {
				t.Errorf("owned = %d after a failed create, want 1", n)
			}
			ids, _, err := e.repo.ListUserIndex(ctx, "carol", 100, "")
			if err != nil || len(ids) != 1 {
				t.Errorf("user index after a failed create = %v, %v; want only the good tenant", ids, err)
			}
			if ms, _, _ := e.svc.List(ctx, user("carol"), 0, ""); len(ms) != 1 {
				t.Errorf("list = %d tenants, want 1", len(ms))
			}
		})
	}
}

func TestListPagesSkipDanglingIndexItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var ids []string
	for range 5 {
		tn, _ := e.create(t, user("dave"))
		ids = append(ids, tn.ID)
	}
	// Index entries without a member item or without a tenant, as an interrupted write
	// sequence leaves them: before, between and after the real ones.
	for _, id := range []string{
		"00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000001",
		"7fffffff-0000-4000-8000-000000000000", "ffffffff-0000-4000-8000-000000000000",
		"ffffffff-0000-4000-8000-000000000001", "ffffffff-0000-4000-8000-000000000002",
	} {
		if err := e.repo.PutUserIndex(ctx, "dave", id); err != nil {
			t.Fatal(err)
		}
	}
	// A tenant dave was removed from, whose index item stayed behind.
	other, _ := e.create(t, user("erin"))
	if err := e.repo.PutUserIndex(ctx, "dave", other.ID); err != nil {
		t.Fatal(err)
	}
	// A tenant being deleted.
	gone, _ := e.create(t, user("dave"))
	if err := e.svc.Delete(ctx, user("dave"), gone.ID); err != nil {
		t.Fatal(err)
	}

	for _, limit := range []int{1, 2, 3, 5, 50} {
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatalf("limit %d: too many pages", limit)
			}
			ms, next, err := e.svc.List(ctx, user("dave"), limit, cursor)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 && (next != "" || cursor != "") {
				t.Fatalf("limit %d: empty page (cursor in %q, out %q)", limit, cursor, next)
			}
			if len(ms) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(ms))
			}
			for _, m := range ms {
				if seen[m.Tenant.ID] || m.Role != natsrpc.RoleOwner {
					t.Fatalf("limit %d: %s seen twice or role %q", limit, m.Tenant.ID, m.Role)
				}
				seen[m.Tenant.ID] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != len(ids) {
			t.Fatalf("limit %d: listed %d tenants, want %d", limit, len(seen), len(ids))
		}
		for _, id := range ids {
			if !seen[id] {
				t.Fatalf("limit %d: %s missing", limit, id)
			}
		}
	}

	_, _, err := e.svc.List(ctx, user("dave"), 2, "not-a-cursor")
	wantErr(t, err, tenant.ErrInvalidCursor)
	_, _, err = e.svc.List(ctx, apiKey(ids[0]), 2, "")
	wantErr(t, err, tenant.ErrForbidden)

	ms, more, err := e.svc.LookupUserTenants(ctx, "dave", 0)
	if err != nil || len(ms) != 2 || !more {
		t.Fatalf("lookup user tenants = %d, more %v, %v", len(ms), more, err)
	}
	ms, more, err = e.svc.LookupUserTenants(ctx, "erin", 0)
	if err != nil || len(ms) != 1 || more || ms[0].Tenant.ID != other.ID {
		t.Fatalf("lookup erin = %+v, more %v, %v", ms, more, err)
	}
	ms, more, err = e.svc.LookupUserTenants(ctx, "nobody", 0)
	if err != nil || len(ms) != 0 || more {
		t.Fatalf("lookup nobody = %+v, %v, %v", ms, more, err)
	}
}

func TestAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("owner"))
	other, _ := e.create(t, user("stranger"))
	e.addMember(t, user("owner"), tn.ID, "viewer", natsrpc.RoleViewer)

	tests := []struct {
		name  string
		actor tenant.Actor
		want  error
	}{
		{"owner", user("owner"), nil},
		{"viewer", user("viewer"), nil},
		{"stranger", user("stranger"), tenant.ErrNotFound},
		{"platform admin, not a member", platformAdmin("root"), nil},
		{"system", tenant.Actor{Kind: natsrpc.KindSystem}, nil},
		{"own API key", apiKey(tn.ID), nil},
		{"another tenant's API key", apiKey(other.ID), tenant.ErrNotFound},
		{"agent", tenant.Actor{Kind: natsrpc.KindAgent, ID: "01J0000000000000000000000A"}, tenant.ErrForbidden},
		{"no identity", tenant.Actor{}, tenant.ErrForbidden},
	}
	for _, tt := range tests {
		_, err := e.svc.Get(ctx, tt.actor, tn.ID)
		if !errors.Is(err, tt.want) && !(err == nil && tt.want == nil) {
			t.Errorf("get as %s: %v, want %v", tt.name, err, tt.want)
		}
	}
	_, err := e.svc.Get(ctx, user("owner"), "7a1b2c3d-0000-4000-8000-000000000000")
	wantErr(t, err, tenant.ErrNotFound)

	// Members (and the key) may list members; a platform admin who is not one may not.
	if _, _, err := e.svc.ListMembers(ctx, user("viewer"), tn.ID, 0, ""); err != nil {
		t.Errorf("viewer lists members: %v", err)
	}
	if _, _, err := e.svc.ListMembers(ctx, apiKey(tn.ID), tn.ID, 0, ""); err != nil {
		t.Errorf("API key lists members: %v", err)
	}
	_, _, err = e.svc.ListMembers(ctx, platformAdmin("root"), tn.ID, 0, "")
	wantErr(t, err, tenant.ErrForbidden)
	_, _, err = e.svc.ListMembers(ctx, user("stranger"), tn.ID, 0, "")
	wantErr(t, err, tenant.ErrNotFound)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("o"))
	e.addMember(t, user("o"), tn.ID, "adm", natsrpc.RoleAdmin)
	e.addMember(t, user("o"), tn.ID, "mem", natsrpc.RoleMember)
	e.advance(time.Minute)

	got, err := e.svc.Update(ctx, user("adm"), tn.ID, tenant.Changes{
		Name:         patch.Of("Renamed"),
		Metadata:     patch.Of(map[string]any{"a": 1.0}),
		Description:  patch.Of("desc"),
		PrimaryColor: patch.Of("#aabbcc"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Renamed" || got.AdminEmail != "ops@acme.test" || got.Description == nil || *got.Description != "desc" ||
		got.Metadata["a"] != 1.0 || !got.UpdatedAt.Equal(epoch.Add(time.Minute)) || !got.CreatedAt.Equal(epoch) {
		t.Fatalf("after update: %+v", got)
	}
	// Objects are replaced, not merged; null clears; absent keeps.
	got, err = e.svc.Update(ctx, apiKey(tn.ID), tn.ID, tenant.Changes{
		Metadata:    patch.Of(map[string]any{"b": "x"}),
		Description: patch.Null[string](),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != nil || len(got.Metadata) != 1 || got.Metadata["b"] != "x" || got.PrimaryColor == nil {
		t.Fatalf("after second update: %+v", got)
	}
	got, err = e.svc.Update(ctx, user("o"), tn.ID, tenant.Changes{Metadata: patch.Null[map[string]any]()})
	if err != nil || got.Metadata == nil || len(got.Metadata) != 0 {
		t.Fatalf("metadata null: %v, %v", got.Metadata, err)
	}
	// Plan, limits and keys are not writable here: nothing else changed.
	again, _ := e.svc.Get(ctx, user("o"), tn.ID)
	if again.Tier != tn.Tier || again.APIKeyHash != tn.APIKeyHash || again.Status != tn.Status {
		t.Fatal("update changed plan, status or key")
	}

	_, err = e.svc.Update(ctx, user("mem"), tn.ID, tenant.Changes{Name: patch.Of("x")})
	wantErr(t, err, tenant.ErrForbidden)
	_, err = e.svc.Update(ctx, platformAdmin("root"), tn.ID, tenant.Changes{Name: patch.Of("x")})
	wantErr(t, err, tenant.ErrForbidden)
	_, err = e.svc.Update(ctx, user("o"), tn.ID, tenant.Changes{Name: patch.Null[string]()})
	wantErr(t, err, tenant.ErrInvalid)
}

func TestSetPlan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("o"))
	_, err := e.svc.SetPlan(ctx, user("o"), tn.ID, tenant.PlanChanges{Tier: plans.Pro})
	wantErr(t, err, tenant.ErrForbidden)

	got, err := e.svc.SetPlan(ctx, platformAdmin("root"), tn.ID, tenant.PlanChanges{Tier: plans.Pro, Status: tenantv1.StatusSuspended})
	if err != nil {
		t.Fatal(err)
	}
	if got.Tier != plans.Pro || got.Status != tenantv1.StatusSuspended {
		t.Fatalf("after set_plan: %+v", got)
	}
	if !e.events.hasChange(tn.ID, tenantv1.ChangeStatus) {
		t.Error("no status change event")
	}
	m, err := e.svc.LookupMembership(ctx, tn.ID, "o")
	if err != nil || m.Tenant.Status != tenantv1.StatusSuspended {
		t.Fatalf("membership after suspension: %+v, %v", m, err)
	}
	got, err = e.svc.SetPlan(ctx, platformAdmin("root"), tn.ID, tenant.PlanChanges{PaymentStatus: tenantv1.PaymentPastDue})
	if err != nil || got.PaymentStatus != tenantv1.PaymentPastDue || got.Tier != plans.Pro {
		t.Fatalf("payment status: %+v, %v", got, err)
	}
	_, err = e.svc.SetPlan(ctx, platformAdmin("root"), tn.ID, tenant.PlanChanges{})
	wantErr(t, err, tenant.ErrInvalid)
	_, err = e.svc.SetPlan(ctx, platformAdmin("root"), "7a1b2c3d-0000-4000-8000-000000000000", tenant.PlanChanges{Tier: plans.Free})
	wantErr(t, err, tenant.ErrNotFound)
}

func TestMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("o"))
	id := tn.ID
	e.addMember(t, user("o"), id, "adm", natsrpc.RoleAdmin)
	if !e.events.hasChange(id, tenantv1.ChangeMembers) {
		t.Error("no members change event")
	}

	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"duplicate add", func() error {
			_, err := e.svc.AddMember(ctx, user("o"), id, tenant.MemberInput{UserID: "adm", Role: natsrpc.RoleViewer})
			return err
		}, tenant.ErrConflict},
		{"admin grants owner", func() error {
			_, err := e.svc.AddMember(ctx, user("adm"), id, tenant.MemberInput{UserID: "x", Role: natsrpc.RoleOwner})
			return err
		}, tenant.ErrForbidden},
		{"admin adds member", func() error {
			_, err := e.svc.AddMember(ctx, user("adm"), id, tenant.MemberInput{UserID: "mem", Email: "m@x.test", Role: natsrpc.RoleMember})
			return err
		}, nil},
		{"member adds viewer", func() error {
			_, err := e.svc.AddMember(ctx, user("mem"), id, tenant.MemberInput{UserID: "v", Role: natsrpc.RoleViewer})
			return err
		}, tenant.ErrForbidden},
		{"API key adds", func() error {
			_, err := e.svc.AddMember(ctx, apiKey(id), id, tenant.MemberInput{UserID: "v", Role: natsrpc.RoleViewer})
			return err
		}, tenant.ErrForbidden},
		{"stranger adds", func() error {
			_, err := e.svc.AddMember(ctx, user("nobody"), id, tenant.MemberInput{UserID: "v", Role: natsrpc.RoleViewer})
			return err
		}, tenant.ErrNotFound},
		{"admin promotes to owner", func() error {
			_, err := e.svc.UpdateMember(ctx, user("adm"), id, "mem", natsrpc.RoleOwner)
			return err
		}, tenant.ErrForbidden},
		{"admin demotes the owner", func() error {
			_, err := e.svc.UpdateMember(ctx, user("adm"), id, "o", natsrpc.RoleAdmin)
			return err
		}, tenant.ErrForbidden},
		{"admin removes the owner", func() error { return e.svc.RemoveMember(ctx, user("adm"), id, "o") }, tenant.ErrForbidden},
		{"update unknown member", func() error {
			_, err := e.svc.UpdateMember(ctx, user("o"), id, "ghost", natsrpc.RoleViewer)
			return err
		}, tenant.ErrNotFound},
		{"remove unknown member", func() error { return e.svc.RemoveMember(ctx, user("o"), id, "ghost") }, tenant.ErrNotFound},
		{"last owner demotes self", func() error {
			_, err := e.svc.UpdateMember(ctx, user("o"), id, "o", natsrpc.RoleAdmin)
			return err
		}, tenant.ErrLastOwner},
		{"last owner removes self", func() error { return e.svc.RemoveMember(ctx, user("o"), id, "o") }, tenant.ErrLastOwner},
		{"admin demotes member to viewer", func() error {
			m, err := e.svc.UpdateMember(ctx, user("adm"), id, "mem", natsrpc.RoleViewer)
			if err == nil && m.Role != natsrpc.RoleViewer {
				err = fmt.Errorf("role %s", m.Role)
			}
			return err
		}, nil},
		{"owner promotes adm", func() error {
			_, err := e.svc.UpdateMember(ctx, user("o"), id, "adm", natsrpc.RoleOwner)
			return err
		}, nil},
		{"now the first owner may step down", func() error {
			_, err := e.svc.UpdateMember(ctx, user("o"), id, "o", natsrpc.RoleMember)
			return err
		}, nil},
		{"and the second is the last", func() error { return e.svc.RemoveMember(ctx, user("adm"), id, "adm") }, tenant.ErrLastOwner},
		{"admin removes viewer", func() error { return e.svc.RemoveMember(ctx, user("adm"), id, "mem") }, nil},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) && !(err == nil && s.want == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}

	ms, _, err := e.svc.ListMembers(ctx, user("o"), id, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range ms {
		roles[m.UserID] = m.Role
	}
	if len(roles) != 2 || roles["o"] != natsrpc.RoleMember || roles["adm"] != natsrpc.RoleOwner {
		t.Fatalf("members = %v", roles)
	}
	// The removed member's tenant list no longer shows the tenant.
	if list, _, _ := e.svc.List(ctx, user("mem"), 0, ""); len(list) != 0 {
		t.Fatalf("removed member still lists %d tenants", len(list))
	}
	if _, err := e.svc.LookupMembership(ctx, id, "mem"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("removed member lookup: %v", err)
	}
	// Owned counters follow ownership: o stepped down, adm became owner.
	if o, a := e.owned(t, "o"), e.owned(t, "adm"); o != 0 || a != 1 {
		t.Fatalf("owned o=%d adm=%d, want 0 and 1", o, a)
	}
	tnow, _ := e.repo.GetTenant(ctx, id)
	if tnow.OwnerCount != 1 {
		t.Fatalf("owner_count = %d, want 1", tnow.OwnerCount)
	}
}

func TestMembersPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("o"))
	for i := range 7 {
		e.addMember(t, user("o"), tn.ID, fmt.Sprintf("m%d", i), natsrpc.RoleMember)
	}
	seen := map[string]bool{}
	cursor := ""
	for {
		ms, next, err := e.svc.ListMembers(ctx, user("o"), tn.ID, 3, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 || len(ms) > 3 {
			t.Fatalf("page of %d", len(ms))
		}
		for _, m := range ms {
			seen[m.UserID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 8 {
		t.Fatalf("saw %d members, want 8", len(seen))
	}
}

func TestRotateAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, oldKey := e.create(t, user("o"))
	e.addMember(t, user("o"), tn.ID, "mem", natsrpc.RoleMember)

	_, err := e.svc.RotateAPIKey(ctx, apiKey(tn.ID), tn.ID)
	wantErr(t, err, tenant.ErrForbidden)
	_, err = e.svc.RotateAPIKey(ctx, user("mem"), tn.ID)
	wantErr(t, err, tenant.ErrForbidden)

	newKey, err := e.svc.RotateAPIKey(ctx, user("o"), tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if newKey == oldKey || newKey[:4] != tenantv1.APIKeyPrefix {
		t.Fatalf("new key %q", newKey)
	}
	_, err = e.svc.LookupAPIKey(ctx, tenant.HashAPIKey(oldKey))
	wantErr(t, err, tenant.ErrNotFound)
	got, err := e.svc.LookupAPIKey(ctx, tenant.HashAPIKey(newKey))
	if err != nil || got.ID != tn.ID {
		t.Fatalf("new key lookup: %v, %v", got.ID, err)
	}
	if !e.events.hasChange(tn.ID, tenantv1.ChangeAPIKey) {
		t.Error("no api_key change event")
	}
	// An old index item that survived an interrupted rotation still does not work.
	if err := e.repo.PutAPIKey(ctx, tenant.HashAPIKey(oldKey), tn.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.LookupAPIKey(ctx, tenant.HashAPIKey(oldKey))
	wantErr(t, err, tenant.ErrNotFound)
	for _, bad := range []string{"", "zz", oldKey} {
		_, err = e.svc.LookupAPIKey(ctx, bad)
		wantErr(t, err, tenant.ErrNotFound)
	}
}

func TestDeleteAndPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, key := e.create(t, user("o"))
	keep, _ := e.create(t, user("o")) // another tenant of the same owner
	e.addMember(t, user("o"), tn.ID, "adm", natsrpc.RoleAdmin)
	e.addMember(t, user("o"), tn.ID, "co", natsrpc.RoleOwner)
	if e.owned(t, "o") != 2 || e.owned(t, "co") != 1 {
		t.Fatalf("owned before: o=%d co=%d", e.owned(t, "o"), e.owned(t, "co"))
	}

	wantErr(t, e.svc.Delete(ctx, user("adm"), tn.ID), tenant.ErrForbidden)
	wantErr(t, e.svc.Delete(ctx, apiKey(tn.ID), tn.ID), tenant.ErrForbidden)
	wantErr(t, e.svc.Delete(ctx, platformAdmin("root"), tn.ID), tenant.ErrForbidden)
	wantErr(t, e.svc.Delete(ctx, user("x"), tn.ID), tenant.ErrNotFound)

	// The event is the commit: without it nothing changes.
	e.events.fail.Store(true)
	wantErr(t, e.svc.Delete(ctx, user("o"), tn.ID), tenant.ErrUnavailable)
	e.events.fail.Store(false)
	if _, err := e.svc.Get(ctx, user("o"), tn.ID); err != nil {
		t.Fatalf("tenant gone after a failed delete: %v", err)
	}

	if err := e.svc.Delete(ctx, user("co"), tn.ID); err != nil {
		t.Fatal(err)
	}
	if len(e.events.deleted) != 1 || e.events.deleted[0] != tn.ID || !e.events.hasChange(tn.ID, tenantv1.ChangeDeleted) {
		t.Fatalf("events: %v %v", e.events.deleted, e.events.changed)
	}
	// Gone for every reader at once, before the cascade ran.
	_, err := e.svc.Get(ctx, user("o"), tn.ID)
	wantErr(t, err, tenant.ErrNotFound)
	_, err = e.svc.LookupMembership(ctx, tn.ID, "adm")
	wantErr(t, err, tenant.ErrNotFound)
	_, err = e.svc.LookupAPIKey(ctx, tenant.HashAPIKey(key))
	wantErr(t, err, tenant.ErrNotFound)
	wantErr(t, e.svc.Delete(ctx, user("o"), tn.ID), tenant.ErrNotFound)

	for range 2 { // the second run is a redelivery: nothing left, nothing counted twice
		if err := e.svc.Purge(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		if o, co := e.owned(t, "o"), e.owned(t, "co"); o != 1 || co != 0 {
			t.Fatalf("owned after purge: o=%d co=%d, want 1 and 0", o, co)
		}
	}
	if _, err := e.repo.GetTenant(ctx, tn.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("tenant item: %v", err)
	}
	if ms, _, _ := e.repo.ListMembers(ctx, tn.ID, 100, ""); len(ms) != 0 {
		t.Errorf("%d member items left", len(ms))
	}
	for _, u := range []string{"o", "adm", "co"} {
		ids, _, _ := e.repo.ListUserIndex(ctx, u, 100, "")
		for _, id := range ids {
			if id == tn.ID {
				t.Errorf("user index item of %s left", u)
			}
		}
	}
	if _, err := e.repo.GetAPIKey(ctx, tenant.HashAPIKey(key)); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("API key index item: %v", err)
	}
	if _, err := e.svc.Get(ctx, user("o"), keep.ID); err != nil {
		t.Errorf("the other tenant: %v", err)
	}
}

// Two cascade deliveries at once (two replicas, or a redelivery while the first still
// runs) must not uncount an owner twice: only the purge whose delete removed the member
// item decrements.
func TestConcurrentPurges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tn, _ := e.create(t, user("o"))
	owners := []string{"o"}
	for i := range 6 {
		id := fmt.Sprintf("co%d", i)
		e.create(t, user(id)) // each co-owner owns one tenant of their own too
		e.addMember(t, user("o"), tn.ID, id, natsrpc.RoleOwner)
		owners = append(owners, id)
	}
	e.create(t, user("o"))
	if err := e.svc.Delete(ctx, user("o"), tn.ID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = e.svc.Purge(ctx, tn.ID) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("purge: %v", err)
		}
	}
	for _, u := range owners {
		if n := e.owned(t, u); n != 1 {
			t.Errorf("owned %s = %d, want 1", u, n)
		}
	}
}
