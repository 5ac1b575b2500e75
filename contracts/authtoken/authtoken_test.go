package authtoken_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test")

const (
	tenantA = "3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c"
	agentID = "01JBAGENT00000000000000001"
	keyID   = "01JBKEY0000000000000000001"
)

// parse verifies tok the way the gateway does (HS256 pinned, exp required) into claims.
func parse(t *testing.T, tok string, claims jwt.Claims) {
	t.Helper()
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
}

func keys(t *testing.T, tok string) []string {
	t.Helper()
	m := jwt.MapClaims{}
	parse(t, tok, m)
	return slices.Sorted(maps.Keys(m))
}

func TestSignUserRoundTrip(t *testing.T) {
	iat := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	tok, err := authtoken.SignUser(secret, authtoken.UserToken{
		UserID: "alice", Email: "alice@example.com", TenantID: tenantA,
		Roles: []string{authtoken.RolePlatformAdmin}, TTL: 30 * time.Minute, IssuedAt: iat,
	})
	if err != nil {
		t.Fatal(err)
	}
	// exp is checked against the wall clock, so iat lies in the future here; parse without it.
	var c authtoken.UserClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != authtoken.Issuer || c.Subject != "alice" || c.Email != "alice@example.com" ||
		c.TenantID != tenantA || !slices.Equal(c.Roles, []string{"platform_admin"}) {
		t.Fatalf("claims = %+v", c)
	}
	if !c.IssuedAt.Equal(iat.Truncate(time.Second)) || !c.ExpiresAt.Equal(iat.Truncate(time.Second).Add(30*time.Minute)) {
		t.Fatalf("iat, exp = %v, %v", c.IssuedAt, c.ExpiresAt)
	}

	// Optional claims are left out, and iat defaults to now.
	tok, err = authtoken.SignUser(secret, authtoken.UserToken{UserID: "bob", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, tok), []string{"exp", "iat", "iss", "sub"}; !slices.Equal(got, want) {
		t.Fatalf("claims %v, want %v", got, want)
	}
	c = authtoken.UserClaims{}
	parse(t, tok, &c)
	if c.Subject != "bob" || c.ExpiresAt.Sub(c.IssuedAt.Time) != time.Hour || time.Since(c.IssuedAt.Time) > time.Minute {
		t.Fatalf("claims = %+v", c)
	}

	// Another secret does not verify it.
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(strings.Repeat("x", 40)), nil })
	if err == nil {
		t.Fatal("token verified with the wrong secret")
	}
}

