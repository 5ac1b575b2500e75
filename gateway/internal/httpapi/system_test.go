package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
)

func TestRoot(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/", nil, nil)
	e.expect(r, 200, "")
	if m := r.json(t); m["service"] != ServiceName || m["version"] != "1.2.3-test" || m["status"] != "ok" {
		t.Fatalf("root = %v", m)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	// The fakes are one tenant, agent, sshkey and channel instance each; start a second
	// tenant and agent instance.
	nc := natsrpctest.Connect(t, e.ns)
	for _, name := range []string{"tenant", "agent"} {
		svc, err := micro.AddService(nc, micro.Config{Name: name, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
	}
	if err := nc.Flush(); err != nil { // the services' subscriptions reach the server first
		t.Fatal(err)
	}
	// Discovery is timing-based (replies within a window, cached briefly): poll.
	waitHealth := func(want map[string]int, status string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := e.do("GET", "/health", nil, nil)
			e.expect(r, 200, "")
			var h Health
			if err := json.Unmarshal(r.body, &h); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(h.Services) == fmt.Sprint(want) && h.Status == status && h.NATSConnected {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health = %+v, want services %v, %s, connected", h, want, status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitHealth(map[string]int{"tenant": 2, "agent": 2, "sshkey": 1, "channel": 1, "usage": 0}, "degraded")

	for _, name := range []string{"usage"} {
		svc, err := micro.AddService(nc, micro.Config{Name: name, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
	}
	waitHealth(map[string]int{"tenant": 2, "agent": 2, "sshkey": 1, "channel": 1, "usage": 1}, "ok")

	// NATS gone: 503, every service 0.
	e.ns.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for e.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("still connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := e.do("GET", "/health", nil, nil)
	e.expect(r, 503, "")
	var h Health
	if err := json.Unmarshal(r.body, &h); err != nil {
		t.Fatal(err)
	}
	if h.NATSConnected || h.Status != "degraded" || h.Services["tenant"] != 0 || len(h.Services) != 5 {
		t.Fatalf("health without NATS = %+v", h)
	}
}

// TestOpenAPICoversRoutes: every Fiber route is in the document and every operation of
// the document is a Fiber route; the document is JSON whose $refs all resolve.
func TestOpenAPICoversRoutes(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/openapi.json", nil, nil)
	e.expect(r, 200, "")
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas         map[string]any `json:"schemas"`
			SecuritySchemes map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Components.SecuritySchemes) != 2 {
		t.Fatalf("openapi %q, security schemes %v", doc.OpenAPI, doc.Components.SecuritySchemes)
	}

	// Documented operations, by "METHOD /path" → operationId.
	inDoc := map[string]string{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			inDoc[strings.ToUpper(m)+" "+p], _ = op["operationId"].(string)
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s: no responses", m, p)
			}
		}
	}
	// Served routes: Fiber names every route of the table with its operation id; the
	// unnamed ones are the 405 catch-alls and middleware.
	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]string{}
	for _, rt := range e.app.GetRoutes(true) {
		if rt.Name != "" {
			served[rt.Method+" "+param.ReplaceAllString(rt.Path, "{$1}")] = rt.Name
		}
	}
	if len(served) < 15 {
		t.Fatalf("only %d named Fiber routes", len(served))
	}
	for k, op := range served {
		if inDoc[k] != op {
			t.Errorf("served %s (%s) is documented as %q", k, op, inDoc[k])
		}
	}
	for k, op := range inDoc {
		if served[k] != op {
			t.Errorf("documented %s (%s) is served as %q", k, op, served[k])
		}
	}

	// Every $ref resolves.
	var raw any
	_ = json.Unmarshal(r.body, &raw)
	walkRefs(raw, func(ref string) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if name == ref || doc.Components.Schemas[name] == nil {
			t.Errorf("unresolved $ref %q", ref)
		}
	})

	// Request bodies accept unknown fields; patch fields are documented as their values.
	update, _ := doc.Components.Schemas["TenantUpdateBody"].(map[string]any)
	if update == nil {
		t.Fatalf("no TenantUpdateBody schema; have %v", keys(doc.Components.Schemas))
	}
	if ap, ok := update["additionalProperties"]; ok && ap != true {
		t.Errorf("TenantUpdateBody additionalProperties = %v", ap)
	}
	props := update["properties"].(map[string]any)
	if typ := fmt.Sprint(props["description"].(map[string]any)["type"]); typ != "[string null]" {
		t.Errorf("description type = %s, want nullable string", typ)
	}
	if typ := fmt.Sprint(props["name"].(map[string]any)["type"]); typ != "string" {
		t.Errorf("name type = %s, want string", typ)
	}
	// Error body and tenant-header parameter are documented.
	if doc.Components.Schemas["ErrorBody"] == nil {
		t.Error("no ErrorBody schema")
	}
	me := doc.Paths["/api/v1/me"]["get"]
	if !strings.Contains(fmt.Sprint(me["parameters"]), "x-tenant-id") {
		t.Errorf("GET /api/v1/me lacks the x-tenant-id parameter: %v", me["parameters"])
	}
	del := doc.Paths["/api/v1/tenants/{id}"]["delete"]["responses"].(map[string]any)
	for _, s := range []string{"204", "401", "403", "404"} {
		if del[s] == nil {
			t.Errorf("DELETE /tenants/{id} does not document %s", s)
		}
	}
}

func walkRefs(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "$ref" {
				f(s)
			}
			walkRefs(val, f)
		}
	case []any:
		for _, val := range x {
			walkRefs(val, f)
		}
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestDocsPage(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/docs", nil, nil)
	e.expect(r, 200, "")
	if got := r.header.Get("Content-Security-Policy"); got != "default-src 'self'; frame-ancestors 'none'" {
		t.Fatalf("CSP = %q", got)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type = %q", ct)
	}
	html := string(r.body)
	if strings.Contains(html, "<script>") || regexp.MustCompile(`<script[^>]*>\s*[^<\s]`).MatchString(html) {
		t.Fatal("the docs page has an inline script")
	}
	urls := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(urls) < 3 {
		t.Fatalf("found only %d asset URLs in %s", len(urls), html)
	}
	for _, u := range urls {
		ref := u[1]
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("non-local asset URL %q", ref)
			continue
		}
		a := e.do("GET", ref, nil, nil)
		if a.status != http.StatusOK || len(a.body) == 0 {
			t.Errorf("GET %s = %d (%d bytes)", ref, a.status, len(a.body))
		}
		if a.header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s without CSP", ref)
		}
	}
	init := e.do("GET", "/docs/init.js", nil, nil)
	if !strings.Contains(string(init.body), "/openapi.json") {
		t.Fatal("init.js does not load /openapi.json")
	}
	e.expect(e.do("GET", "/docs/assets/nope.js", nil, nil), 404, "not_found")
	e.expect(e.do("GET", "/docs/assets/..%2fapp.go", nil, nil), 404, "not_found")
}

// TestOpenAPILoginFlow: the auth tag documents the login with its worked example, and
// the new routes carry their policies, parameters and error codes.
func TestOpenAPILoginFlow(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/openapi.json", nil, nil)
	e.expect(r, 200, "")
	var doc struct {
		Tags []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"tags"`
		Paths map[string]map[string]struct {
			Tags       []string                  `json:"tags"`
			Parameters []map[string]any          `json:"parameters"`
			Responses  map[string]map[string]any `json:"responses"`
			Security   []map[string]any          `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	desc := map[string]string{}
	for _, tag := range doc.Tags {
		desc[tag.Name] = tag.Description
	}
	for _, name := range []string{"agents", "ssh-keys", "auth"} {
		if desc[name] == "" {
			t.Errorf("tag %q is missing or undescribed", name)
		}
	}
	for _, want := range []string{
		"POST /api/v1/auth/challenge", `"agent_id": "01JC5Z8K3M7Q9R2T4V6W8X0Y1Z"`, // the challenge request
		"64 ASCII characters", "no newline", // what exactly to sign
		"signer.Sign(rand.Reader, data)", "SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA256)", // Go
		"ssh-keygen -Y sign",                                            // what it is not
		"POST /api/v1/auth/verify", `"response": "AAAAC3NzaC1lZDI1NTE5`, // the verify body
		`{"valid": true, "token": "eyJ`, // the reply
		"Authorization: Bearer eyJ",     // then calling the API
	} {
		if !strings.Contains(desc["auth"], want) {
			t.Errorf("the auth tag's description lacks %q", want)
		}
	}

	verify := doc.Paths["/api/v1/auth/verify"]["post"]
	if len(verify.Security) != 0 || verify.Tags[0] != "auth" {
		t.Errorf("verify: security %v, tags %v", verify.Security, verify.Tags)
	}
	for _, s := range []string{"200", "400", "401", "422", "429"} {
		if verify.Responses[s] == nil {
			t.Errorf("verify does not document %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(verify.Responses["429"]["headers"]), "Retry-After") {
		t.Errorf("429 does not document Retry-After: %v", verify.Responses["429"])
	}
	list := doc.Paths["/api/v1/agents"]["get"]
	var params []string
	for _, p := range list.Parameters {
		params = append(params, fmt.Sprint(p["name"]))
	}
	if got := strings.Join(params, ","); got != "x-tenant-id,limit,next_token,status,type,capability" {
		t.Errorf("list-agents parameters = %s", got)
	}
	get := doc.Paths["/api/v1/agents/{id}"]["get"]
	if !strings.Contains(fmt.Sprint(get.Parameters), "Agent id (ULID") {
		t.Errorf("get-agent's id is not documented as an agent id: %v", get.Parameters)
	}
	if create := doc.Paths["/api/v1/ssh-keys"]["post"]; create.Responses["402"] == nil || create.Responses["409"] == nil ||
		!strings.Contains(fmt.Sprint(create.Responses["422"]), "private_key_rejected") {
		t.Errorf("create-ssh-key responses = %v", create.Responses)
	}
}
