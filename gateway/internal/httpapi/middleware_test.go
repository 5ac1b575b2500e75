package httpapi

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequestID(t *testing.T) {
	e := newEnv(t)
	ulidRE := regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)

	r := e.do("GET", "/", nil, nil)
	if id := r.header.Get("X-Request-Id"); !ulidRE.MatchString(id) {
		t.Fatalf("generated id %q is not a ULID", id)
	}
	r = e.do("GET", "/", nil, map[string]string{"X-Request-Id": "client-req_1.a"})
	if id := r.header.Get("X-Request-Id"); id != "client-req_1.a" {
		t.Fatalf("sane incoming id replaced: %q", id)
	}
	for _, bad := range []string{strings.Repeat("a", 65), "has space", "semi;colon", "ünï"} {
		r = e.do("GET", "/", nil, map[string]string{"X-Request-Id": bad})
		if id := r.header.Get("X-Request-Id"); !ulidRE.MatchString(id) {
			t.Fatalf("incoming id %q gave %q, want a fresh ULID", bad, id)
		}
	}
	// The id reaches the error body and the upstream call.
	r = e.do("GET", "/api/v1/tenants", nil, map[string]string{"X-Request-Id": "trace-me"})
	if r.json(t)["request_id"] != "trace-me" {
		t.Fatalf("error body = %s", r.body)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, withCORS("https://app.example.com"))
	// Allowed origin: echoed, never with credentials.
	r := e.do("GET", "/", nil, map[string]string{"Origin": "https://app.example.com"})
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("Access-Control-Allow-Credentials must never be sent")
	}
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Fatalf("allowed origin: ACAO = %q", got)
	}
	if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("expose headers = %q", r.header.Get("Access-Control-Expose-Headers"))
	}
	// Denied origin: no CORS headers.
	r = e.do("GET", "/", nil, map[string]string{"Origin": "https://evil.example.com"})
	if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Fatalf("denied origin: ACAO = %q", got)
	}
	// Preflight.
	pre := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT",
		"Access-Control-Request-Headers": "authorization, content-type"}
	r = e.do("OPTIONS", "/api/v1/tenants/abc", nil, pre)
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("Access-Control-Allow-Credentials must never be sent")
	}
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "x-tenant-id") {
		t.Fatalf("preflight = %d %v", r.status, r.header)
	}
	pre["Origin"] = "https://evil.example.com"
	r = e.do("OPTIONS", "/api/v1/tenants/abc", nil, pre)
	if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("preflight from a denied origin got CORS headers: %v", r.header)
	}

	// No list: no CORS at all.
	e2 := newEnv(t)
	r = e2.do("GET", "/", nil, map[string]string{"Origin": "https://app.example.com"})
	if r.header.Get("Access-Control-Allow-Origin") != "" || r.header.Get("Vary") != "" {
		t.Fatalf("CORS headers without configuration: %v", r.header)
	}
}

// TestAccessLog: one line per request with the route template and the path without its
// query string; no token, key or body ever.
func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("alice")
	tok := e.userToken("alice")
	e.do("GET", "/api/v1/tenants?limit=5&token=secret-in-query", nil, bearer(tok))
	e.do("GET", "/api/v1/tenants/"+tenantID+"?x=1", nil, apiKey(key))
	e.do("POST", "/api/v1/tenants", `{"name":"body-secret","admin_email":"a@example.com"}`, bearer(tok))
	e.do("GET", "/api/v1/does-not-exist", nil, nil)

	logs := e.logs.String()
	for _, secret := range []string{tok, key, "secret-in-query", "body-secret", "limit=5"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains %q:\n%s", secret, logs)
		}
	}
	lines := e.logs.accessLines(t)
	if len(lines) != 4 {
		t.Fatalf("%d access lines, want 4:\n%s", len(lines), logs)
	}
	first := lines[0]
	if first["path"] != "/api/v1/tenants" || first["route"] != "/api/v1/tenants" || first["method"] != "GET" ||
		first["status"] != float64(200) || first["principal"] != "user" || first["request_id"] == "" {
		t.Fatalf("access line = %v", first)
	}
	second := lines[1]
	if second["route"] != "/api/v1/tenants/{id}" || second["tenant_id"] != tenantID || second["principal"] != "api_key" {
		t.Fatalf("access line = %v", second)
	}
	if lines[3]["route"] != routeUnmatched || lines[3]["status"] != float64(404) {
		t.Fatalf("unmatched line = %v", lines[3])
	}
}

