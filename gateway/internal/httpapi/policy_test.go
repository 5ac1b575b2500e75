package httpapi

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// TestPolicies checks SPEC §13 "Who may call what" for every tenant route, for every
// role and principal kind, each on a fresh tenant.
func TestPolicies(t *testing.T) {
	e := newEnv(t)
	type principal struct {
		name  string
		creds func(tenantID, key string) map[string]string
	}
	user := func(sub string, roles ...string) func(string, string) map[string]string {
		tok := e.userToken(sub, roles...)
		return func(string, string) map[string]string { return bearer(tok) }
	}
	principals := []principal{
		{"viewer", user("vic")},
		{"member", user("mia")},
		{"admin", user("adam")},
		{"owner", user("owen")},
		{"api_key", func(_, key string) map[string]string { return apiKey(key) }},
		{"agent", func(tenantID, _ string) map[string]string {
			return bearer(e.agentToken(tenantID, "01JBAGENT00000000000000001"))
		}},
		{"platform_admin", user("pat", "platform_admin")},
		{"outsider", user("olga")},
	}
	n := 0
	newUser := func() string { n++; return fmt.Sprintf("new-user-%d", n) }
	_, publicKey := newEd25519(t)
	// On the agent and key routes every principal names the tenant with x-tenant-id (the
	// users belong to many test tenants); platform admins who are not members and
	// outsiders are then simply not members: 403.
	readers := map[string]int{"viewer": 200, "member": 200, "admin": 200, "owner": 200, "api_key": 200, "agent": 403, "platform_admin": 403, "outsider": 403}
	writers := func(ok int) map[string]int {
		return map[string]int{"viewer": 403, "member": ok, "admin": ok, "owner": ok, "api_key": ok, "agent": 403, "platform_admin": 403, "outsider": 403}
	}
	self := func(m map[string]int, agent int) map[string]int {
		out := maps.Clone(m)
		out["agent"] = agent
		return out
	}

	routes := []struct {
		method, path string // %[1]s = tenant id, {agent} = the agent principal's own agent, {key} = its SSH key
		body         func() any
		want         map[string]int
	}{
		{"POST", "/api/v1/tenants", func() any { return map[string]any{"name": "t", "admin_email": "a@example.com"} },
			map[string]int{"viewer": 201, "member": 201, "admin": 201, "owner": 201, "api_key": 403, "agent": 403, "platform_admin": 201, "outsider": 201}},
		{"GET", "/api/v1/tenants", nil,
			map[string]int{"viewer": 200, "member": 200, "admin": 200, "owner": 200, "api_key": 403, "agent": 403, "platform_admin": 200, "outsider": 200}},
		{"GET", "/api/v1/tenants/%[1]s", nil,
			map[string]int{"viewer": 200, "member": 200, "admin": 200, "owner": 200, "api_key": 200, "agent": 403, "platform_admin": 200, "outsider": 404}},
		{"GET", "/api/v1/tenants/%[1]s/members", nil,
			map[string]int{"viewer": 200, "member": 200, "admin": 200, "owner": 200, "api_key": 200, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"PUT", "/api/v1/tenants/%[1]s", func() any { return map[string]any{"name": "renamed"} },
			map[string]int{"viewer": 403, "member": 403, "admin": 200, "owner": 200, "api_key": 200, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"POST", "/api/v1/tenants/%[1]s/members", func() any { return map[string]any{"user_id": newUser(), "role": "member"} },
			map[string]int{"viewer": 403, "member": 403, "admin": 201, "owner": 201, "api_key": 403, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"PUT", "/api/v1/tenants/%[1]s/members/tara", func() any { return map[string]any{"role": "viewer"} },
			map[string]int{"viewer": 403, "member": 403, "admin": 200, "owner": 200, "api_key": 403, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"DELETE", "/api/v1/tenants/%[1]s/members/tara", nil,
			map[string]int{"viewer": 403, "member": 403, "admin": 204, "owner": 204, "api_key": 403, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"POST", "/api/v1/tenants/%[1]s/api-keys/rotate", nil,
			map[string]int{"viewer": 403, "member": 403, "admin": 200, "owner": 200, "api_key": 403, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"DELETE", "/api/v1/tenants/%[1]s", nil,
			map[string]int{"viewer": 403, "member": 403, "admin": 403, "owner": 204, "api_key": 403, "agent": 403, "platform_admin": 404, "outsider": 404}},
		{"PUT", "/api/v1/tenants/%[1]s/plan", func() any { return map[string]any{"subscription_tier": "pro"} },
			map[string]int{"viewer": 403, "member": 403, "admin": 403, "owner": 403, "api_key": 403, "agent": 403, "platform_admin": 200, "outsider": 403}},

		{"GET", "/api/v1/agents", nil, readers},
		{"POST", "/api/v1/agents", func() any { return map[string]any{"name": "a"} }, writers(201)},
		{"GET", "/api/v1/agents/status/summary", nil, readers},
		{"GET", "/api/v1/agents/{agent}", nil, self(readers, 200)},
		{"PUT", "/api/v1/agents/{agent}", func() any { return map[string]any{"description": "d"} }, self(writers(200), 200)},
		{"PUT", "/api/v1/agents/{agent}/status", func() any { return map[string]any{"status": "busy"} }, writers(200)},
		{"DELETE", "/api/v1/agents/{agent}", nil, writers(204)},
		{"GET", "/api/v1/ssh-keys", nil, readers},
		{"POST", "/api/v1/ssh-keys", func() any { return map[string]any{"name": "k", "public_key": publicKey} }, writers(201)},
		{"GET", "/api/v1/ssh-keys/{key}", nil, readers},
		{"POST", "/api/v1/ssh-keys/{key}/revoke", func() any { return map[string]any{"reason": "r"} }, writers(200)},
		{"DELETE", "/api/v1/ssh-keys/{key}", nil, writers(204)},
	}
	const ownAgent = "01JBAGENT00000000000000001"
	for _, rt := range routes {
		for _, p := range principals {
			want, ok := rt.want[p.name]
			if !ok {
				t.Fatalf("%s %s: no expectation for %s", rt.method, rt.path, p.name)
			}
			t.Run(rt.method+" "+rt.path+" as "+p.name, func(t *testing.T) {
				tenantID, key := e.seedTenant("owen")
				e.setRole(tenantID, "vic", "viewer")
				e.setRole(tenantID, "mia", "member")
				e.setRole(tenantID, "adam", "admin")
				e.setRole(tenantID, "tara", "member")
				e.seedCredential(tenantID, ownAgent, testKeyID)
				var body any
				if rt.body != nil {
					body = rt.body()
				}
				path := strings.NewReplacer("%[1]s", tenantID, "{agent}", ownAgent, "{key}", testKeyID).Replace(rt.path)
				creds := p.creds(tenantID, key)
				if !strings.HasPrefix(path, "/api/v1/tenants") {
					creds = mergeH(creds, map[string]string{"X-Tenant-Id": tenantID})
				}
				r := e.do(rt.method, path, body, creds)
				if r.status != want {
					t.Fatalf("status = %d, want %d: %s", r.status, want, r.body)
				}
				if want == 403 {
					if c := r.code(t); c != "forbidden" {
						t.Fatalf("code = %q, want forbidden", c)
					}
				}
			})
		}
	}
}

// TestPlatformAdminMemberStillNeedsRole: being a platform admin does not raise a
// member's role inside a tenant (only GET /tenants/{id} and the plan are special).
func TestPlatformAdminMemberStillNeedsRole(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	e.setRole(tenantID, "pat", "viewer")
	pat := bearer(e.userToken("pat", "platform_admin"))
	e.expect(e.do("PUT", "/api/v1/tenants/"+tenantID, map[string]any{"name": "x"}, pat), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/tenants/"+tenantID+"/members", nil, pat), 200, "")
	e.expect(e.do("PUT", "/api/v1/tenants/"+tenantID+"/plan", map[string]any{"status": "suspended"}, pat), 200, "")
}

// TestMeForBoundCredentials: API keys and agents report their own tenant.
func TestMeForBoundCredentials(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("owen")
	r := e.do("GET", "/api/v1/me", nil, mergeH(apiKey(key), map[string]string{"X-Tenant-Id": tenantID}))
	e.expect(r, 200, "")
	if m := r.json(t); m["kind"] != "api_key" || m["tenant_id"] != tenantID || m["role"] != "admin" {
		t.Fatalf("me = %v", m)
	}
	agent := bearer(e.agentToken(tenantID, "01JBAGENT00000000000000001"))
	r = e.do("GET", "/api/v1/me", nil, agent)
	e.expect(r, 200, "")
	if m := r.json(t); m["kind"] != "agent" || m["tenant_id"] != tenantID || m["agent_id"] != "01JBAGENT00000000000000001" || m["expires_at"] == nil {
		t.Fatalf("me = %v", m)
	}
}

// headerScoped is a route resolved from x-tenant-id / claim / only membership, as the
// agent, key and channel routes of later issues are; it reports what it resolved.
func headerScoped(minRole string) func(*api) []route {
	return func(a *api) []route {
		return []route{{method: "GET", path: "/api/v1/test-scope", op: "test-scope", tag: tagSystem, summary: "test",
			resp: map[string]any{}, status: 200,
			policy: policy{kinds: anyKind, scope: scopeHeader, minRole: minRole},
			handle: func(r *request) error {
				return r.reply(200, map[string]any{"tenant_id": r.access.TenantID, "role": r.access.Role})
			}}}
	}
}

func TestHeaderScopedResolution(t *testing.T) {
	e := newEnv(t, withRoutes(headerScoped("member")))
	t1, key1 := e.seedTenant("owen")
	t2, _ := e.seedTenant("olga")
	e.setRole(t1, "vic", "viewer")
	owen := bearer(e.userToken("owen"))
	hdr := func(h map[string]string, tenant string) map[string]string {
		return mergeH(h, map[string]string{"X-Tenant-Id": tenant})
	}

	// Only membership: resolved without a header.
	r := e.do("GET", "/api/v1/test-scope", nil, owen)
	e.expect(r, 200, "")
	if got := r.json(t)["tenant_id"]; got != t1 {
		t.Fatalf("resolved %v, want %s", got, t1)
	}
	// A header of a tenant the user is not in: 403 (the header selects, never authenticates).
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(owen, t2)), 403, "forbidden")
	// Malformed or upper-case header: 400.
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(owen, "nope")), 400, "invalid_tenant_id")
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(owen, strings.ToUpper(t1))), 400, "invalid_tenant_id")
	// Several memberships and no header: 400 tenant_required; with the header: fine.
	e.setRole(t2, "owen", "admin")
	e.expect(e.do("GET", "/api/v1/test-scope", nil, owen), 400, "tenant_required")
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(owen, t2)), 200, "")
	// No membership at all: 400 tenant_required.
	e.expect(e.do("GET", "/api/v1/test-scope", nil, bearer(e.userToken("nobody"))), 400, "tenant_required")
	// Role below the route's minimum: 403.
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(bearer(e.userToken("vic")), t1)), 403, "forbidden")
	// API keys and agents are bound to their tenant.
	e.expect(e.do("GET", "/api/v1/test-scope", nil, apiKey(key1)), 200, "")
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(apiKey(key1), t2)), 403, "forbidden")
	agent := bearer(e.agentToken(t1, "01JBAGENT00000000000000001"))
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(agent, t2)), 403, "forbidden")
	r = e.do("GET", "/api/v1/test-scope", nil, agent)
	e.expect(r, 200, "")
	if got := r.json(t)["tenant_id"]; got != t1 {
		t.Fatalf("agent resolved %v", got)
	}
	// Suspension applies to header-scoped routes too.
	e.setStatus(t1, "suspended")
	e.expect(e.do("GET", "/api/v1/test-scope", nil, hdr(owen, t1)), 403, "tenant_suspended")
}

func TestWithSuccess(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"agent":{"id":"A"}}`, `{"agent":{"id":"A"},"success":true}`},
		{` {"key":{}} ` + "\n", `{"key":{},"success":true}`},
		{`{}`, `{"success":true}`},
		{`{ }`, `{ "success":true}`},
	}
	for _, c := range cases {
		head, tail, ok := withSuccess([]byte(c.in))
		if got := string(head) + tail; !ok || got != c.want {
			t.Errorf("withSuccess(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `null`} {
		if _, _, ok := withSuccess([]byte(bad)); ok {
			t.Errorf("withSuccess(%q) accepted a non-object", bad)
		}
	}
}
