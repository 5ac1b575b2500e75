package auth

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

func userP(id string) Principal { return Principal{Kind: natsrpc.KindUser, UserID: id} }

func TestResolve(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	l.addMember(tenantA, "carol", "viewer", "suspended")
	l.addMember(tenantB, "carol", "owner", "active")
	l.addMember(tenantC, "dave", "member", "active")
	l.addKey("art_key_a", tenantA, "suspended")
	l.setTenant(tenantA, "suspended")
	a := newAuth(t, Config{}, l)
	ctx := context.Background()

	apiKey, err := a.Authenticate(ctx, "", "art_key_a")
	if err != nil {
		t.Fatal(err)
	}
	agentTok, _, err := a.MintAgentToken(tenantA, agentID, keyID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := a.Authenticate(ctx, "Bearer "+agentTok, "")
	if err != nil {
		t.Fatal(err)
	}
	withClaim := func(p Principal, tenant string) Principal { p.TenantID = tenant; return p }
	admin := userP("root")
	admin.PlatformAdmin = true

	type want struct {
		status int
		code   string
		access Access
	}
	cases := []struct {
		name   string
		p      Principal
		header string
		want   want
	}{
		{"member by header", userP("alice"), tenantA, want{access: Access{tenantA, "admin", "active", tierA}}},
		{"header of a tenant the user is not in", userP("alice"), tenantB, want{status: 403, code: natsrpc.CodeForbidden}},
		{"header of an unknown tenant", userP("alice"), "44444444-4444-4444-8444-444444444444", want{status: 403, code: natsrpc.CodeForbidden}},
		{"malformed header", userP("alice"), "acme", want{status: 400, code: natsrpc.CodeInvalidTenantID}},
		{"upper-case UUID header", userP("alice"), strings.ToUpper(tenantA), want{status: 400, code: natsrpc.CodeInvalidTenantID}},
		{"two UUIDs in the header", userP("alice"), tenantA + "," + tenantB, want{status: 400, code: natsrpc.CodeInvalidTenantID}},
		{"no header, one membership", userP("alice"), "", want{access: Access{tenantA, "admin", "active", tierA}}},
		{"no header, several memberships", userP("carol"), "", want{status: 400, code: natsrpc.CodeTenantRequired}},
		{"no header, no membership", userP("erin"), "", want{status: 400, code: natsrpc.CodeTenantRequired}},
		{"header chooses among several", userP("carol"), tenantB, want{access: Access{tenantB, "owner", "active", tierB}}},
		{"suspended tenant status is reported", userP("carol"), tenantA, want{access: Access{tenantA, "viewer", "suspended", tierA}}},
		{"claim when no header", withClaim(userP("carol"), tenantB), "", want{access: Access{tenantB, "owner", "active", tierB}}},
		{"header beats claim", withClaim(userP("carol"), tenantB), tenantA, want{access: Access{tenantA, "viewer", "suspended", tierA}}},
		{"claim of a tenant the user is not in", withClaim(userP("alice"), tenantB), "", want{status: 403, code: natsrpc.CodeForbidden}},
		{"malformed claim", withClaim(userP("alice"), "acme"), "", want{status: 400, code: natsrpc.CodeInvalidTenantID}},
		{"platform admin is no member by header", admin, tenantA, want{status: 403, code: natsrpc.CodeForbidden}},
		{"API key, no header", apiKey, "", want{access: Access{tenantA, "admin", "suspended", tierA}}},
		{"API key, its own tenant", apiKey, tenantA, want{access: Access{tenantA, "admin", "suspended", tierA}}},
		{"API key, another tenant", apiKey, tenantB, want{status: 403, code: natsrpc.CodeForbidden}},
		{"API key, malformed header", apiKey, "nope", want{status: 400, code: natsrpc.CodeInvalidTenantID}},
		{"agent, no header", agent, "", want{access: Access{TenantID: tenantA, TenantStatus: "suspended", TenantTier: tierA}}},
		{"agent, its own tenant", agent, tenantA, want{access: Access{TenantID: tenantA, TenantStatus: "suspended", TenantTier: tierA}}},
		{"agent, another tenant", agent, tenantB, want{status: 403, code: natsrpc.CodeForbidden}},
		{"no principal", Principal{}, tenantA, want{status: 401, code: natsrpc.CodeUnauthorized}},
		{"user without id", Principal{Kind: natsrpc.KindUser}, tenantA, want{status: 401, code: natsrpc.CodeUnauthorized}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.Resolve(ctx, c.p, c.header)
			if c.want.status != 0 {
				wantErr(t, err, c.want.status, c.want.code)
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got != c.want.access {
				t.Fatalf("access = %+v, want %+v", got, c.want.access)
			}
		})
	}
}

func TestForPath(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "member", "active")
	l.addMember(tenantB, "root", "owner", "active")
	l.addKey("art_key_a", tenantA, "active")
	l.setTenant(tenantA, "active")
	a := newAuth(t, Config{}, l)
	ctx := context.Background()
	apiKey, err := a.Authenticate(ctx, "", "art_key_a")
	if err != nil {
		t.Fatal(err)
	}
	agent := Principal{Kind: natsrpc.KindAgent, AgentID: agentID, KeyID: keyID, TenantID: tenantA}
	admin := userP("root")
	admin.PlatformAdmin = true
	claimB := userP("alice")
	claimB.TenantID = tenantB

	cases := []struct {
		name   string
		p      Principal
		tenant string
		status int
		code   string
		want   Access
	}{
		{"member", userP("alice"), tenantA, 0, "", Access{tenantA, "member", "active", tierA}},
		{"claim is ignored", claimB, tenantA, 0, "", Access{tenantA, "member", "active", tierA}},
		{"non-member", userP("alice"), tenantB, 404, natsrpc.CodeNotFound, Access{}},
		{"claim does not grant access", claimB, tenantB, 404, natsrpc.CodeNotFound, Access{}},
		{"malformed id", userP("alice"), "acme", 404, natsrpc.CodeNotFound, Access{}},
		{"upper-case id", userP("alice"), strings.ToUpper(tenantA), 404, natsrpc.CodeNotFound, Access{}},
		{"platform admin, not a member", admin, tenantA, 0, "", Access{TenantID: tenantA}},
		{"platform admin who is a member", admin, tenantB, 0, "", Access{tenantB, "owner", "active", tierB}},
		{"platform admin, malformed id", admin, "acme", 404, natsrpc.CodeNotFound, Access{}},
		{"API key, own tenant", apiKey, tenantA, 0, "", Access{tenantA, "admin", "active", tierA}},
		{"API key, other tenant", apiKey, tenantB, 404, natsrpc.CodeNotFound, Access{}},
		{"agent, own tenant", agent, tenantA, 0, "", Access{TenantID: tenantA, TenantStatus: "active", TenantTier: tierA}},
		{"agent, other tenant", agent, tenantB, 404, natsrpc.CodeNotFound, Access{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := a.ForPath(ctx, c.p, c.tenant)
			if c.status != 0 {
				wantErr(t, err, c.status, c.code)
				return
			}
			if err != nil {
				t.Fatalf("ForPath: %v", err)
			}
			if got != c.want {
				t.Fatalf("access = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestOutagesPropagate(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "member", "active")
	l.addKey("art_key_a", tenantA, "active")
	a := newAuth(t, Config{}, l)
	ctx := context.Background()
	timeout := natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "timed out")
	admin := userP("root")
	admin.PlatformAdmin = true

	for _, outage := range []*natsrpc.Error{errOutage, timeout} {
		l.setErr(outage)
		_, err := a.Resolve(ctx, userP("alice"), tenantA)
		wantErr(t, err, outage.Status, outage.Code)
		_, err = a.Resolve(ctx, userP("alice"), "")
		wantErr(t, err, outage.Status, outage.Code)
		_, err = a.ForPath(ctx, userP("alice"), tenantA)
		wantErr(t, err, outage.Status, outage.Code)
		_, err = a.ForPath(ctx, admin, tenantA) // not turned into "platform admin, not a member"
		wantErr(t, err, outage.Status, outage.Code)
		_, err = a.Authenticate(ctx, "", "art_key_a")
		wantErr(t, err, outage.Status, outage.Code)
	}
	// Failures are not cached: the next calls succeed as soon as the service answers.
	m, u, k := l.counts()
	l.setErr(nil)
	if got, err := a.Resolve(ctx, userP("alice"), tenantA); err != nil || got.Role != "member" {
		t.Fatalf("Resolve after the outage = %+v, %v", got, err)
	}
	if got, err := a.Resolve(ctx, userP("alice"), ""); err != nil || got.TenantID != tenantA {
		t.Fatalf("Resolve after the outage = %+v, %v", got, err)
	}
	if p, err := a.Authenticate(ctx, "", "art_key_a"); err != nil || p.TenantID != tenantA {
		t.Fatalf("Authenticate after the outage = %+v, %v", p, err)
	}
	m2, u2, k2 := l.counts()
	if m2 != m+1 || u2 != u+1 || k2 != k+1 {
		t.Fatalf("lookups after the outage: %d/%d/%d → %d/%d/%d, want one more each", m, u, k, m2, u2, k2)
	}
}

func TestAPIKeys(t *testing.T) {
	l := newFakeLookups()
	l.addKey("art_good", tenantA, "active")
	a := newAuth(t, Config{APIKeyCacheTTL: 50 * time.Millisecond}, l)
	ctx := context.Background()

	p, err := a.Authenticate(ctx, "", "art_good")
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != natsrpc.KindAPIKey || p.TenantID != tenantA || p.UserID != "" || p.PlatformAdmin || !p.ExpiresAt.IsZero() {
		t.Fatalf("principal = %+v", p)
	}

	for _, bad := range []string{"nope", "ART_good", "art_good\n", "art_" + strings.Repeat("x", 300), "art_ good"} {
		_, err := a.Authenticate(ctx, "", bad)
		wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	}
	if _, _, k := l.counts(); k != 1 {
		t.Fatalf("malformed keys reached the tenant service: %d lookups", k)
	}

	// Unknown keys are 401 and the 404 is cached briefly.
	for range 3 {
		_, err := a.Authenticate(ctx, "", "art_unknown")
		wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	}
	if _, _, k := l.counts(); k != 2 {
		t.Fatalf("%d lookups, want 2 (one per distinct key)", k)
	}
	// A key created after a cached 404 works once the TTL passes.
	l.addKey("art_unknown", tenantB, "active")
	eventually(t, "negative API-key entry to expire", func() bool {
		p, err := a.Authenticate(ctx, "", "art_unknown")
		return err == nil && p.TenantID == tenantB
	})
}

func TestMembershipCache(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	a := newAuth(t, Config{CacheTTL: 50 * time.Millisecond}, l)
	ctx := context.Background()
	resolve := func() Access {
		t.Helper()
		acc, err := a.Resolve(ctx, userP("alice"), tenantA)
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		return acc
	}

	for range 5 {
		resolve()
	}
	if m, _, _ := l.counts(); m != 1 {
		t.Fatalf("%d membership lookups within the TTL, want 1", m)
	}

	// A demotion announced by an event is seen at once.
	l.addMember(tenantA, "alice", "viewer", "active")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeMembers})
	if got := resolve(); got.Role != "viewer" {
		t.Fatalf("role after Forget = %q, want viewer", got.Role)
	}
	if m, _, _ := l.counts(); m != 2 {
		t.Fatalf("%d lookups after Forget, want 2", m)
	}

	// Forget of another tenant keeps this entry.
	a.Forget(tenantv1.TenantChanged{TenantID: tenantB, Change: tenantv1.ChangeMembers})
	resolve()
	if m, _, _ := l.counts(); m != 2 {
		t.Fatalf("%d lookups after another tenant's Forget, want 2", m)
	}

	// Without an event the entry still expires.
	l.removeMember(tenantA, "alice")
	eventually(t, "membership entry to expire", func() bool {
		_, err := a.Resolve(ctx, userP("alice"), tenantA)
		e, ok := natsrpc.AsError(err)
		return ok && e.Status == http.StatusForbidden
	})

	// Not-a-member is cached too, and an event clears it.
	before, _, _ := l.counts()
	for range 3 {
		_, err := a.Resolve(ctx, userP("alice"), tenantA)
		wantErr(t, err, http.StatusForbidden, natsrpc.CodeForbidden)
	}
	if m, _, _ := l.counts(); m != before {
		t.Fatalf("not-a-member was looked up again within the TTL (%d → %d)", before, m)
	}
	l.addMember(tenantA, "alice", "member", "active")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeMembers})
	if got := resolve(); got.Role != "member" {
		t.Fatalf("role after re-adding = %q", got.Role)
	}
}