// TestMetrics: labels are route templates, never raw paths or tenants.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	tenantID, key := e.seedTenant("alice")
	e.do("GET", "/api/v1/tenants/"+tenantID, nil, apiKey(key))
	e.do("GET", "/api/v1/tenants/"+tenantID, nil, apiKey(key))
	e.do("GET", "/random/"+tenantID, nil, nil)

	if n := counterValue(t, e, MetricRequests, map[string]string{"method": "GET", "route": "/api/v1/tenants/{id}", "status": "200"}); n != 2 {
		t.Fatalf("requests{route=/api/v1/tenants/{id},status=200} = %v, want 2", n)
	}
	got, err := testutil.GatherAndCount(e.reg, MetricRequests, MetricDuration)
	if err != nil {
		t.Fatal(err)
	}
	if got < 3 {
		t.Fatalf("gathered %d series", got)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), tenantID) {
					t.Fatalf("metric %s has a raw path or tenant label %s=%s", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// counterValue reads one counter series from the env's registry.
func counterValue(t *testing.T, e *env, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestTrustedProxies(t *testing.T) {
	// app.Test connections come from 0.0.0.0.
	for _, tc := range []struct {
		name    string
		proxies []string
		xff     string
		wantIP  string
	}{
		{"untrusted peer", nil, "203.0.113.7", "0.0.0.0"},
		{"trusted peer", []string{"0.0.0.0"}, "203.0.113.7", "203.0.113.7"},
		// The client may write anything left of what the proxy appended: the rightmost
		// entry no trusted proxy vouches for is the client, not the leftmost.
		{"spoofed entries left of the proxy's", []string{"0.0.0.0"}, "198.51.100.9, 203.0.113.7", "203.0.113.7"},
		{"a chain of trusted proxies", []string{"0.0.0.0/32", "10.0.0.0/8"}, "203.0.113.7, 10.0.0.2, 10.0.0.1", "203.0.113.7"},
		{"all trusted: the leftmost", []string{"0.0.0.0", "10.0.0.0/8"}, "10.0.0.3, 10.0.0.1", "10.0.0.3"},
		{"garbage stops the walk", []string{"0.0.0.0", "10.0.0.0/8"}, "203.0.113.7, nonsense, 10.0.0.1", "10.0.0.1"},
		{"trusted peer without the header", []string{"0.0.0.0"}, "", "0.0.0.0"},
		{"IPv6", []string{"0.0.0.0"}, "2001:db8::1", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withTrustedProxies(tc.proxies...))
			h := map[string]string{}
			if tc.xff != "" {
				h["X-Forwarded-For"] = tc.xff
			}
			e.do("GET", "/", nil, h)
			lines := e.logs.accessLines(t)
			if len(lines) != 1 || lines[0]["ip"] != tc.wantIP {
				t.Fatalf("access lines = %v, want ip %s", lines, tc.wantIP)
			}
		})
	}
}

func TestPanicIsInternalError(t *testing.T) {
	e := newEnv(t, withRoutes(func(a *api) []route {
		return []route{{method: "GET", path: "/api/v1/test-panic", op: "test-panic", tag: tagSystem, summary: "test",
			status: 200, policy: publicPolicy(), handle: func(*request) error { panic("boom") }}}
	}))
	e.allow500 = true
	r := e.do("GET", "/api/v1/test-panic", nil, nil)
	e.expect(r, 500, "internal")
	if strings.Contains(string(r.body), "boom") {
		t.Fatal("the panic value leaked to the client")
	}
	if !strings.Contains(e.logs.String(), "boom") {
		t.Fatal("the panic was not logged")
	}
	if lines := e.logs.accessLines(t); len(lines) != 1 || lines[0]["status"] != float64(500) {
		t.Fatalf("access lines = %v", lines)
	}
	// The app keeps serving.
	e.expect(e.do("GET", "/", nil, nil), 200, "")
}
