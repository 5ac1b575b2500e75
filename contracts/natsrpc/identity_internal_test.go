package natsrpc

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestIdentityHeaderRoundTrip(t *testing.T) {
	cases := []Identity{
		{},
		{RequestID: "r", Kind: KindSystem},
		{
			RequestID: "r1", TenantID: "3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c", Kind: KindAPIKey,
			PrincipalID: "3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c", Role: RoleAdmin, Email: "", PlatformAdmin: false,
		},
		{RequestID: "r2", TenantID: "t", Kind: KindUser, PrincipalID: "u", Role: RoleOwner, Email: "a@b.c", PlatformAdmin: true},
	}
	for _, id := range cases {
		h := nats.Header{}
		id.writeHeaders(h, 1500*time.Millisecond)
		if got := identityFromHeaders(h); got != id {
			t.Errorf("round trip of %+v = %+v", id, got)
		}
		if got := h.Get(HeaderBudget); got != "1500" {
			t.Errorf("budget header = %q, want 1500", got)
		}
		if !id.PlatformAdmin {
			if _, ok := h[HeaderPlatformAdmin]; ok {
				t.Errorf("platform admin header sent for %+v", id)
			}
		}
	}

	// Only the exact value "true" makes a platform admin.
	for _, v := range []string{"1", "TRUE", "yes", "true "} {
		if identityFromHeaders(nats.Header{HeaderPlatformAdmin: []string{v}}).PlatformAdmin {
			t.Errorf("header value %q made a platform admin", v)
		}
	}

	// Less than a millisecond left still bounds the handler.
	h := nats.Header{}
	Identity{}.writeHeaders(h, 300*time.Microsecond)
	if got := h.Get(HeaderBudget); got != "1" {
		t.Errorf("budget header for 300µs = %q, want 1", got)
	}

	// No budget left: no header (the server then uses its own timeout).
	h = nats.Header{}
	Identity{}.writeHeaders(h, -time.Second)
	if _, ok := h[HeaderBudget]; ok {
		t.Error("budget header sent for an expired budget")
	}
}

func TestIdentityContext(t *testing.T) {
	if got := IdentityFrom(context.Background()); got != (Identity{}) {
		t.Errorf("IdentityFrom(empty ctx) = %+v", got)
	}
	id := Identity{RequestID: "r", TenantID: "t", Role: RoleViewer}
	ctx := WithIdentity(context.Background(), id)
	if got := IdentityFrom(ctx); got != id {
		t.Errorf("IdentityFrom = %+v, want %+v", got, id)
	}
	inner := WithIdentity(ctx, Identity{RequestID: "other"})
	if IdentityFrom(inner).RequestID != "other" || IdentityFrom(ctx) != id {
		t.Error("WithIdentity must not change the parent context")
	}
}