func TestForgetClearsTenantState(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	l.addMember(tenantB, "bob", "admin", "active")
	l.addKey("art_a", tenantA, "active")
	l.addKey("art_b", tenantB, "active")
	a := newAuth(t, Config{}, l) // default TTLs: only events clear entries during this test
	ctx := context.Background()

	warm := func() {
		t.Helper()
		for _, k := range []string{"art_a", "art_b"} {
			if _, err := a.Authenticate(ctx, "", k); err != nil {
				t.Fatal(err)
			}
		}
		for _, u := range []string{"alice", "bob"} {
			if _, err := a.Resolve(ctx, userP(u), ""); err != nil { // via the user's only tenant
				t.Fatal(err)
			}
		}
		if _, err := a.Resolve(ctx, userP("alice"), tenantA); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Resolve(ctx, userP("bob"), tenantB); err != nil {
			t.Fatal(err)
		}
	}
	warm()
	m0, u0, k0 := l.counts()
	warm()
	if m, u, k := l.counts(); m != m0 || u != u0 || k != k0 {
		t.Fatal("warm caches still looked up")
	}

	// Rotating tenant A's key: the old key fails at once; tenant B's stays cached.
	l.mu.Lock()
	delete(l.keys, HashAPIKey("art_a"))
	l.mu.Unlock()
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeAPIKey})
	_, err := a.Authenticate(ctx, "", "art_a")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	if _, err := a.Authenticate(ctx, "", "art_b"); err != nil {
		t.Fatal(err)
	}
	if _, _, k := l.counts(); k != k0+1 {
		t.Fatalf("API-key lookups = %d, want %d (only the forgotten tenant's key)", k, k0+1)
	}

	// Suspension: the new status is seen at once through memberships.
	l.addMember(tenantA, "alice", "admin", "suspended")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeStatus})
	acc, err := a.Resolve(ctx, userP("alice"), tenantA)
	if err != nil || acc.TenantStatus != "suspended" {
		t.Fatalf("after suspension: %+v, %v", acc, err)
	}

	// A new membership elsewhere changes a user's "only tenant": every user list is dropped.
	l.addMember(tenantB, "alice", "member", "active")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantB, Change: tenantv1.ChangeMembers})
	_, err = a.Resolve(ctx, userP("alice"), "")
	wantErr(t, err, http.StatusBadRequest, natsrpc.CodeTenantRequired)

	// An event without a tenant clears everything.
	_, _, k1 := l.counts()
	a.Forget(tenantv1.TenantChanged{})
	if _, err := a.Authenticate(ctx, "", "art_b"); err != nil {
		t.Fatal(err)
	}
	if _, _, k := l.counts(); k != k1+1 {
		t.Fatal("a tenant-less Forget kept the API-key cache")
	}
}

