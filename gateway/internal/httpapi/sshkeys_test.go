package httpapi

import (
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

func TestSSHKeyRoutes(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("owen")
	owen := bearer(e.userToken("owen"))
	agentID := e.seedAgent(tenantID, "", "bot")
	signer, pub := newEd25519(t)

	// Create, bound to an agent given in lower case: 201 {key, success}; type agent by default.
	r := e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "bot key", "public_key": pub + " bot@host",
		"agent_id": strings.ToLower(agentID)}, owen)
	e.expect(r, 201, "")
	m := r.json(t)
	k := m["key"].(map[string]any)
	id, _ := k["id"].(string)
	if m["success"] != true || k["key_id"] != id || k["agent_id"] != agentID || k["key_type"] != "agent" ||
		k["fingerprint"] != ssh.FingerprintSHA256(signer.PublicKey()) || k["tenant_id"] != tenantID {
		t.Fatalf("create = %s", r.body)
	}
	if got := e.fleet.identity(sshkeyv1.OpCreate); got.TenantID != tenantID || got.Plan != "basic" || got.ClientIP == "" {
		t.Fatalf("identity = %+v", got)
	}
	// The service's answers come back as they are.
	e.expect(e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "again", "public_key": pub}, owen), 409, "conflict")
	e.expect(e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "x", "public_key": "ssh-ed25519 AAAA"}, owen), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "x", "public_key": pub, "agent_id": "01JBAGENT00000000000000009"}, owen),
		422, "validation_failed")
	// The contract's shape rules, before any service.
	for _, body := range []map[string]any{
		{"public_key": pub},
		{"name": "x"},
		{"name": "x", "public_key": pub, "key_type": "root"},
		{"name": "x", "public_key": pub, "key_type": "agent"},
		{"name": "x", "public_key": pub, "agent_id": "bot"},
	} {
		e.expect(e.do("POST", "/api/v1/ssh-keys", body, owen), 422, "validation_failed")
	}

	// A pasted private key: 422 private_key_rejected, never echoed, never logged.
	const secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQSECRET\n-----END OPENSSH PRIVATE KEY-----\n"
	r = e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "oops", "public_key": secret}, owen)
	e.expect(r, 422, "private_key_rejected")
	if strings.Contains(string(r.body), "SECRET") || strings.Contains(e.logs.String(), "SECRET") {
		t.Fatal("the private key was echoed or logged")
	}

	// Get (any case), list with filters, revoke, delete.
	path := "/api/v1/ssh-keys/" + id
	r = e.do("GET", "/api/v1/ssh-keys/"+strings.ToLower(id), nil, apiKey(key))
	e.expect(r, 200, "")
	if m := r.json(t); m["success"] != true || m["key"].(map[string]any)["id"] != id {
		t.Fatalf("get = %s", r.body)
	}
	_, pub2 := newEd25519(t)
	e.expect(e.do("POST", "/api/v1/ssh-keys", map[string]any{"name": "ops", "public_key": pub2, "key_type": "deployment"}, owen), 201, "")

	list := func(q string) []string {
		t.Helper()
		r := e.do("GET", "/api/v1/ssh-keys?"+q, nil, owen)
		e.expect(r, 200, "")
		var names []string
		for _, it := range r.json(t)["keys"].([]any) {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		return names
	}
	if got := list(""); len(got) != 2 {
		t.Fatalf("all keys = %v", got)
	}
	if got := list("agent_id=" + strings.ToLower(agentID)); len(got) != 1 || got[0] != "bot key" {
		t.Fatalf("by agent = %v", got)
	}
	if got := list("key_type=deployment"); len(got) != 1 || got[0] != "ops" {
		t.Fatalf("by type = %v", got)
	}
	if got := list("key_type=access"); len(got) != 0 {
		t.Fatalf("access keys = %v", got)
	}
	for _, q := range []string{"key_type=root", "agent_id=bot", "limit=0"} {
		e.expect(e.do("GET", "/api/v1/ssh-keys?"+q, nil, owen), 422, "validation_failed")
	}
	// Tokens are bound to the filters, and the upper/lower case of agent_id is one filter.
	r = e.do("GET", "/api/v1/ssh-keys?limit=1", nil, owen)
	e.expect(r, 200, "")
	next, _ := r.json(t)["next_token"].(string)
	if next == "" {
		t.Fatalf("no next_token: %s", r.body)
	}
	e.expect(e.do("GET", "/api/v1/ssh-keys?key_type=agent&next_token="+url.QueryEscape(next), nil, owen), 400, "invalid_next_token")
	e.expect(e.do("GET", "/api/v1/ssh-keys?limit=1&next_token="+url.QueryEscape(next), nil, owen), 200, "")
	e.expect(e.do("GET", "/api/v1/agents?next_token="+url.QueryEscape(next), nil, owen), 400, "invalid_next_token")

	r = e.do("POST", path+"/revoke", map[string]any{"reason": "rotated"}, owen)
	e.expect(r, 200, "")
	if k := r.json(t)["key"].(map[string]any); k["status"] != "revoked" || k["revoked"] != true || k["revocation_reason"] != "rotated" {
		t.Fatalf("revoke = %s", r.body)
	}
	e.expect(e.do("POST", path+"/revoke", nil, owen), 200, "") // no body: {} (reason optional)
	e.expect(e.do("POST", path+"/revoke", map[string]any{"reason": strings.Repeat("r", 1025)}, owen), 422, "validation_failed")

	for _, bad := range []string{"nope", "01JBKEY000000000000000000U"} {
		e.expect(e.do("GET", "/api/v1/ssh-keys/"+bad, nil, owen), 404, "not_found")
		e.expect(e.do("POST", "/api/v1/ssh-keys/"+bad+"/revoke", nil, owen), 404, "not_found")
		e.expect(e.do("DELETE", "/api/v1/ssh-keys/"+bad, nil, owen), 404, "not_found")
	}
	r = e.do("DELETE", path, nil, owen)
	e.expect(r, 204, "")
	e.expect(e.do("GET", path, nil, owen), 404, "not_found")
}
