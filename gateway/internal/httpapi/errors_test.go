package httpapi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// TestErrorTable walks the error rows of SPEC §13 through the real app.
func TestErrorTable(t *testing.T) {
	e := newEnv(t, withBodyLimit(4096))
	tenantID, key := e.seedTenant("alice")
	e.seedTenant("bob")
	alice := bearer(e.userToken("alice"))
	now := time.Now()

	expired := signHS256(t, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()})
	wrongSecret := signHS256(t, "another-secret-that-is-also-32-bytes-long", jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()})
	algNone, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	tenantPath := "/api/v1/tenants/" + tenantID
	otherID := "00000000-0000-4000-8000-999999999999"

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		headers map[string]string
		status  int
		code    string
	}{
		{"no credentials", "GET", "/api/v1/tenants", nil, nil, 401, "unauthorized"},
		{"garbage token", "GET", "/api/v1/tenants", nil, bearer("not.a.jwt"), 401, "unauthorized"},
		{"not bearer", "GET", "/api/v1/tenants", nil, map[string]string{"Authorization": "Basic YTpi"}, 401, "unauthorized"},
		{"expired token", "GET", "/api/v1/tenants", nil, bearer(expired), 401, "token_expired"},
		{"alg none", "GET", "/api/v1/tenants", nil, bearer(algNone), 401, "unauthorized"},
		{"wrong secret", "GET", "/api/v1/tenants", nil, bearer(wrongSecret), 401, "unauthorized"},
		{"unknown api key", "GET", tenantPath, nil, apiKey("art_nope"), 401, "unauthorized"},
		{"ambiguous credentials", "GET", tenantPath, nil, map[string]string{"Authorization": alice["Authorization"], "X-Api-Key": key}, 400, "ambiguous_credentials"},
		{"malformed json", "POST", "/api/v1/tenants", `{"name":`, mergeH(alice, map[string]string{"Content-Type": "application/json"}), 400, "invalid_json"},
		{"trailing garbage", "POST", "/api/v1/tenants", `{"name":"x"} x`, alice, 400, "invalid_json"},
		{"not json content type", "POST", "/api/v1/tenants", `name=x`, mergeH(alice, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), 415, "unsupported_media_type"},
		{"text plain", "PUT", tenantPath, `{}`, mergeH(alice, map[string]string{"Content-Type": "text/plain"}), 415, "unsupported_media_type"},
		{"wrong type", "POST", "/api/v1/tenants", map[string]any{"name": 5, "admin_email": "a@example.com"}, alice, 422, "validation_failed"},
		{"missing fields", "POST", "/api/v1/tenants", map[string]any{}, alice, 422, "validation_failed"},
		{"array body", "POST", "/api/v1/tenants", `[]`, alice, 422, "validation_failed"},
		{"bad next_token", "GET", "/api/v1/tenants?next_token=garbage", nil, alice, 400, "invalid_next_token"},
		{"limit zero", "GET", "/api/v1/tenants?limit=0", nil, alice, 422, "validation_failed"},
		{"limit too big", "GET", "/api/v1/tenants?limit=101", nil, alice, 422, "validation_failed"},
		{"limit not integer", "GET", "/api/v1/tenants?limit=ten", nil, alice, 422, "validation_failed"},
		{"unknown route", "GET", "/api/v1/nope", nil, alice, 404, "not_found"},
		{"unknown route unauthenticated", "GET", "/nope", nil, nil, 404, "not_found"},
		{"wrong method", "PATCH", tenantPath, nil, alice, 405, "method_not_allowed"},
		{"wrong method on root", "POST", "/", nil, nil, 405, "method_not_allowed"},
		{"non-member header on /me", "GET", "/api/v1/me", nil, mergeH(alice, map[string]string{"X-Tenant-Id": otherID}), 403, "forbidden"},
		{"malformed header on /me", "GET", "/api/v1/me", nil, mergeH(alice, map[string]string{"X-Tenant-Id": "NOT-A-UUID"}), 400, "invalid_tenant_id"},
		{"malformed tenant path", "GET", "/api/v1/tenants/NOT-A-UUID", nil, alice, 404, "not_found"},
		{"upper-case tenant path", "GET", "/api/v1/tenants/" + strings.ToUpper(tenantID), nil, alice, 404, "not_found"},
		{"other tenant in path", "GET", "/api/v1/tenants/" + otherID, nil, alice, 404, "not_found"},
		{"api key on another tenant", "GET", "/api/v1/tenants/" + otherID, nil, apiKey(key), 404, "not_found"},
		{"member id too long", "DELETE", tenantPath + "/members/" + strings.Repeat("u", 300), nil, alice, 404, "not_found"},
		{"member id with control char", "DELETE", tenantPath + "/members/a%00b", nil, alice, 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body, tc.headers)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.code != "" {
				if got := r.code(t); got != tc.code {
					t.Fatalf("code = %q, want %q: %s", got, tc.code, r.body)
				}
			}
		})
	}
}

func mergeH(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestBodyTooLarge runs on a real listener: the HTTP server refuses the body before any
// handler runs, and the answer must still be the JSON error with a request id.
func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t, withBodyLimit(4096))
	base := e.serve()
	h := mergeH(bearer(e.userToken("alice")), map[string]string{"Content-Type": "application/json"})
	big := `{"name":"` + strings.Repeat("x", 5000) + `","admin_email":"a@example.com"}`
	r := e.send(base, "POST", "/api/v1/tenants", strings.NewReader(big), h)
	e.expect(r, 413, "payload_too_large")
	// Under the limit the same route works.
	r = e.send(base, "POST", "/api/v1/tenants", strings.NewReader(`{"name":"small","admin_email":"a@example.com"}`), h)
	e.expect(r, 201, "")
	// The refused request is in the access log too.
	found := false
	for _, l := range e.logs.accessLines(t) {
		if l["status"] == float64(413) {
			found = true
		}
	}
	if !found {
		t.Fatal("no access log line for the 413")
	}
}

