package httpapi

import (
	"net/url"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

func withTenant(h map[string]string, tenantID string) map[string]string {
	return mergeH(h, map[string]string{"X-Tenant-Id": tenantID})
}

func TestAgentRoutes(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("owen")
	owen := bearer(e.userToken("owen"))

	// Create: 201 {agent, success}, no key without public_key.
	r := e.do("POST", "/api/v1/agents", map[string]any{"name": "scraper", "type": "specialist",
		"capabilities": []map[string]any{{"name": "crawl"}}, "unknown_field": 1}, owen)
	e.expect(r, 201, "")
	m := r.json(t)
	ag := m["agent"].(map[string]any)
	id, _ := ag["id"].(string)
	if m["success"] != true || ag["agent_id"] != id || ag["name"] != "scraper" || ag["tenant_id"] != tenantID {
		t.Fatalf("create = %s", r.body)
	}
	if _, ok := m["key"]; ok {
		t.Fatalf("a key without public_key: %s", r.body)
	}
	// The service saw the owner, the tenant, its tier and the caller's address.
	idn := e.fleet.identity(agentv1.OpCreate)
	if idn.TenantID != tenantID || idn.Kind != natsrpc.KindUser || idn.Role != "owner" || idn.Plan != "basic" ||
		idn.ClientIP != "0.0.0.0" || idn.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("identity = %+v", idn)
	}

	// With public_key: the reply carries the key, registered as type agent for the agent.
	_, pub := newEd25519(t)
	r = e.do("POST", "/api/v1/agents", map[string]any{"name": "with-key", "public_key": pub}, apiKey(key))
	e.expect(r, 201, "")
	m = r.json(t)
	k, _ := m["key"].(map[string]any)
	if k == nil || k["key_type"] != "agent" || k["agent_id"] != m["agent"].(map[string]any)["id"] {
		t.Fatalf("create with public_key = %s", r.body)
	}
	if idn := e.fleet.identity(agentv1.OpCreate); idn.Kind != natsrpc.KindAPIKey || idn.Plan != "basic" || idn.Role != "admin" {
		t.Fatalf("API key identity = %+v", idn)
	}
	// The plan follows the tenant's tier as the lookups report it.
	e.setTier(tenantID, "free")
	e.expect(e.do("GET", "/api/v1/agents", nil, apiKey(key)), 200, "")
	e.expect(e.do("GET", "/api/v1/agents", nil, owen), 200, "")
	if p := e.fleet.identity(agentv1.OpList).Plan; p != "free" {
		t.Fatalf("plan after the tier change = %q", p)
	}
	e.setTier(tenantID, "basic")
	// The same key again: the service's 409 comes back as it is.
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"name": "dup", "public_key": pub}, owen), 409, "conflict")
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"name": "bad", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nxx"}, owen),
		422, "private_key_rejected")

	// Bad bodies never reach the service.
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"type": "worker"}, owen), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"name": "x", "type": "robot"}, owen), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/agents", `{"name":`, owen), 400, "invalid_json")
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"name": 7}, owen), 422, "validation_failed")

	// Get: any case in, upper case out; malformed → 404.
	path := "/api/v1/agents/" + id
	r = e.do("GET", "/api/v1/agents/"+strings.ToLower(id), nil, owen)
	e.expect(r, 200, "")
	if m := r.json(t); m["success"] != true || m["agent"].(map[string]any)["id"] != id {
		t.Fatalf("get = %s", r.body)
	}
	if got := e.fleet.identity(agentv1.OpGet); got.TenantID != tenantID || got.Plan != "basic" {
		t.Fatalf("get identity = %+v", got)
	}
	for _, bad := range []string{"nope", "01JBAGENT0000000000000000I", "81JBAGENT00000000000000001", id + "0"} {
		e.expect(e.do("GET", "/api/v1/agents/"+bad, nil, owen), 404, "not_found")
		e.expect(e.do("PUT", "/api/v1/agents/"+bad, map[string]any{"name": "x"}, owen), 404, "not_found")
		e.expect(e.do("DELETE", "/api/v1/agents/"+bad, nil, owen), 404, "not_found")
	}
	e.expect(e.do("GET", "/api/v1/agents/01JBAGENT00000000000000009", nil, owen), 404, "not_found")

	// Update: partial; null clears.
	r = e.do("PUT", path, map[string]any{"description": "fetches", "metadata": map[string]any{"v": 2}}, owen)
	e.expect(r, 200, "")
	if a := r.json(t)["agent"].(map[string]any); a["description"] != "fetches" || a["name"] != "scraper" {
		t.Fatalf("update = %s", r.body)
	}
	r = e.do("PUT", path, `{"description":null}`, owen)
	e.expect(r, 200, "")
	if a := r.json(t)["agent"].(map[string]any); a["description"] != "" {
		t.Fatalf("after null: %s", r.body)
	}
	e.expect(e.do("PUT", path, map[string]any{"name": ""}, owen), 422, "validation_failed")

	// Status override.
	r = e.do("PUT", path+"/status", map[string]any{"status": "busy"}, owen)
	e.expect(r, 200, "")
	if a := r.json(t)["agent"].(map[string]any); a["status"] != "busy" {
		t.Fatalf("status = %s", r.body)
	}
	e.expect(e.do("PUT", path+"/status", map[string]any{"status": "asleep"}, owen), 422, "validation_failed")
	e.expect(e.do("PUT", path+"/status", map[string]any{}, owen), 422, "validation_failed")
	e.expect(e.do("GET", path+"/status", nil, owen), 405, "method_not_allowed")

	// Summary: the service's object as it is.
	r = e.do("GET", "/api/v1/agents/status/summary", nil, owen)
	e.expect(r, 200, "")
	if got := string(r.body); got != `{"online":0,"offline":1,"busy":1,"idle":0,"error":0,"total":2}` {
		t.Fatalf("summary = %s", got)
	}

	// Delete: 204 with no body, then gone.
	r = e.do("DELETE", path, nil, owen)
	e.expect(r, 204, "")
	if len(r.body) != 0 {
		t.Fatalf("204 with a body: %q", r.body)
	}
	e.expect(e.do("GET", path, nil, owen), 404, "not_found")
}

func TestAgentListFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	owen := bearer(e.userToken("owen"))
	for i, spec := range []struct{ typ, cap string }{
		{"worker", "crawl"}, {"worker", "parse"}, {"specialist", "crawl"}, {"worker", "crawl"}, {"system", ""},
	} {
		body := map[string]any{"name": "a" + string(rune('0'+i)), "type": spec.typ}
		if spec.cap != "" {
			body["capabilities"] = []map[string]any{{"name": spec.cap}}
		}
		e.expect(e.do("POST", "/api/v1/agents", body, owen), 201, "")
	}

	// Walk the worker+crawl list one by one: each page's token leads to the next.
	var names []string
	next := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("the list does not end")
		}
		q := url.Values{"type": {"worker"}, "capability": {"crawl"}, "limit": {"1"}}
		if next != "" {
			q.Set("next_token", next)
		}
		r := e.do("GET", "/api/v1/agents?"+q.Encode(), nil, owen)
		e.expect(r, 200, "")
		m := r.json(t)
		items := m["agents"].([]any)
		if len(items) == 0 {
			t.Fatalf("an empty page: %s", r.body)
		}
		for _, it := range items {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		if m["next_token"] == nil {
			break
		}
		next = m["next_token"].(string)
		// The token is bound to its filters and tenant: with other filters it is 400.
		e.expect(e.do("GET", "/api/v1/agents?type=system&next_token="+url.QueryEscape(next), nil, owen), 400, "invalid_next_token")
		e.expect(e.do("GET", "/api/v1/agents?next_token="+url.QueryEscape(next), nil, owen), 400, "invalid_next_token")
	}
	if strings.Join(names, ",") != "a0,a3" {
		t.Fatalf("worker+crawl = %v", names)
	}
	req := e.fleet.identity(agentv1.OpList)
	if req.TenantID != tenantID {
		t.Fatalf("list identity = %+v", req)
	}

	// No filter, default page: everything; an empty list is [] not null.
	r := e.do("GET", "/api/v1/agents", nil, owen)
	e.expect(r, 200, "")
	if m := r.json(t); len(m["agents"].([]any)) != 5 || m["next_token"] != nil {
		t.Fatalf("all = %s", r.body)
	}
	r = e.do("GET", "/api/v1/agents?status=online", nil, owen)
	e.expect(r, 200, "")
	if !strings.Contains(string(r.body), `"agents":[]`) {
		t.Fatalf("empty list = %s", r.body)
	}

	// Invalid enums and limits are 422; a forged token 400.
	for _, q := range []string{"status=sleeping", "type=robot", "limit=0", "limit=101", "limit=x", "capability=" + strings.Repeat("c", 129)} {
		e.expect(e.do("GET", "/api/v1/agents?"+q, nil, owen), 422, "validation_failed")
	}
	e.expect(e.do("GET", "/api/v1/agents?next_token=v1.abc.def", nil, owen), 400, "invalid_next_token")
}

