package httpapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

func TestCreateTenant(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/api/v1/tenants", map[string]any{"name": "Acme", "admin_email": "ops@acme.example", "whatever": true},
		bearer(e.userToken("alice")))
	e.expect(r, 201, "")
	m := r.json(t)
	tenantID, _ := m["tenant_id"].(string)
	if tenantID == "" || m["success"] != true || m["api_key"] == "" {
		t.Fatalf("create reply = %v", m)
	}
	if tn := m["tenant"].(map[string]any); tn["id"] != tenantID || tn["tenant_id"] != tenantID || tn["name"] != "Acme" {
		t.Fatalf("tenant = %v", tn)
	}
	// The service saw the user, with no tenant.
	id := e.tenants.identity(tenantv1.OpCreate)
	if id.Kind != natsrpc.KindUser || id.PrincipalID != "alice" || id.TenantID != "" || id.Email != "alice@example.com" || id.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("identity = %+v", id)
	}
	// admin_token is a working user token scoped to the new tenant.
	admin := bearer(m["admin_token"].(string))
	r = e.do("GET", "/api/v1/me", nil, admin)
	e.expect(r, 200, "")
	if me := r.json(t); me["user_id"] != "alice" || me["tenant_id"] != tenantID || me["role"] != "owner" {
		t.Fatalf("me with admin_token = %v", me)
	}
	// The API key works on the tenant.
	e.expect(e.do("GET", "/api/v1/tenants/"+tenantID, nil, apiKey(m["api_key"].(string))), 200, "")
}

func TestTenantRoutesHappyPath(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("owen")
	owen := bearer(e.userToken("owen"))
	path := "/api/v1/tenants/" + tenantID

	r := e.do("GET", path, nil, owen)
	e.expect(r, 200, "")
	if m := r.json(t); m["success"] != true || m["tenant"].(map[string]any)["id"] != tenantID {
		t.Fatalf("get = %v", m)
	}
	id := e.tenants.identity(tenantv1.OpGet)
	if id.TenantID != tenantID || id.Role != "owner" || id.PrincipalID != "owen" || id.Kind != natsrpc.KindUser {
		t.Fatalf("identity = %+v", id)
	}

	r = e.do("PUT", path, map[string]any{"description": "hello"}, apiKey(key))
	e.expect(r, 200, "")
	if d := r.json(t)["tenant"].(map[string]any)["description"]; d != "hello" {
		t.Fatalf("description = %v", d)
	}
	id = e.tenants.identity(tenantv1.OpUpdate)
	if id.Kind != natsrpc.KindAPIKey || id.PrincipalID != tenantID || id.Role != "admin" || id.Email != "" {
		t.Fatalf("API key identity = %+v", id)
	}
	// null clears an optional field.
	r = e.do("PUT", path, `{"description":null}`, owen)
	e.expect(r, 200, "")
	if d := r.json(t)["tenant"].(map[string]any)["description"]; d != nil {
		t.Fatalf("description after null = %v", d)
	}

	r = e.do("PUT", path+"/plan", map[string]any{"subscription_tier": "pro"}, bearer(e.userToken("pat", "platform_admin")))
	e.expect(r, 200, "")
	if id := e.tenants.identity(tenantv1.OpSetPlan); !id.PlatformAdmin || id.Role != "" {
		t.Fatalf("plan identity = %+v", id)
	}
	e.expect(e.do("PUT", path+"/plan", map[string]any{"subscription_tier": "gold"}, bearer(e.userToken("pat", "platform_admin"))), 422, "validation_failed")

	// Members: add (201), list, update, remove (204), with a case-sensitive, percent-encoded user id.
	r = e.do("POST", path+"/members", map[string]any{"user_id": "Auth0|Bob", "email": "bob@example.com", "role": "member"}, owen)
	e.expect(r, 201, "")
	if m := r.json(t); m["success"] != true || m["member"].(map[string]any)["user_id"] != "Auth0|Bob" {
		t.Fatalf("add = %v", m)
	}
	e.expect(e.do("POST", path+"/members", map[string]any{"user_id": "Auth0|Bob", "role": "member"}, owen), 409, "conflict")
	e.expect(e.do("POST", path+"/members", map[string]any{"user_id": "x", "role": "king"}, owen), 422, "validation_failed")
	r = e.do("PUT", path+"/members/"+url.PathEscape("Auth0|Bob"), map[string]any{"role": "viewer"}, owen)
	e.expect(r, 200, "")
	if role := r.json(t)["member"].(map[string]any)["role"]; role != "viewer" {
		t.Fatalf("role = %v", role)
	}
	e.expect(e.do("PUT", path+"/members/"+url.PathEscape("auth0|bob"), map[string]any{"role": "viewer"}, owen), 404, "not_found")
	r = e.do("GET", path+"/members", nil, owen)
	e.expect(r, 200, "")
	if ms := r.json(t)["members"].([]any); len(ms) != 2 {
		t.Fatalf("members = %v", ms)
	}
	r = e.do("DELETE", path+"/members/"+url.PathEscape("Auth0|Bob"), nil, owen)
	e.expect(r, 204, "")
	if len(r.body) != 0 {
		t.Fatalf("204 with a body: %q", r.body)
	}

	r = e.do("POST", path+"/api-keys/rotate", nil, owen)
	e.expect(r, 200, "")
	newKey, _ := r.json(t)["api_key"].(string)
	if newKey == "" || newKey == key || r.json(t)["success"] != true {
		t.Fatalf("rotate = %s", r.body)
	}
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeAPIKey})
	e.expect(e.do("GET", path, nil, apiKey(key)), 401, "unauthorized")
	e.expect(e.do("GET", path, nil, apiKey(newKey)), 200, "")

	r = e.do("DELETE", path, nil, owen)
	e.expect(r, 204, "")
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeDeleted})
	e.expect(e.do("GET", path, nil, owen), 404, "not_found")
}

