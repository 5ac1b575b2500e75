package realtime_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// refused dials and asserts the upgrade was refused with status and the JSON error
// body of SPEC §4.1 carrying code.
func (e *env) refused(status int, code string, opts ...dialOpt) *http.Response {
	e.t.Helper()
	c, res, err := e.dial(opts...)
	if err == nil {
		_ = c.c.CloseNow()
		e.t.Fatalf("dial succeeded, want %d %s", status, code)
	}
	if res == nil {
		e.t.Fatalf("dial failed without a response (want %d): %v", status, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		e.t.Fatalf("status %d, want %d: %s", res.StatusCode, status, b)
	}
	var body struct {
		Detail    string `json:"detail"`
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		e.t.Fatalf("error body is not JSON: %q", b)
	}
	if body.Code != code || body.Detail == "" || body.RequestID == "" || body.RequestID != res.Header.Get("X-Request-Id") {
		e.t.Fatalf("error body %s, want code %s with detail and request_id", b, code)
	}
	if status == http.StatusUnauthorized && res.Header.Get("WWW-Authenticate") == "" {
		e.t.Fatal("401 without WWW-Authenticate")
	}
	if status == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
		e.t.Fatal("429 without Retry-After")
	}
	return res
}

func TestUpgradeRefusedBeforeUpgrade(t *testing.T) {
	e := newEnv(t, realtime.Config{AllowedOrigins: []string{"https://app.example.com"}})
	tenant, _ := e.tenant("alice", plans.Pro)
	other, _ := e.tenant("bob", plans.Pro)
	alice := e.userToken("alice", time.Hour)
	agent := newID()
	agentTok := e.agentToken(tenant, agent, newID(), time.Hour)

	t.Run("no credentials", func(t *testing.T) { e.refused(http.StatusUnauthorized, natsrpc.CodeUnauthorized) })
	t.Run("garbage token", func(t *testing.T) {
		e.refused(http.StatusUnauthorized, natsrpc.CodeUnauthorized, bearer("not-a-jwt"))
	})
	t.Run("garbage query token", func(t *testing.T) {
		e.refused(http.StatusUnauthorized, natsrpc.CodeUnauthorized, withQuery("token=not-a-jwt"))
	})
	t.Run("wrong API key", func(t *testing.T) {
		e.refused(http.StatusUnauthorized, natsrpc.CodeUnauthorized, withHeader("X-Api-Key", "art_nope"))
	})
	t.Run("not a member of the named tenant", func(t *testing.T) {
		e.refused(http.StatusForbidden, natsrpc.CodeForbidden, bearer(alice), withHeader("X-Tenant-Id", other))
	})
	t.Run("not a member of the tenant in the query", func(t *testing.T) {
		e.refused(http.StatusForbidden, natsrpc.CodeForbidden, withQuery("token="+alice+"&tenant_id="+other))
	})
	t.Run("malformed tenant id", func(t *testing.T) {
		e.refused(http.StatusBadRequest, natsrpc.CodeInvalidTenantID, bearer(alice), withQuery("tenant_id=NOT-A-UUID"))
	})
	t.Run("agent token naming another tenant", func(t *testing.T) {
		e.refused(http.StatusForbidden, natsrpc.CodeForbidden, bearer(agentTok), withHeader("X-Tenant-Id", other))
	})
	t.Run("origin not allowed", func(t *testing.T) {
		e.refused(http.StatusForbidden, natsrpc.CodeForbidden, bearer(alice), withHeader("X-Tenant-Id", tenant),
			withHeader("Origin", "https://evil.example.com"))
	})
	t.Run("revoked agent key", func(t *testing.T) {
		key := newID()
		tok := e.agentToken(tenant, agent, key, time.Hour)
		e.fake.revokeKey(tenant, agent, key)
		e.refused(http.StatusUnauthorized, natsrpc.CodeTokenRevoked, bearer(tok))
	})
	t.Run("suspended tenant", func(t *testing.T) {
		susp, _ := e.tenant("carol", plans.Pro)
		e.fake.mu.Lock()
		e.fake.tenants[susp].status = tenantv1.StatusSuspended
		e.fake.mu.Unlock()
		e.refused(http.StatusForbidden, natsrpc.CodeTenantSuspended, bearer(e.userToken("carol", time.Hour)))
	})
	t.Run("plain GET", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.http+realtimev1.Path, nil)
		req.Header.Set("Authorization", "Bearer "+alice)
		req.Header.Set("X-Tenant-Id", tenant)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(b), `"code":"upgrade_required"`) {
			t.Fatalf("plain GET: %d %s", res.StatusCode, b)
		}
	})

	t.Run("accepted", func(t *testing.T) {
		// The allowed origin, a query token and tenant (what a browser does).
		c, f := e.connect(withQuery("token="+alice+"&tenant_id="+tenant), withHeader("Origin", "https://app.example.com"))
		if f.SessionID == "" || f.TenantID != tenant || f.AgentID != "" {
			t.Fatalf("connected %+v", f)
		}
		c.send(realtimev1.Ping("p1"))
		if p := c.expect(realtimev1.TypePong); p.ID != "p1" {
			t.Fatalf("pong %+v", p)
		}
		// An agent: no Origin (not a browser), its own tenant implied.
		_, f = e.connect(bearer(agentTok))
		if f.TenantID != tenant || f.AgentID != agent {
			t.Fatalf("agent connected %+v", f)
		}
		// The API key.
		_, key := e.tenant("dave", plans.Pro)
		if _, f = e.connect(withHeader("X-Api-Key", key)); f.TenantID == "" {
			t.Fatalf("api key connected %+v", f)
		}
	})
}