// TestAgentTokenOnAgentRoutes: an agent token reads and edits its own record only.
func TestAgentTokenOnAgentRoutes(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	self := e.seedAgent(tenantID, "", "me")
	other := e.seedAgent(tenantID, "", "other")
	agent := bearer(e.agentToken(tenantID, self))

	r := e.do("GET", "/api/v1/agents/"+strings.ToLower(self), nil, agent)
	e.expect(r, 200, "")
	idn := e.fleet.identity(agentv1.OpGet)
	if idn.Kind != natsrpc.KindAgent || idn.PrincipalID != self || idn.TenantID != tenantID || idn.Plan != "basic" || idn.Role != "" {
		t.Fatalf("agent identity = %+v", idn)
	}
	r = e.do("PUT", "/api/v1/agents/"+self, map[string]any{"description": "mine", "capabilities": []map[string]any{{"name": "x"}}, "metadata": map[string]any{}}, agent)
	e.expect(r, 200, "")
	// Name and type are not the agent's to change (403, and nothing is sent on).
	before := e.fleet.callCount(agentv1.OpUpdate)
	e.expect(e.do("PUT", "/api/v1/agents/"+self, map[string]any{"name": "renamed"}, agent), 403, "forbidden")
	e.expect(e.do("PUT", "/api/v1/agents/"+self, map[string]any{"description": "d", "type": "system"}, agent), 403, "forbidden")
	if e.fleet.callCount(agentv1.OpUpdate) != before {
		t.Fatal("a forbidden update reached the service")
	}
	// Any other id is 404 (not 403), existing or not, well-formed or not.
	for _, id := range []string{other, "01JBAGENT00000000000000009", "nope"} {
		e.expect(e.do("GET", "/api/v1/agents/"+id, nil, agent), 404, "not_found")
		e.expect(e.do("PUT", "/api/v1/agents/"+id, map[string]any{"description": "x"}, agent), 404, "not_found")
	}
	// Everything else about agents and keys is 403.
	e.expect(e.do("GET", "/api/v1/agents", nil, agent), 403, "forbidden")
	e.expect(e.do("POST", "/api/v1/agents", map[string]any{"name": "x"}, agent), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/agents/status/summary", nil, agent), 403, "forbidden")
	e.expect(e.do("PUT", "/api/v1/agents/"+self+"/status", map[string]any{"status": "busy"}, agent), 403, "forbidden")
	e.expect(e.do("DELETE", "/api/v1/agents/"+self, nil, agent), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/ssh-keys", nil, agent), 403, "forbidden")
	e.expect(e.do("GET", "/api/v1/ssh-keys/"+testKeyID, nil, agent), 403, "forbidden")

	// A suspended tenant is 403 tenant_suspended for agent tokens too.
	e.setStatus(tenantID, tenantv1.StatusSuspended)
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 403, "tenant_suspended")
	e.setStatus(tenantID, tenantv1.StatusActive)
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 200, "")

	// The agent's plan follows its tenant's tier (lookup_tenant, forgotten on change).
	e.setTier(tenantID, "pro")
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 200, "")
	if p := e.fleet.identity(agentv1.OpGet).Plan; p != "pro" {
		t.Fatalf("plan after the tier change = %q", p)
	}
}

// TestCrossTenantIDsAre404: another tenant's agent and key ids do not exist for user
// tokens, API keys and agent tokens of this tenant.
func TestCrossTenantIDsAre404(t *testing.T) {
	e := newEnv(t)
	tenantA, _ := e.seedTenant("alice")
	tenantB, keyB := e.seedTenant("bob")
	alice := bearer(e.userToken("alice"))
	_, pub := newEd25519(t)
	r := e.do("POST", "/api/v1/agents", map[string]any{"name": "a", "public_key": pub}, alice)
	e.expect(r, 201, "")
	agentA := r.json(t)["agent"].(map[string]any)["id"].(string)
	keyA := r.json(t)["key"].(map[string]any)["id"].(string)

	agentB := e.seedAgent(tenantB, "", "b")
	for name, creds := range map[string]map[string]string{
		"user":    bearer(e.userToken("bob")),
		"api key": apiKey(keyB),
		"agent":   bearer(e.agentToken(tenantB, agentB)),
	} {
		t.Run(name, func(t *testing.T) {
			e.expect(e.do("GET", "/api/v1/agents/"+agentA, nil, creds), 404, "not_found")
			e.expect(e.do("PUT", "/api/v1/agents/"+agentA, map[string]any{"description": "x"}, creds), 404, "not_found")
			if name == "agent" {
				// Agent tokens may not use the key routes at all, whatever the id.
				e.expect(e.do("GET", "/api/v1/ssh-keys/"+keyA, nil, creds), 403, "forbidden")
				return
			}
			e.expect(e.do("PUT", "/api/v1/agents/"+agentA+"/status", map[string]any{"status": "idle"}, creds), 404, "not_found")
			e.expect(e.do("DELETE", "/api/v1/agents/"+agentA, nil, creds), 404, "not_found")
			e.expect(e.do("GET", "/api/v1/ssh-keys/"+keyA, nil, creds), 404, "not_found")
			e.expect(e.do("POST", "/api/v1/ssh-keys/"+keyA+"/revoke", nil, creds), 404, "not_found")
			e.expect(e.do("DELETE", "/api/v1/ssh-keys/"+keyA, nil, creds), 404, "not_found")
			// Naming tenant A in the header does not help (not a member / bound elsewhere).
			e.expect(e.do("GET", "/api/v1/agents/"+agentA, nil, withTenant(creds, tenantA)), 403, "forbidden")
		})
	}
	// Untouched.
	r = e.do("GET", "/api/v1/ssh-keys/"+keyA, nil, alice)
	e.expect(r, 200, "")
	if st := r.json(t)["key"].(map[string]any)["status"]; st != sshkeyv1.StatusActive {
		t.Fatalf("key A = %s", r.body)
	}
}