func TestValidationErrorNamesField(t *testing.T) {
	e := newEnv(t)
	r := e.do("POST", "/api/v1/tenants", map[string]any{"name": "ok", "admin_email": "a@example.com", "trial_days": "ten"}, bearer(e.userToken("alice")))
	e.expect(r, 422, "validation_failed")
	errs, _ := r.json(t)["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["field"] != "trial_days" {
		t.Fatalf("errors = %v, want one for trial_days", errs)
	}

	// The contract's own rules (Validate) run at the gateway too: nothing reaches the service.
	r = e.do("POST", "/api/v1/tenants", map[string]any{"name": strings.Repeat("n", 129), "admin_email": "not-an-email"}, bearer(e.userToken("alice")))
	e.expect(r, 422, "validation_failed")
	fields := map[string]bool{}
	for _, fe := range r.json(t)["errors"].([]any) {
		fields[fe.(map[string]any)["field"].(string)] = true
	}
	if !fields["name"] || !fields["admin_email"] {
		t.Fatalf("errors name %v, want name and admin_email", fields)
	}
	if id := e.tenants.identity(tenantv1.OpCreate); id.RequestID != "" {
		t.Fatal("an invalid body reached the tenant service")
	}
}

func TestEmptyBodyIsEmptyObject(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("alice")
	// PUT with no body and no content type: every field is optional, so it is a no-op update.
	r := e.do("PUT", "/api/v1/tenants/"+tenantID, nil, bearer(e.userToken("alice")))
	e.expect(r, 200, "")
	// JSON with charset is JSON.
	r = e.do("PUT", "/api/v1/tenants/"+tenantID, `{"name":"renamed","unknown_field":1}`,
		mergeH(bearer(e.userToken("alice")), map[string]string{"Content-Type": "application/json; charset=utf-8"}))
	e.expect(r, 200, "")
	if got := r.json(t)["tenant"].(map[string]any)["name"]; got != "renamed" {
		t.Fatalf("name = %v", got)
	}
}

func TestSuspendedTenant(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("alice")
	e.setRole(tenantID, "adam", "admin")
	e.setStatus(tenantID, tenantv1.StatusSuspended)
	path := "/api/v1/tenants/" + tenantID

	e.expect(e.do("PUT", path, map[string]any{"name": "x"}, bearer(e.userToken("adam"))), 403, "tenant_suspended")
	e.expect(e.do("PUT", path, map[string]any{"name": "x"}, apiKey(key)), 403, "tenant_suspended")
	e.expect(e.do("GET", path+"/members", nil, bearer(e.userToken("alice"))), 403, "tenant_suspended")
	e.expect(e.do("POST", path+"/api-keys/rotate", nil, bearer(e.userToken("alice"))), 403, "tenant_suspended")
	// Still allowed: reading the tenant, the owner's delete, and the platform admin's plan change.
	e.expect(e.do("GET", path, nil, bearer(e.userToken("adam"))), 200, "")
	e.expect(e.do("PUT", path+"/plan", map[string]any{"status": "active"}, bearer(e.userToken("operator", "platform_admin"))), 200, "")
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeStatus})
	e.expect(e.do("PUT", path, map[string]any{"name": "x"}, bearer(e.userToken("adam"))), 200, "")

	e.setStatus(tenantID, tenantv1.StatusSuspended)
	e.expect(e.do("DELETE", path, nil, bearer(e.userToken("alice"))), 204, "")
}

func TestUpstreamUnavailableThenRecovers(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("alice")
	alice := bearer(e.userToken("alice"))
	path := "/api/v1/tenants/" + tenantID
	e.expect(e.do("GET", path, nil, alice), 200, "")

	e.tenants.stop(t)
	e.auth.Forget(tenantv1.TenantChanged{}) // drop cached memberships so the lookup itself fails
	e.expect(e.do("GET", path, nil, alice), 503, "service_unavailable")
	e.expect(e.do("GET", "/api/v1/tenants", nil, alice), 503, "service_unavailable")

	e.tenants.start(t, e.nc)
	e.expect(e.do("GET", path, nil, alice), 200, "")
}

func TestUpstreamTimeout(t *testing.T) {
	e := newEnv(t, withUpstreamTimeout(100*time.Millisecond))
	tenantID, _ := e.seedTenant("alice")
	alice := bearer(e.userToken("alice"))
	path := "/api/v1/tenants/" + tenantID
	e.expect(e.do("GET", path, nil, alice), 200, "") // membership now cached
	e.tenants.setDelay(500 * time.Millisecond)
	e.expect(e.do("GET", path, nil, alice), 504, "upstream_timeout")
	e.tenants.setDelay(0)
	e.expect(e.do("GET", path, nil, alice), 200, "")
}

func TestWrongMethodListsAllowed(t *testing.T) {
	e := newEnv(t)
	r := e.do("PATCH", "/api/v1/tenants", nil, nil)
	e.expect(r, 405, "method_not_allowed")
	if got := r.header.Get("Allow"); got != "GET, POST" {
		t.Fatalf("Allow = %q", got)
	}
	if r := e.do(http.MethodHead, "/health", nil, nil); r.status != 405 {
		t.Fatalf("HEAD /health = %d", r.status)
	}
}