func TestSignAgentRoundTrip(t *testing.T) {
	tok, exp, err := authtoken.SignAgent(secret, authtoken.AgentToken{
		TenantID: tenantA, AgentID: strings.ToLower(agentID), KeyID: keyID, TTL: 15 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"agent_id", "aud", "exp", "iat", "iss", "key_id", "sub", "tenant_id", "token_use"}
	if got := keys(t, tok); !slices.Equal(got, want) {
		t.Fatalf("claims %v, want %v", got, want)
	}
	var c authtoken.AgentClaims
	parse(t, tok, &c)
	if c.Issuer != "artcafe" || !slices.Equal(c.Audience, jwt.ClaimStrings{"artcafe-agent"}) ||
		c.Subject != "agent:"+agentID || c.TokenUse != "agent" || c.TenantID != tenantA ||
		c.AgentID != agentID || c.KeyID != keyID {
		t.Fatalf("claims = %+v", c)
	}
	if !c.ExpiresAt.Equal(exp) || c.ExpiresAt.Sub(c.IssuedAt.Time) != 15*time.Minute {
		t.Fatalf("exp = %v, returned %v, iat %v", c.ExpiresAt, exp, c.IssuedAt)
	}
}

func TestSignRefusesBadInput(t *testing.T) {
	bad := []authtoken.UserToken{
		{UserID: "", TTL: time.Hour},
		{UserID: "a\x00b", TTL: time.Hour},
		{UserID: strings.Repeat("u", 257), TTL: time.Hour},
		{UserID: "alice", TenantID: "ACME", TTL: time.Hour},
		{UserID: "alice", TenantID: strings.ToUpper(tenantA), TTL: time.Hour},
		{UserID: "alice", Email: "a@b\n", TTL: time.Hour},
		{UserID: "alice"},
		{UserID: "alice", TTL: -time.Hour},
	}
	for _, u := range bad {
		if _, err := authtoken.SignUser(secret, u); err == nil {
			t.Errorf("SignUser(%+v) succeeded", u)
		}
	}
	if _, err := authtoken.SignUser(secret[:authtoken.MinSecretBytes-1], authtoken.UserToken{UserID: "alice", TTL: time.Hour}); err == nil {
		t.Error("SignUser accepted a short secret")
	}
	if _, err := authtoken.SignUser(secret[:authtoken.MinSecretBytes], authtoken.UserToken{UserID: strings.Repeat("u", 256), TTL: time.Hour}); err != nil {
		t.Errorf("SignUser refused a 32-byte secret and a 256-character user id: %v", err)
	}
	badAgents := []authtoken.AgentToken{
		{TenantID: "acme", AgentID: agentID, KeyID: keyID, TTL: time.Hour},
		{TenantID: tenantA, AgentID: "agent", KeyID: keyID, TTL: time.Hour},
		{TenantID: tenantA, AgentID: agentID, KeyID: "", TTL: time.Hour},
		{TenantID: tenantA, AgentID: "81JBAGENT00000000000000001", KeyID: keyID, TTL: time.Hour},
		{TenantID: tenantA, AgentID: agentID, KeyID: keyID},
	}
	for _, g := range badAgents {
		if _, _, err := authtoken.SignAgent(secret, g); err == nil {
			t.Errorf("SignAgent(%+v) succeeded", g)
		}
	}
	if _, _, err := authtoken.SignAgent([]byte("short"), authtoken.AgentToken{TenantID: tenantA, AgentID: agentID, KeyID: keyID, TTL: time.Hour}); err == nil {
		t.Error("SignAgent accepted a short secret")
	}
}

func TestClaimsReadLeniently(t *testing.T) {
	var u authtoken.UserClaims
	if err := json.Unmarshal([]byte(`{"sub":"a","email":42,"tenant_id":true,"roles":"platform_admin"}`), &u); err != nil {
		t.Fatal(err)
	}
	if u.Subject != "a" || u.Email != "" || u.TenantID != "" || !slices.Equal(u.Roles, []string{"platform_admin"}) {
		t.Fatalf("user claims = %+v", u)
	}
	u = authtoken.UserClaims{}
	if err := json.Unmarshal([]byte(`{"roles":["member",7,"owner"]}`), &u); err != nil || !slices.Equal(u.Roles, []string{"member", "owner"}) {
		t.Fatalf("roles = %v, %v", u.Roles, err)
	}
	u = authtoken.UserClaims{}
	if err := json.Unmarshal([]byte(`{"roles":{"platform_admin":true}}`), &u); err != nil || u.Roles != nil {
		t.Fatalf("roles = %v, %v", u.Roles, err)
	}
	var g authtoken.AgentClaims
	if err := json.Unmarshal([]byte(`{"token_use":"agent","tenant_id":1,"agent_id":null,"key_id":[]}`), &g); err != nil {
		t.Fatal(err)
	}
	if g.TokenUse != "agent" || g.TenantID != "" || g.AgentID != "" || g.KeyID != "" {
		t.Fatalf("agent claims = %+v", g)
	}
	// Registered claims stay strict: a malformed exp is not a token.
	if err := json.Unmarshal([]byte(`{"sub":"a","exp":"tomorrow"}`), &u); err == nil {
		t.Fatal("user claims accepted a string exp")
	}
	if err := json.Unmarshal([]byte(`{"aud":5}`), &g); err == nil {
		t.Fatal("agent claims accepted a numeric aud")
	}
}

func TestHelpers(t *testing.T) {
	for s, ok := range map[string]bool{
		"alice": true, strings.Repeat("ñ", 256): true, "": false, "a\nb": false,
		strings.Repeat("ñ", 257): false, "a\xffb": false,
	} {
		if authtoken.ValidUserID(s) != ok {
			t.Errorf("ValidUserID(%q) = %v", s, !ok)
		}
	}
	for s, want := range map[string]string{
		"a@b.c": "a@b.c", "a@b.c\r\nX: y": "", "\xff@b.c": "", strings.Repeat("e", 255): "",
	} {
		if got := authtoken.CleanEmail(s); got != want {
			t.Errorf("CleanEmail(%q) = %q, want %q", s, got, want)
		}
	}
}