func TestConcurrentMissesShareOneLookup(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	l.gate = make(chan struct{})
	l.entered = make(chan struct{}, 100)
	a := newAuth(t, Config{}, l)

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := a.Resolve(context.Background(), userP("alice"), tenantA)
			errs <- err
		})
	}
	<-l.entered
	time.Sleep(20 * time.Millisecond) // let the others pile up behind the first lookup
	close(l.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m, _, _ := l.counts(); m != 1 {
		t.Fatalf("%d concurrent membership lookups, want 1", m)
	}
}

func TestForgetDuringLookupIsNotUndone(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	l.gate = make(chan struct{})
	l.entered = make(chan struct{}, 10)
	a := newAuth(t, Config{}, l)

	done := make(chan Access)
	go func() {
		acc, _ := a.Resolve(context.Background(), userP("alice"), tenantA)
		done <- acc
	}()
	<-l.entered // the lookup has read "admin" and waits to return it
	l.addMember(tenantA, "alice", "viewer", "active")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeMembers})
	close(l.gate)
	<-done

	// The answer in flight during Forget must not have been cached.
	acc, err := a.Resolve(context.Background(), userP("alice"), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Role != "viewer" {
		t.Fatalf("role = %q after Forget during a lookup, want viewer", acc.Role)
	}
}

