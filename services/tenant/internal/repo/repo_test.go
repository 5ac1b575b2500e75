package repo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

func ptr[T any](v T) *T { return &v }

func TestTenantRoundTrip(t *testing.T) {
	t.Parallel()
	r := New(storetest.NewTable(t, Table))
	ctx := context.Background()
	now := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	in := tenant.Tenant{
		ID: "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01", Name: "Acme", AdminEmail: "a@b.test",
		Tier: plans.Enterprise, Status: "active", PaymentStatus: "trial", SubscriptionExpiresAt: ptr(now.Add(time.Hour)),
		Metadata:    map[string]any{"n": 1.5, "s": "x", "o": map[string]any{"k": []any{"v"}}},
		Description: ptr("d"), Website: ptr("https://acme.test"), PrimaryColor: ptr("#000000"),
		CreatedAt: now, UpdatedAt: now, APIKeyHash: tenant.HashAPIKey("art_k"), OwnerCount: 2,
	}
	if err := r.CreateTenant(ctx, &in); err != nil {
		t.Fatal(err)
	}
	if in.Version == 0 {
		t.Fatal("create did not set the version")
	}
	got, err := r.GetTenant(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	dup := in
	if err := r.CreateTenant(ctx, &dup); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}

	// Optimistic concurrency: the second writer with the same version loses.
	a, b := got, got
	a.Name = "A"
	if err := r.UpdateTenant(ctx, &a); err != nil {
		t.Fatal(err)
	}
	b.Name = "B"
	if err := r.UpdateTenant(ctx, &b); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if got, _ := r.GetTenant(ctx, in.ID); got.Name != "A" || got.Version != a.Version {
		t.Fatalf("after updates: %s v%d", got.Name, got.Version)
	}

	if err := r.DeleteTenant(ctx, in.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteTenant(ctx, in.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := r.GetTenant(ctx, in.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
}

// User ids are arbitrary strings: they must never appear raw in a key, and ids that
// differ only in ways a raw key would mangle stay distinct.
func TestUserIDsAreHashedInKeys(t *testing.T) {
	t.Parallel()
	table := storetest.NewTable(t, Table)
	r := New(table)
	ctx := context.Background()
	tid := "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	ids := []string{"a#M#b", "a#M", "ü/ser\x00id", strings.Repeat("x", 256), "T#" + tid}
	for _, uid := range ids {
		m := tenant.Member{TenantID: tid, UserID: uid, Role: "member", JoinedAt: time.Now().UTC()}
		if err := r.CreateMember(ctx, &m); err != nil {
			t.Fatalf("%q: %v", uid, err)
		}
		if err := r.PutUserIndex(ctx, uid, tid); err != nil {
			t.Fatalf("%q: %v", uid, err)
		}
	}
	page, err := table.Query(ctx, "T#"+tid, store.QueryOptions{Prefix: "M#"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(ids) {
		t.Fatalf("%d member items, want %d", len(page.Items), len(ids))
	}
	for _, it := range page.Items {
		h := strings.TrimPrefix(it.SK, "M#")
		if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
			t.Fatalf("member sort key %q is not M#<32 hex>", it.SK)
		}
	}
	for _, uid := range ids {
		m, err := r.GetMember(ctx, tid, uid)
		if err != nil || m.UserID != uid {
			t.Fatalf("get %q: %+v, %v", uid, m, err)
		}
		if _, err := table.Get(ctx, store.Key{PK: "U#" + UserHash(uid), SK: "T#" + tid}); err != nil {
			t.Fatalf("index item of %q: %v", uid, err)
		}
	}
}

func TestMembersAndIndex(t *testing.T) {
	t.Parallel()
	r := New(storetest.NewTable(t, Table))
	ctx := context.Background()
	tid := "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	m := tenant.Member{TenantID: tid, UserID: "u", Email: "u@x.test", Role: "admin", JoinedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := r.CreateMember(ctx, &m); err != nil {
		t.Fatal(err)
	}
	dup := m
	if err := r.CreateMember(ctx, &dup); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("duplicate member: %v", err)
	}
	stale := m
	m.Role = "viewer"
	if err := r.UpdateMember(ctx, &m); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteMember(ctx, tid, "u", stale.Version); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("delete at a stale version: %v", err)
	}
	if err := r.DeleteMember(ctx, tid, "u", m.Version); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteMember(ctx, tid, "u", 0); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := r.PutUserIndex(ctx, "u", tid); err != nil {
		t.Fatal(err)
	}
	if err := r.PutUserIndex(ctx, "u", tid); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("duplicate index: %v", err)
	}
	if err := r.DeleteUserIndex(ctx, "u", tid); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteUserIndex(ctx, "u", tid); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("delete missing index: %v", err)
	}
	if _, _, err := r.ListUserIndex(ctx, "u", 10, "garbage"); !errors.Is(err, tenant.ErrInvalidCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

// GetMemberships reads in batches (the store takes 100 keys at a time).
func TestGetMembershipsBatches(t *testing.T) {
	t.Parallel()
	r := New(storetest.NewTable(t, Table))
	ctx := context.Background()
	var ids, want []string
	for i := range 130 {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		if i%3 == 2 {
			continue // no tenant item
		}
		tn := tenant.Tenant{ID: id, Name: "t", Status: "active"}
		if err := r.CreateTenant(ctx, &tn); err != nil {
			t.Fatal(err)
		}
		if i%3 == 1 {
			continue // no member item
		}
		m := tenant.Member{TenantID: id, UserID: "u", Role: "viewer"}
		if err := r.CreateMember(ctx, &m); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	ms, err := r.GetMemberships(ctx, "u", ids)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Tenant.ID)
		if m.Role != "viewer" {
			t.Fatalf("role %q", m.Role)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("memberships:\n got %v\nwant %v", got, want)
	}
}

func TestOwnedCounter(t *testing.T) {
	t.Parallel()
	r := New(storetest.NewTable(t, Table))
	ctx := context.Background()
	limit := int64(2)
	for i := range 2 {
		if n, err := r.AddOwned(ctx, "u", 1, &limit); err != nil || n != int64(i+1) {
			t.Fatalf("add %d: %d, %v", i, n, err)
		}
	}
	if _, err := r.AddOwned(ctx, "u", 1, &limit); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("over the limit: %v", err)
	}
	if n, err := r.AddOwned(ctx, "u", 1, nil); err != nil || n != 3 {
		t.Fatalf("without a limit: %d, %v", n, err)
	}
	if _, err := r.AddOwned(ctx, "nobody", -1, nil); !errors.Is(err, tenant.ErrConflict) {
		t.Fatalf("below zero: %v", err)
	}
	if n, _ := r.Owned(ctx, "nobody"); n != 0 {
		t.Fatalf("owned nobody = %d", n)
	}
	if n, _ := r.Owned(ctx, "u"); n != 3 {
		t.Fatalf("owned u = %d", n)
	}
}