func TestListPaging(t *testing.T) {
	e := newEnv(t)
	for range 5 {
		e.seedTenant("alice")
	}
	other, _ := e.seedTenant("bob")
	alice := bearer(e.userToken("alice"))

	var seen []string
	next := ""
	for page := 0; ; page++ {
		target := "/api/v1/tenants?limit=2"
		if next != "" {
			target += "&next_token=" + url.QueryEscape(next)
		}
		r := e.do("GET", target, nil, alice)
		e.expect(r, 200, "")
		m := r.json(t)
		ts := m["tenants"].([]any)
		if len(ts) == 0 {
			t.Fatalf("empty page %d", page)
		}
		for _, tn := range ts {
			tm := tn.(map[string]any)
			if tm["role"] != "owner" {
				t.Fatalf("role = %v", tm["role"])
			}
			seen = append(seen, tm["id"].(string))
		}
		if m["next_token"] == nil {
			break
		}
		next = m["next_token"].(string)
		if page > 5 {
			t.Fatal("paging does not end")
		}
		// The token is opaque: it does not show the store cursor.
		if strings.Contains(next, "after:") {
			t.Fatalf("next_token leaks the cursor: %s", next)
		}
		// Bound to the caller: bob cannot use alice's token...
		e.expect(e.do("GET", "/api/v1/tenants?next_token="+url.QueryEscape(next), nil, bearer(e.userToken("bob"))), 400, "invalid_next_token")
		// ...nor can it page another list.
		e.expect(e.do("GET", "/api/v1/tenants/"+other+"/members?next_token="+url.QueryEscape(next), nil, bearer(e.userToken("bob"))), 400, "invalid_next_token")
	}
	if len(seen) != 5 {
		t.Fatalf("saw %d tenants, want 5: %v", len(seen), seen)
	}

	// Members paging, and the list always has an array.
	tenantID := seen[0]
	for i := range 3 {
		e.setRole(tenantID, fmt.Sprintf("m%d", i), "member")
	}
	r := e.do("GET", "/api/v1/tenants/"+tenantID+"/members?limit=3", nil, alice)
	e.expect(r, 200, "")
	m := r.json(t)
	if len(m["members"].([]any)) != 3 || m["next_token"] == nil {
		t.Fatalf("first members page = %v", m)
	}
	r = e.do("GET", "/api/v1/tenants/"+tenantID+"/members?limit=3&next_token="+url.QueryEscape(m["next_token"].(string)), nil, alice)
	e.expect(r, 200, "")
	if m := r.json(t); len(m["members"].([]any)) != 1 || m["next_token"] != nil {
		t.Fatalf("second members page = %v", m)
	}
	r = e.do("GET", "/api/v1/tenants", nil, bearer(e.userToken("nobody")))
	e.expect(r, 200, "")
	if string(r.body) != `{"tenants":[],"next_token":null}` {
		t.Fatalf("empty list = %s", r.body)
	}
}