func TestCallerContextEndsWait(t *testing.T) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	l.gate = make(chan struct{})
	a := newAuth(t, Config{}, l)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error)
	go func() {
		_, err := a.Resolve(ctx, userP("alice"), tenantA)
		errc <- err
	}()
	cancel()
	wantErr(t, <-errc, http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
	close(l.gate)
}

func TestTTLCacheStaysBounded(t *testing.T) {
	c := newTTLCache[int, int](time.Hour, 100)
	for i := range 1000 {
		c.set(i, i)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries, bound 100", c.len())
		}
	}
	if v, ok := c.get(999); !ok || v != 999 {
		t.Fatal("the newest entry is missing")
	}
	short := newTTLCache[int, int](200*time.Millisecond, 10)
	short.set(1, 1)
	eventually(t, "entry to expire", func() bool { _, ok := short.get(1); return !ok })
	for i := range 10 {
		short.set(100+i, i)
	}
	if short.len() != 10 {
		t.Fatalf("expired entries were not swept first: %d entries", short.len())
	}
}

// TestAgentTenantStanding: an agent's access carries its tenant's status and tier from
// lookup_tenant, cached and forgotten on tenant events; a deleted tenant revokes the
// token; an outage stays a 503.
func TestAgentTenantStanding(t *testing.T) {
	l := newFakeLookups()
	l.setTenant(tenantA, "active")
	a := newAuth(t, Config{}, l)
	ctx := context.Background()
	agent := Principal{Kind: natsrpc.KindAgent, AgentID: agentID, KeyID: keyID, TenantID: tenantA}

	for range 3 {
		acc, err := a.Resolve(ctx, agent, "")
		if err != nil {
			t.Fatal(err)
		}
		if acc != (Access{TenantID: tenantA, TenantStatus: "active", TenantTier: tierA}) {
			t.Fatalf("access = %+v", acc)
		}
	}
	if n := l.tenantLookups(); n != 1 {
		t.Fatalf("%d tenant lookups, want 1 (cached)", n)
	}

	l.setTenant(tenantA, "suspended")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeStatus})
	acc, err := a.ForPath(ctx, agent, tenantA)
	if err != nil || acc.TenantStatus != "suspended" {
		t.Fatalf("after the status event: %+v, %v", acc, err)
	}

	l.setTenant(tenantA, "")
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA, Change: tenantv1.ChangeDeleted})
	_, err = a.Resolve(ctx, agent, "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeTokenRevoked)
	st, err := a.TenantStanding(ctx, tenantA)
	if err != nil || st.Found {
		t.Fatalf("standing of a deleted tenant = %+v, %v", st, err)
	}
	if st, err := a.TenantStanding(ctx, "not-a-uuid"); err != nil || st.Found {
		t.Fatalf("standing of a malformed id = %+v, %v", st, err)
	}

	l.setErr(errOutage)
	a.Forget(tenantv1.TenantChanged{TenantID: tenantA})
	_, err = a.Resolve(ctx, agent, "")
	wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
}
