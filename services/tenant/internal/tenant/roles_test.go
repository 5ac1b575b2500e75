package tenant

import (
	"errors"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

const (
	owner  = natsrpc.RoleOwner
	admin  = natsrpc.RoleAdmin
	member = natsrpc.RoleMember
	viewer = natsrpc.RoleViewer
)

func TestCheckRoleChange(t *testing.T) {
	tests := []struct {
		actor, from, to string
		want            error
	}{
		// Granting to a new member ("" = not a member yet).
		{owner, "", owner, nil},
		{owner, "", admin, nil},
		{owner, "", viewer, nil},
		{admin, "", owner, ErrForbidden}, // only an owner grants owner
		{admin, "", admin, nil},
		{admin, "", member, nil},
		{admin, "", viewer, nil},
		{member, "", viewer, nil}, // the rank rule alone allows it; canManageMembers refuses members
		{member, "", admin, ErrForbidden},
		{viewer, "", member, ErrForbidden},
		// Changing a role.
		{owner, owner, admin, nil}, // an owner may demote an owner (the last-owner rule is data)
		{admin, owner, admin, ErrForbidden},
		{admin, member, owner, ErrForbidden},
		{owner, member, owner, nil},
		{admin, viewer, admin, nil},
		{admin, admin, viewer, nil},
		{admin, admin, member, nil},
		// Unknown roles.
		{owner, "", "superuser", ErrInvalid},
		{owner, member, "", ErrInvalid},
	}
	for _, tt := range tests {
		err := checkRoleChange(tt.actor, tt.from, tt.to)
		if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("checkRoleChange(actor %q, %q → %q) = %v, want %v", tt.actor, tt.from, tt.to, err, tt.want)
		}
	}
}

func TestCheckRemoval(t *testing.T) {
	tests := []struct {
		actor, target string
		want          error
	}{
		{owner, owner, nil},
		{owner, admin, nil},
		{admin, owner, ErrForbidden},
		{admin, admin, nil},
		{admin, member, nil},
		{admin, viewer, nil},
	}
	for _, tt := range tests {
		err := checkRemoval(tt.actor, tt.target)
		if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("checkRemoval(actor %q, target %q) = %v, want %v", tt.actor, tt.target, err, tt.want)
		}
	}
}

func TestCanManageMembers(t *testing.T) {
	user := Actor{Kind: natsrpc.KindUser, ID: "u"}
	tests := []struct {
		name  string
		actor Actor
		role  string
		ok    bool
	}{
		{"owner", user, owner, true},
		{"admin", user, admin, true},
		{"member", user, member, false},
		{"viewer", user, viewer, false},
		{"no role", user, "", false},
		{"API key (admin)", Actor{Kind: natsrpc.KindAPIKey, ID: "t"}, admin, false},
		{"agent", Actor{Kind: natsrpc.KindAgent, ID: "a"}, admin, false},
		{"platform admin without role", Actor{Kind: natsrpc.KindUser, ID: "p", PlatformAdmin: true}, "", false},
	}
	for _, tt := range tests {
		err := canManageMembers(tt.actor, tt.role)
		if (err == nil) != tt.ok {
			t.Errorf("%s: canManageMembers = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: error %v is not ErrForbidden", tt.name, err)
		}
	}
}

func TestHashAPIKey(t *testing.T) {
	key, hash := newAPIKey()
	if len(key) != len("art_")+43 || key[:4] != "art_" {
		t.Fatalf("key %q: want art_ + 43 base64url characters", key)
	}
	if hash != HashAPIKey(key) || !IsKeyHash(hash) {
		t.Fatalf("hash %q does not match HashAPIKey or its shape", hash)
	}
	// Known vector: sha256("art_x").
	if got, want := HashAPIKey("art_x"), "1d171b1a70eb25c0d523eb4c030be672b158fd0a2a8dc1f35bba840928d8ee7f"; got != want {
		t.Fatalf("HashAPIKey(art_x) = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "ABC", HashAPIKey("x")[:63], HashAPIKey("x") + "0", "g" + HashAPIKey("x")[1:]} {
		if IsKeyHash(bad) {
			t.Errorf("IsKeyHash(%q) = true", bad)
		}
	}
}