// TestConnectionCap: the plan's max_concurrent_connections per tenant (free: 5), 429
// connection_limit_exceeded before the upgrade; a closed session frees its slot; other
// tenants are not affected.
func TestConnectionCap(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Free)
	other, _ := e.tenant("bob", plans.Free)
	limit := int(*mustPlan(t, plans.Free).Limits.MaxConcurrentConnection)
	alice := e.userToken("alice", time.Hour)
	var open []*client
	for range limit {
		c, _ := e.connect(bearer(alice), withHeader("X-Tenant-Id", tenant))
		open = append(open, c)
	}
	e.refused(http.StatusTooManyRequests, natsrpc.CodeConnectionLimit, bearer(alice), withHeader("X-Tenant-Id", tenant))
	// Another tenant has its own cap.
	e.connect(bearer(e.userToken("bob", time.Hour)), withHeader("X-Tenant-Id", other))

	if err := open[0].c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a slot frees up", func() bool {
		c, res, err := e.dial(bearer(alice), withHeader("X-Tenant-Id", tenant))
		if err != nil {
			if res == nil || res.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("dial: %v", err)
			}
			return false
		}
		_ = c.c.CloseNow()
		return true
	})
}

func mustPlan(t *testing.T, id string) plans.Plan {
	t.Helper()
	p, ok := plans.Get(id)
	if !ok {
		t.Fatal("no plan", id)
	}
	return p
}

// TestBadFrames: each bad frame gets an error frame and the session stays usable; a frame
// over the limit closes with 1009.
func TestBadFrames(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))

	cases := []struct {
		name string
		typ  websocket.MessageType
		raw  string
		code string
		id   string
	}{
		{"not JSON", websocket.MessageText, `{nope`, natsrpc.CodeInvalidJSON, ""},
		{"a JSON array", websocket.MessageText, `[1,2]`, natsrpc.CodeInvalidJSON, ""},
		{"wrong field type", websocket.MessageText, `{"type":"subscribe","channel_id":12}`, natsrpc.CodeInvalidJSON, ""},
		{"binary frame", websocket.MessageBinary, `{"type":"ping"}`, natsrpc.CodeValidationFailed, ""},
		{"unknown type", websocket.MessageText, `{"type":"dance","id":"x1"}`, natsrpc.CodeValidationFailed, "x1"},
		{"no type", websocket.MessageText, `{"id":"x2"}`, natsrpc.CodeValidationFailed, "x2"},
		{"id too long", websocket.MessageText, `{"type":"ping","id":"` + strings.Repeat("i", 200) + `"}`, natsrpc.CodeValidationFailed, ""},
		{"malformed channel id", websocket.MessageText, `{"type":"subscribe","id":"x3","channel_id":"../x"}`, natsrpc.CodeNotFound, "x3"},
		{"publish without data", websocket.MessageText, `{"type":"publish","id":"x4","channel_id":"` + e.channel(tenant, "public") + `"}`, natsrpc.CodeValidationFailed, "x4"},
		{"publish a non-object", websocket.MessageText, `{"type":"publish","id":"x5","channel_id":"` + e.channel(tenant, "public") + `","data":[1]}`, natsrpc.CodeValidationFailed, "x5"},
		{"bad heartbeat status", websocket.MessageText, `{"type":"heartbeat","id":"x6","status":"sleepy"}`, natsrpc.CodeValidationFailed, "x6"},
	}
	for _, tc := range cases {
		c.sendRaw(tc.typ, []byte(tc.raw))
		f := c.expectError(tc.code)
		if f.ID != tc.id || f.Detail == "" {
			t.Fatalf("%s: error %+v, want id %q and a detail", tc.name, f, tc.id)
		}
	}
	// Still usable.
	c.send(realtimev1.Ping("after"))
	if p := c.expect(realtimev1.TypePong); p.ID != "after" {
		t.Fatalf("pong %+v", p)
	}

	// A frame over 128 KiB: close 1009.
	big := `{"type":"publish","channel_id":"x","data":{"b":"` + strings.Repeat("a", realtimev1.MaxFrameBytes) + `"}}`
	c.sendRaw(websocket.MessageText, []byte(big))
	if code := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}
