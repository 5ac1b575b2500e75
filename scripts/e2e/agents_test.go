package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

var (
	ulidRe      = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
	challengeRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// An id that is a well-formed ULID of nothing.
const absentULID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

// The resources of SPEC §4.3 and §4.4 as the wire names them, decoded independently of
// contracts/ so a renamed JSON field fails here.
type capabilityJSON struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Version     string         `json:"version"`
	Parameters  map[string]any `json:"parameters"`
}

type agentJSON struct {
	ID           string           `json:"id"`
	AgentID      string           `json:"agent_id"`
	TenantID     string           `json:"tenant_id"`
	Name         string           `json:"name"`
	Type         string           `json:"type"`
	Description  string           `json:"description"`
	Status       string           `json:"status"`
	Capabilities []capabilityJSON `json:"capabilities"`
	Metadata     map[string]any   `json:"metadata"`
	LastSeen     *string          `json:"last_seen"`
	CreatedAt    string           `json:"created_at"`
	UpdatedAt    string           `json:"updated_at"`
}

type agentEnvelope struct {
	Agent   agentJSON `json:"agent"`
	Key     *keyJSON  `json:"key"`
	Success bool      `json:"success"`
}

type agentList struct {
	Agents    []agentJSON `json:"agents"`
	NextToken *string     `json:"next_token"`
}

type keyJSON struct {
	ID               string         `json:"id"`
	KeyID            string         `json:"key_id"`
	TenantID         string         `json:"tenant_id"`
	Name             string         `json:"name"`
	PublicKey        string         `json:"public_key"`
	KeyType          string         `json:"key_type"`
	AgentID          *string        `json:"agent_id"`
	Fingerprint      string         `json:"fingerprint"`
	Status           string         `json:"status"`
	Revoked          bool           `json:"revoked"`
	RevokedAt        *string        `json:"revoked_at"`
	RevocationReason *string        `json:"revocation_reason"`
	LastUsed         *string        `json:"last_used"`
	Metadata         map[string]any `json:"metadata"`
	CreatedAt        string         `json:"created_at"`
	UpdatedAt        string         `json:"updated_at"`
}

type keyEnvelope struct {
	Key     keyJSON `json:"key"`
	Success bool    `json:"success"`
}

type keyList struct {
	Keys      []keyJSON `json:"keys"`
	NextToken *string   `json:"next_token"`
}

type summaryJSON struct {
	Online  int `json:"online"`
	Offline int `json:"offline"`
	Busy    int `json:"busy"`
	Idle    int `json:"idle"`
	Error   int `json:"error"`
	Total   int `json:"total"`
}

type challengeJSON struct {
	Challenge string  `json:"challenge"`
	ExpiresAt string  `json:"expires_at"`
	TenantID  string  `json:"tenant_id"`
	KeyID     *string `json:"key_id"`
	AgentID   *string `json:"agent_id"`
}

type verifyJSON struct {
	Valid     bool   `json:"valid"`
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	TenantID  string `json:"tenant_id"`
	AgentID   string `json:"agent_id"`
	KeyID     string `json:"key_id"`
}

// agentStory is what the agents scenario leaves for the restart check and the log checks.
type agentStory struct {
	owner    string // user token of tenant A's owner
	tenantID string
	agentID  string // an agent with an active ed25519 key
	keyID    string
	key      sshKey
	agents   int // how many agents tenant A has at the end
	// secrets must never appear in the stack's output: a pasted private key's lines and
	// login responses.
	secrets []string
	done    bool
}

func agentPath(id string, rest ...string) string {
	return "/api/v1/agents/" + id + strings.Join(rest, "")
}
func keyPath(id string, rest ...string) string {
	return "/api/v1/ssh-keys/" + id + strings.Join(rest, "")
}

func itoa(n int) string { return strconv.Itoa(n) }

// as is the options of a call by tok in tenant (plus extra).
func as(tok, tenant string, extra ...any) []any {
	return append([]any{bearer(tok), tenantHeader(tenant)}, extra...)
}

// listAgents pages through GET /api/v1/agents?query with limit lim and checks every page:
// never empty while next_token is set, never over the limit, ids ascending, none twice.
func listAgents(t *testing.T, c *client, query url.Values, lim int, opts ...any) [][]agentJSON {
	t.Helper()
	var pages [][]agentJSON
	next, last := "", ""
	seen := map[string]bool{}
	for range 50 {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", itoa(lim))
		if next != "" {
			q.Set("next_token", next)
		}
		var l agentList
		r := c.expect(t, http.StatusOK, &l, get, "/api/v1/agents?"+q.Encode(), opts...)
		if _, ok := r.object(t)["next_token"]; !ok {
			t.Fatalf("no next_token field: %s", r)
		}
		if l.NextToken != nil && len(l.Agents) == 0 {
			t.Fatalf("empty page with a next_token (page %d of %s)", len(pages)+1, query.Encode())
		}
		if len(l.Agents) > lim {
			t.Fatalf("page of %d with limit %d", len(l.Agents), lim)
		}
		for _, a := range l.Agents {
			if a.ID <= last {
				t.Fatalf("ids not ascending: %s after %s (%s)", a.ID, last, query.Encode())
			}
			if seen[a.ID] {
				t.Fatalf("%s listed twice", a.ID)
			}
			seen[a.ID], last = true, a.ID
		}
		pages = append(pages, l.Agents)
		if l.NextToken == nil {
			return pages
		}
		next = *l.NextToken
	}
	t.Fatal("more than 50 pages")
	return nil
}

func agentIDs(pages [][]agentJSON) []string {
	var out []string
	for _, p := range pages {
		for _, a := range p {
			out = append(out, a.ID)
		}
	}
	return out
}

func agentPageSizes(pages [][]agentJSON) []int {
	var n []int
	for _, p := range pages {
		n = append(n, len(p))
	}
	return n
}

// pick returns the ids of agents[i] for which keep(i) holds, sorted.
func pick(agents []agentJSON, keep func(i int) bool) []string {
	var out []string
	for i, a := range agents {
		if keep(i) {
			out = append(out, a.ID)
		}
	}
	slices.Sort(out)
	return out
}

// checkAgent checks the parts of an agent every reply must get right.
func checkAgent(t *testing.T, a agentJSON, tenantID string) {
	t.Helper()
	if !ulidRe.MatchString(a.ID) || a.AgentID != a.ID || a.TenantID != tenantID {
		t.Fatalf("agent ids: %+v", a)
	}
	if !slices.Contains(agentv1.Statuses, a.Status) || !slices.Contains(agentv1.Types, a.Type) {
		t.Fatalf("agent status/type: %+v", a)
	}
	if _, err := time.Parse(time.RFC3339, a.CreatedAt); err != nil || !strings.HasSuffix(a.CreatedAt, "Z") {
		t.Fatalf("created_at %q: %v", a.CreatedAt, err)
	}
	if _, err := time.Parse(time.RFC3339, a.UpdatedAt); err != nil || !strings.HasSuffix(a.UpdatedAt, "Z") {
		t.Fatalf("updated_at %q: %v", a.UpdatedAt, err)
	}
}

// checkKey checks a key reply against the key pair it was made from.
func checkKey(t *testing.T, kj keyJSON, k sshKey, tenantID, agentID, keyType string) {
	t.Helper()
	if !ulidRe.MatchString(kj.ID) || kj.KeyID != kj.ID || kj.TenantID != tenantID {
		t.Fatalf("key ids: %+v", kj)
	}
	if kj.KeyType != keyType || kj.Status != "active" || kj.Revoked || kj.RevokedAt != nil || kj.RevocationReason != nil {
		t.Fatalf("key state: %+v", kj)
	}
	if (agentID == "" && kj.AgentID != nil) || (agentID != "" && (kj.AgentID == nil || *kj.AgentID != agentID)) {
		t.Fatalf("key agent_id %v, want %q", kj.AgentID, agentID)
	}
	if kj.PublicKey != k.stored {
		t.Fatalf("stored public_key %q, want %q (comment dropped)", kj.PublicKey, k.stored)
	}
	checkFingerprint(t, k, kj.Fingerprint)
}

// checkVerified checks a successful verify reply and returns it.
func checkVerified(t *testing.T, r reply, tenantID, agentID, keyID string) verifyJSON {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("login: want 200: %s", r)
	}
	var v verifyJSON
	if err := r.decode(&v); err != nil {
		t.Fatal(err)
	}
	if !v.Valid || strings.Count(v.Token, ".") != 2 || v.TenantID != tenantID || v.AgentID != agentID || v.KeyID != keyID {
		t.Fatalf("verify reply %+v, want tenant %s agent %s key %s", v, tenantID, agentID, keyID)
	}
	exp, err := time.Parse(time.RFC3339, v.ExpiresAt)
	if err != nil {
		t.Fatalf("expires_at %q: %v", v.ExpiresAt, err)
	}
	if d := time.Until(exp); d < 50*time.Minute || d > 61*time.Minute {
		t.Fatalf("agent token valid for %s, want 1 h", d)
	}
	return v
}

// invalidSignature requires the one 401 of a failed login and returns its detail.
func invalidSignature(t *testing.T, r reply) string {
	t.Helper()
	return checkError(t, r, http.StatusUnauthorized, "invalid_signature").Detail
}

// sameAsAbsent requires a call on a resource of another tenant to be refused exactly as
// the same call on an id that exists nowhere (never revealing existence), and not 2xx.
func sameAsAbsent(t *testing.T, c *client, method, path, absentPath string, opts ...any) {
	t.Helper()
	r := c.do(t, method, path, opts...)
	a := c.do(t, method, absentPath, opts...)
	if r.Status < 400 || r.Status != a.Status {
		t.Fatalf("another tenant's id answers differently from an absent one:\n  %s\n  %s", r, a)
	}
	var e1, e2 errorBody
	if r.decode(&e1) != nil || a.decode(&e2) != nil || e1.Code != e2.Code || e1.Detail != e2.Detail {
		t.Fatalf("another tenant's id answers differently from an absent one:\n  %s\n  %s", r, a)
	}
}

// natsCall calls a service directly over the stack's NATS (internal lookups that prove a
// cascade ran, seen from behind the gateway).
func natsCall(t *testing.T, nc *nats.Conn, subject string, req any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return natsrpc.NewClient(nc).Call(ctx, subject, req, nil)
}

func isNotFound(err error) bool {
	e, ok := natsrpc.AsError(err)
	return ok && e.Status == http.StatusNotFound
}

// runAgents is the user story of issue 3 over HTTP: agents, SSH keys and agent login,
// with the SPEC §13 rules they touch. It fills st as it goes.
//
// Logins are rate limited per client address (30 challenges and 30 verifies a minute) and
// per key or agent and address (10 verifies a minute), and every call here comes from
// 127.0.0.1: a leg, restart included, stays at about 21 of each and at most 7 verifies
// per key. Keep it so when adding login attempts.
func runAgents(t *testing.T, env stackEnv, c *client, st *agentStory) {
	owner := env.token(t, "-sub", "e2e-frank")
	viewer := env.token(t, "-sub", "e2e-gina")
	hank := env.token(t, "-sub", "e2e-hank") // owner of tenant B
	ops := env.token(t, "-sub", "e2e-ops", "-role", "platform_admin")
	st.owner = owner
	var details []string // every invalid_signature detail: they must all be the same

	var tenantA, keyA string
	step(t, "tenant on the enterprise plan", func(t *testing.T) {
		var cr createReply
		c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(owner),
			jsonBody(map[string]any{"name": "Agents Inc", "admin_email": "frank@example.com"}))
		tenantA, keyA = cr.TenantID, cr.APIKey
		st.tenantID = tenantA
		c.expect(t, http.StatusCreated, nil, post, tenantPath(tenantA, "/members"), bearer(owner),
			jsonBody(map[string]any{"user_id": "e2e-gina", "role": "viewer"}))
		var te tenantEnvelope
		c.expect(t, http.StatusOK, &te, put, tenantPath(tenantA, "/plan"), bearer(ops),
			jsonBody(map[string]any{"subscription_tier": "enterprise"}))
		if te.Tenant.SubscriptionTier != "enterprise" || te.Tenant.Limits["max_agents"] != nil {
			t.Fatalf("enterprise plan: %+v", te.Tenant)
		}
	})
	u := func(extra ...any) []any { return as(owner, tenantA, extra...) }

	const n = 25
	var agents []agentJSON
	step(t, "register 25 agents", func(t *testing.T) {
		for i := range n {
			typ := agentv1.TypeWorker
			if i%5 == 0 {
				typ = agentv1.TypeSupervisor
			}
			caps := []map[string]any{{"name": "summarize"}}
			if i%2 == 0 {
				caps = append(caps, map[string]any{"name": "translate", "version": "2.1", "description": "de to en",
					"parameters": map[string]any{"pairs": []any{"de-en"}}})
			}
			b := jsonBody(map[string]any{"name": fmt.Sprintf("worker-%02d", i), "type": typ,
				"description": "e2e agent", "capabilities": caps, "metadata": map[string]any{"index": i, "team": "e2e"}})
			var ae agentEnvelope
			if i < 5 {
				c.expect(t, http.StatusCreated, &ae, post, "/api/v1/agents", u(b)...)
			} else {
				// The tier reaches the gateway's caches within 5 s of the plan change; until
				// then the basic plan's 5 agents apply.
				eventually(t, 6*time.Second, "the enterprise plan reaches the gateway", func() (bool, string) {
					r := c.do(t, post, "/api/v1/agents", u(b)...)
					if r.Status == http.StatusPaymentRequired {
						return false, r.String()
					}
					if r.Status != http.StatusCreated {
						t.Fatalf("want 201: %s", r)
					}
					if err := r.decode(&ae); err != nil {
						t.Fatal(err)
					}
					return true, ""
				})
			}
			a := ae.Agent
			checkAgent(t, a, tenantA)
			if !ae.Success || ae.Key != nil || a.Name != fmt.Sprintf("worker-%02d", i) || a.Type != typ || a.Description != "e2e agent" ||
				a.Status != agentv1.StatusOffline || a.LastSeen != nil || a.Metadata["team"] != "e2e" || len(a.Capabilities) != len(caps) {
				t.Fatalf("created agent %d: %+v", i, ae)
			}
			if i == 0 {
				tr := a.Capabilities[1]
				if a.Capabilities[0].Name != "summarize" || tr.Name != "translate" || tr.Version != "2.1" || tr.Description != "de to en" || tr.Parameters["pairs"] == nil {
					t.Fatalf("capabilities: %+v", a.Capabilities)
				}
			}
			agents = append(agents, a)
		}
		// last_seen is present and null until presence arrives.
		r := c.expect(t, http.StatusOK, nil, get, agentPath(agents[0].ID), u()...)
		if v, ok := r.object(t)["agent"].(map[string]any)["last_seen"]; !ok || v != nil {
			t.Fatalf("last_seen must be present and null: %s", r)
		}
	})

	step(t, "set status", func(t *testing.T) {
		for _, i := range []int{1, 3} {
			var ae agentEnvelope
			c.expect(t, http.StatusOK, &ae, put, agentPath(agents[i].ID, "/status"), u(jsonBody(map[string]any{"status": "busy"}))...)
			if ae.Agent.Status != agentv1.StatusBusy || ae.Agent.ID != agents[i].ID || !ae.Success {
				t.Fatalf("set status: %+v", ae)
			}
			agents[i] = ae.Agent
		}
		var ae agentEnvelope
		c.expect(t, http.StatusOK, &ae, put, agentPath(strings.ToLower(agents[4].ID), "/status"), u(jsonBody(map[string]any{"status": "error"}))...)
		if ae.Agent.Status != agentv1.StatusError || ae.Agent.ID != agents[4].ID {
			t.Fatalf("set status (lower-case id): %+v", ae)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", put, agentPath(agents[4].ID, "/status"), u(jsonBody(map[string]any{"status": "sleeping"}))...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", put, agentPath(agents[4].ID, "/status"), u(jsonBody(map[string]any{}))...)
		c.expectError(t, http.StatusNotFound, "not_found", put, agentPath(absentULID, "/status"), u(jsonBody(map[string]any{"status": "busy"}))...)
	})

	step(t, "list, filter and paginate", func(t *testing.T) {
		all := pick(agents, func(int) bool { return true })
		pages := listAgents(t, c, nil, 10, u()...)
		if !slices.Equal(agentPageSizes(pages), []int{10, 10, 5}) {
			t.Fatalf("25 agents, limit 10: pages of %v", agentPageSizes(pages))
		}
		if got := agentIDs(pages); !slices.Equal(got, all) {
			t.Fatalf("listed %v, want each of %v once", got, all)
		}
		cases := []struct {
			query url.Values
			lim   int
			want  []string
			sizes []int
		}{
			{url.Values{"capability": {"translate"}}, 5, pick(agents, func(i int) bool { return i%2 == 0 }), []int{5, 5, 3}},
			{url.Values{"capability": {"summarize"}}, 100, all, []int{25}},
			{url.Values{"type": {"supervisor"}}, 2, pick(agents, func(i int) bool { return i%5 == 0 }), []int{2, 2, 1}},
			{url.Values{"type": {"supervisor"}, "capability": {"translate"}}, 2, pick(agents, func(i int) bool { return i%10 == 0 }), []int{2, 1}},
			{url.Values{"status": {"busy"}}, 50, pick(agents, func(i int) bool { return i == 1 || i == 3 }), []int{2}},
			{url.Values{"status": {"busy"}, "type": {"worker"}, "capability": {"summarize"}}, 1, pick(agents, func(i int) bool { return i == 1 || i == 3 }), []int{1, 1}},
			{url.Values{"status": {"offline"}, "type": {"supervisor"}}, 10, pick(agents, func(i int) bool { return i%5 == 0 }), []int{5}},
			{url.Values{"status": {"busy"}, "type": {"supervisor"}}, 10, nil, []int{0}},
			{url.Values{"capability": {"Translate"}}, 10, nil, []int{0}}, // exact match
			{url.Values{"status": {"online"}}, 10, nil, []int{0}},
		}
		for _, tc := range cases {
			pages := listAgents(t, c, tc.query, tc.lim, u()...)
			if got := agentIDs(pages); !slices.Equal(got, tc.want) || !slices.Equal(agentPageSizes(pages), tc.sizes) {
				t.Fatalf("%s limit %d: pages of %v with %v, want %v of %v", tc.query.Encode(), tc.lim, agentPageSizes(pages), got, tc.sizes, tc.want)
			}
		}
		// A next_token is bound to its filters.
		var l agentList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/agents?capability=translate&limit=5", u()...)
		if l.NextToken == nil {
			t.Fatal("no next_token on the first page")
		}
		c.expectError(t, http.StatusBadRequest, "invalid_next_token", get,
			"/api/v1/agents?type=supervisor&limit=5&next_token="+url.QueryEscape(*l.NextToken), u()...)
		c.expectError(t, http.StatusBadRequest, "invalid_next_token", get, "/api/v1/agents?next_token=garbage", u()...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/agents?status=sleeping", u()...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/agents?type=robot", u()...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/agents?limit=101", u()...)

		// Viewers and the API key read; viewers do not write.
		c.expect(t, http.StatusOK, &l, get, "/api/v1/agents?limit=100", as(viewer, tenantA)...)
		if len(l.Agents) != n {
			t.Fatalf("viewer lists %d agents", len(l.Agents))
		}
		c.expect(t, http.StatusOK, &l, get, "/api/v1/agents?limit=100", apiKey(keyA))
		if len(l.Agents) != n {
			t.Fatalf("API key lists %d agents", len(l.Agents))
		}
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/agents", as(viewer, tenantA, jsonBody(map[string]any{"name": "nope"}))...)
		c.expectError(t, http.StatusForbidden, "forbidden", put, agentPath(agents[0].ID), as(viewer, tenantA, jsonBody(map[string]any{"name": "nope"}))...)
	})

	step(t, "status summary", func(t *testing.T) {
		var s summaryJSON
		c.expect(t, http.StatusOK, &s, get, "/api/v1/agents/status/summary", u()...)
		if s != (summaryJSON{Offline: 22, Busy: 2, Error: 1, Total: 25}) {
			t.Fatalf("summary %+v", s)
		}
		c.expect(t, http.StatusOK, &s, get, "/api/v1/agents/status/summary", as(viewer, tenantA)...)
	})

	step(t, "get and update", func(t *testing.T) {
		a := agents[7]
		var ae agentEnvelope
		c.expect(t, http.StatusOK, &ae, get, agentPath(strings.ToLower(a.ID)), u()...)
		if ae.Agent.ID != a.ID || ae.Agent.Name != a.Name || !ae.Success {
			t.Fatalf("get (lower-case id): %+v", ae)
		}
		c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(absentULID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, agentPath("not-a-ulid"), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", del, agentPath("not-a-ulid"), u()...)

		c.expect(t, http.StatusOK, &ae, put, agentPath(a.ID), u(jsonBody(map[string]any{
			"description": "updated", "metadata": map[string]any{"env": "prod"},
			"capabilities": []any{map[string]any{"name": "route"}},
			"status":       "online", "id": absentULID, "tenant_id": "00000000-0000-4000-8000-000000000000", // read-only: ignored
		}))...)
		got := ae.Agent
		if got.Name != a.Name || got.Type != a.Type || got.Description != "updated" || got.Status != a.Status || got.ID != a.ID ||
			got.TenantID != tenantA || len(got.Metadata) != 1 || got.Metadata["env"] != "prod" ||
			len(got.Capabilities) != 1 || got.Capabilities[0].Name != "route" || got.CreatedAt != a.CreatedAt {
			t.Fatalf("partial update: %+v (was %+v)", got, a)
		}
		c.expect(t, http.StatusOK, &ae, put, agentPath(a.ID), u(jsonBody(map[string]any{"description": nil, "name": "renamed", "type": "specialist"}))...)
		if ae.Agent.Description != "" || ae.Agent.Name != "renamed" || ae.Agent.Type != "specialist" || ae.Agent.Metadata["env"] != "prod" {
			t.Fatalf("null clears, values replace: %+v", ae.Agent)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", put, agentPath(a.ID), u(jsonBody(map[string]any{"name": ""}))...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", put, agentPath(a.ID), u(jsonBody(map[string]any{"type": "robot"}))...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/agents", u(jsonBody(map[string]any{"name": strings.Repeat("x", 129)}))...)
		c.expectError(t, http.StatusBadRequest, "invalid_json", put, agentPath(a.ID), u(jsonBody(`{"name": `))...)
		c.expect(t, http.StatusOK, &ae, get, agentPath(a.ID), u()...)
		if ae.Agent.Name != "renamed" {
			t.Fatalf("a rejected update changed the agent: %+v", ae.Agent)
		}
		agents[7] = ae.Agent
		// Still found by its new type and capability only.
		pages := listAgents(t, c, url.Values{"capability": {"route"}, "type": {"specialist"}}, 10, u()...)
		if ids := agentIDs(pages); len(ids) != 1 || ids[0] != a.ID {
			t.Fatalf("filtered by the updated fields: %v", ids)
		}
		pages = listAgents(t, c, url.Values{"capability": {"summarize"}}, 10, u()...)
		if ids := agentIDs(pages); len(ids) != n-1 || slices.Contains(ids, a.ID) {
			t.Fatalf("an updated agent still matches its old capability: %v", ids)
		}
	})

	// Keys of the agent that logs in.
	edKey, rsaKey, ecKey, accessKey := newEd25519Key(t), newRSAKey(t, 3072), newECDSAKey(t), newEd25519Key(t)
	var bot agentJSON
	var edID, rsaID, ecID, accessID string
	step(t, "SSH keys", func(t *testing.T) {
		var ae agentEnvelope
		c.expect(t, http.StatusCreated, &ae, post, "/api/v1/agents", apiKey(keyA), jsonBody(map[string]any{"name": "login-bot"}))
		bot = ae.Agent
		for _, k := range []struct {
			key sshKey
			id  *string
		}{{edKey, &edID}, {rsaKey, &rsaID}, {ecKey, &ecID}} {
			var ke keyEnvelope
			c.expect(t, http.StatusCreated, &ke, post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
				"name": k.key.name, "public_key": k.key.authorized, "agent_id": strings.ToLower(bot.ID), "metadata": map[string]any{"host": "e2e"}}))...)
			checkKey(t, ke.Key, k.key, tenantA, bot.ID, "agent")
			if !ke.Success || ke.Key.Name != k.key.name || ke.Key.LastUsed != nil || ke.Key.Metadata["host"] != "e2e" {
				t.Fatalf("created key: %+v", ke)
			}
			*k.id = ke.Key.ID
		}
		// An access key (no agent): it never logs in.
		var ke keyEnvelope
		c.expect(t, http.StatusCreated, &ke, post, "/api/v1/ssh-keys", apiKey(keyA), jsonBody(map[string]any{"name": "ops laptop", "public_key": accessKey.authorized}))
		checkKey(t, ke.Key, accessKey, tenantA, "", "access")
		accessID = ke.Key.ID

		// The same key again, with another comment: the fingerprint is taken.
		c.expectError(t, http.StatusConflict, "conflict", post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
			"name": "again", "public_key": edKey.stored + " another-comment", "agent_id": bot.ID}))...)
		e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
			"name": "ghost", "public_key": newEd25519Key(t).authorized, "agent_id": absentULID}))...)
		if len(e.Errors) == 0 || e.Errors[0].Field != "agent_id" {
			t.Fatalf("unknown agent: %+v", e)
		}
		e = c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
			"name": "short", "public_key": newRSAKey(t, 1024).authorized}))...)
		if len(e.Errors) == 0 || e.Errors[0].Field != "public_key" {
			t.Fatalf("RSA 1024: %+v", e)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
			"name": "junk", "public_key": "ssh-ed25519 bm90IGEga2V5"}))...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/ssh-keys", u(jsonBody(map[string]any{
			"name": "typed", "public_key": newEd25519Key(t).authorized, "key_type": "agent"}))...)

		// A private key pasted as public_key: rejected, never echoed.
		pemText, secretLines := privatePEM(t)
		st.secrets = append(st.secrets, secretLines...)
		for _, path := range []string{"/api/v1/ssh-keys", "/api/v1/agents"} {
			r := c.do(t, post, path, u(jsonBody(map[string]any{"name": "oops", "public_key": pemText}))...)
			checkError(t, r, http.StatusUnprocessableEntity, "private_key_rejected")
			for _, line := range secretLines {
				if strings.Contains(string(r.Body), line) {
					t.Fatalf("the private key is echoed: %s", r)
				}
			}
		}

		var kl keyList
		c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?agent_id="+bot.ID, u()...)
		want := []string{edID, rsaID, ecID}
		slices.Sort(want)
		var got []string
		for _, k := range kl.Keys {
			got = append(got, k.ID)
		}
		if !slices.Equal(got, want) || kl.NextToken != nil {
			t.Fatalf("keys of the agent: %v, want %v", got, want)
		}
		c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?key_type=access", as(viewer, tenantA)...)
		if len(kl.Keys) != 1 || kl.Keys[0].ID != accessID {
			t.Fatalf("access keys: %+v", kl.Keys)
		}
		c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?limit=2", apiKey(keyA))
		if len(kl.Keys) != 2 || kl.NextToken == nil {
			t.Fatalf("first page of 4 keys, limit 2: %d keys, next %v", len(kl.Keys), kl.NextToken)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/ssh-keys?key_type=root", u()...)
		var ke2 keyEnvelope
		c.expect(t, http.StatusOK, &ke2, get, keyPath(strings.ToLower(rsaID)), u()...)
		checkKey(t, ke2.Key, rsaKey, tenantA, bot.ID, "agent")
		c.expectError(t, http.StatusNotFound, "not_found", get, keyPath(absentULID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, keyPath("nope"), u()...)
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/ssh-keys", as(viewer, tenantA, jsonBody(map[string]any{
			"name": "viewer's", "public_key": newEd25519Key(t).authorized}))...)
	})

	var edTok, rsaTok, ecTok string
	step(t, "agent login", func(t *testing.T) {
		// ed25519, SSH wire form.
		ch := c.challenge(t, tenantA, edID, "")
		if ch.KeyID == nil || *ch.KeyID != edID {
			t.Fatalf("challenge key_id %v, want %s", ch.KeyID, edID)
		}
		exp, err := time.Parse(time.RFC3339, ch.ExpiresAt)
		if err != nil || time.Until(exp) < 4*time.Minute || time.Until(exp) > 6*time.Minute {
			t.Fatalf("challenge expires_at %q (%v): want now + 5 min", ch.ExpiresAt, err)
		}
		resp := edKey.sign(t, ch.Challenge)
		st.secrets = append(st.secrets, resp)
		edTok = checkVerified(t, c.verify(t, tenantA, edID, "", ch.Challenge, resp), tenantA, bot.ID, edID).Token
		// Replay of the answered challenge.
		details = append(details, invalidSignature(t, c.verify(t, tenantA, edID, "", ch.Challenge, resp)))

		// RSA 3072: rsa-sha2-256 wire form, and the legacy raw PKCS#1 v1.5 form.
		r := c.loginHTTP(t, tenantA, rsaID, "", func(ch string) string {
			resp := rsaKey.sign(t, ch)
			if f := signatureFormat(t, resp); f != ssh.KeyAlgoRSASHA256 {
				t.Fatalf("agentlogin.Sign with an RSA key made a %q signature, want %s", f, ssh.KeyAlgoRSASHA256)
			}
			return resp
		})
		rsaTok = checkVerified(t, r, tenantA, bot.ID, rsaID).Token
		checkVerified(t, c.loginHTTP(t, tenantA, rsaID, "", func(ch string) string { return rsaKey.signLegacy(t, ch) }), tenantA, bot.ID, rsaID)
		// SHA-1 ssh-rsa signatures are refused.
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantA, rsaID, "", func(ch string) string { return rsaKey.signSHA1(t, ch) })))

		// ECDSA P-256 through the login client, naming the agent only: the reply names the key.
		cl := agentlogin.Client{BaseURL: env.baseURL() + "/api/v1", HTTP: c.http}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		tok, err := cl.Login(ctx, tenantA, "", strings.ToLower(bot.ID), ecKey.signer)
		if err != nil {
			t.Fatalf("agentlogin.Client.Login (ECDSA, agent_id only): %v", err)
		}
		if tok.KeyID != ecID || tok.AgentID != bot.ID || tok.TenantID != tenantA || strings.Count(tok.Token, ".") != 2 ||
			time.Until(tok.ExpiresAt) < 50*time.Minute {
			t.Fatalf("login client token %+v, want key %s agent %s", tok, ecID, bot.ID)
		}
		ecTok = tok.Token

		// The agent-login example program: an encrypted OpenSSH ed25519 key naming the agent,
		// and an RSA key in PKCS#1 PEM naming the key, in the legacy form, printing a shell line.
		out, errOut, code := agentLogin(t, env, []string{"E2E_KEY_PASS=correct horse"}, "-tenant", tenantA, "-agent-id", bot.ID,
			"-key", edKey.writePrivate(t, "correct horse", false), "-passphrase-env", "E2E_KEY_PASS")
		if code != 0 {
			t.Fatalf("agent-login (ed25519) exit %d: %s", code, errOut)
		}
		c.expect(t, http.StatusOK, nil, get, agentPath(bot.ID), bearer(strings.TrimSpace(out)))
		out, errOut, code = agentLogin(t, env, nil, "-tenant", tenantA, "-key-id", rsaID, "-key", rsaKey.writePrivate(t, "", true), "-legacy-rsa", "-export")
		exported, ok := strings.CutPrefix(strings.TrimSpace(out), "export ARTCAFE_TOKEN=")
		if code != 0 || !ok {
			t.Fatalf("agent-login -legacy-rsa -export: exit %d, stdout %q: %s", code, out, errOut)
		}
		var me meReplyAgent
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(strings.Trim(exported, `'"`)))
		if me.Kind != "agent" || me.KeyID != rsaID {
			t.Fatalf("agent-login's legacy token: /me = %+v", me)
		}
		// A login the API refuses: exit 1 with the API's code, nothing on stdout.
		out, errOut, code = agentLogin(t, env, nil, "-tenant", tenantA, "-key-id", edID, "-key", ecKey.writePrivate(t, "", false))
		if code != 1 || out != "" || !strings.Contains(errOut, "invalid_signature") {
			t.Fatalf("agent-login with the wrong key: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// Usage errors are exit 2.
		if _, _, code = agentLogin(t, env, nil, "-tenant", tenantA); code != 2 {
			t.Fatalf("agent-login without -key-id/-agent-id: exit %d, want 2", code)
		}

		// A challenge for the ed25519 key answered by the ECDSA key fails and is consumed:
		// the right answer afterwards fails too.
		ch = c.challenge(t, tenantA, edID, "")
		details = append(details, invalidSignature(t, c.verify(t, tenantA, edID, "", ch.Challenge, ecKey.sign(t, ch.Challenge))))
		details = append(details, invalidSignature(t, c.verify(t, tenantA, edID, "", ch.Challenge, edKey.sign(t, ch.Challenge))))
		// An access key never logs in, even with a right signature.
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantA, accessID, "", func(ch string) string { return accessKey.sign(t, ch) })))
		// A challenge that was never issued (named by agent: the per-key rate limit of the
		// ed25519 key, 10 verifies a minute, has other uses in this story).
		details = append(details, invalidSignature(t, c.verify(t, tenantA, "", bot.ID, strings.Repeat("ab", 32), edKey.sign(t, strings.Repeat("ab", 32)))))

		// Shapes: 400 and 422 before any login attempt.
		c.expectError(t, http.StatusBadRequest, "invalid_json", post, "/api/v1/auth/verify", jsonBody(`{"tenant_id": `))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/auth/verify",
			jsonBody(map[string]any{"tenant_id": tenantA, "key_id": edID, "challenge": strings.Repeat("ab", 32)}))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/auth/challenge",
			jsonBody(map[string]any{"tenant_id": tenantA}))
		// The tenant may come from x-tenant-id instead of the body.
		var hc challengeJSON
		c.expect(t, http.StatusOK, &hc, post, "/api/v1/auth/challenge", tenantHeader(tenantA), jsonBody(map[string]any{"agent_id": bot.ID}))
		if hc.TenantID != tenantA || hc.AgentID == nil || *hc.AgentID != bot.ID {
			t.Fatalf("challenge with x-tenant-id: %+v", hc)
		}
		// No enumeration: an unknown key in an unknown tenant still gets a challenge.
		c.challenge(t, "00000000-0000-4000-8000-000000000000", absentULID, "")

		for _, d := range details {
			if d != details[0] {
				t.Fatalf("failed logins must share one detail: %q", details)
			}
		}
		// last_used is set by a successful login.
		eventually(t, 5*time.Second, "last_used is set", func() (bool, string) {
			var ke keyEnvelope
			r := c.do(t, get, keyPath(edID), u()...)
			if r.Status != http.StatusOK || r.decode(&ke) != nil || ke.Key.LastUsed == nil {
				return false, r.String()
			}
			return true, ""
		})
		st.agentID, st.keyID, st.key = bot.ID, edID, edKey
	})

	step(t, "the agent token", func(t *testing.T) {
		var me meReplyAgent
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(edTok))
		if me.Kind != "agent" || me.AgentID != bot.ID || me.KeyID != edID || me.TenantID != tenantA || me.UserID != "" {
			t.Fatalf("/me with the agent token = %+v", me)
		}
		var ae agentEnvelope
		c.expect(t, http.StatusOK, &ae, get, agentPath(bot.ID), bearer(edTok))
		if ae.Agent.ID != bot.ID {
			t.Fatalf("own record: %+v", ae)
		}
		c.expect(t, http.StatusOK, &ae, get, agentPath(strings.ToLower(bot.ID)), bearer(ecTok))
		c.expect(t, http.StatusOK, &ae, put, agentPath(bot.ID), bearer(edTok), jsonBody(map[string]any{
			"description": "logged in", "capabilities": []any{map[string]any{"name": "login"}}, "metadata": map[string]any{"by": "self"}}))
		if ae.Agent.Description != "logged in" || ae.Agent.Name != "login-bot" || ae.Agent.Metadata["by"] != "self" {
			t.Fatalf("self update: %+v", ae.Agent)
		}
		c.expectError(t, http.StatusForbidden, "forbidden", put, agentPath(bot.ID), bearer(edTok), jsonBody(map[string]any{"name": "boss"}))
		c.expectError(t, http.StatusForbidden, "forbidden", put, agentPath(bot.ID), bearer(edTok), jsonBody(map[string]any{"type": "system"}))
		// Another agent of the same tenant does not exist for it.
		c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(agents[0].ID), bearer(edTok))
		c.expectError(t, http.StatusNotFound, "not_found", put, agentPath(agents[0].ID), bearer(edTok), jsonBody(map[string]any{"description": "x"}))
		c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(absentULID), bearer(edTok))
		// Not the tenant's admin routes.
		c.expectError(t, http.StatusForbidden, "forbidden", get, "/api/v1/agents", bearer(edTok))
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/agents", bearer(edTok), jsonBody(map[string]any{"name": "child"}))
		c.expectError(t, http.StatusForbidden, "forbidden", get, "/api/v1/ssh-keys", bearer(edTok))
		c.expectError(t, http.StatusForbidden, "forbidden", get, "/api/v1/tenants", bearer(edTok))
		// Bound to its tenant.
		c.expectError(t, http.StatusForbidden, "forbidden", get, agentPath(bot.ID), bearer(edTok), tenantHeader("00000000-0000-4000-8000-000000000000"))
	})

	step(t, "revoke a key", func(t *testing.T) {
		var ke keyEnvelope
		c.expect(t, http.StatusOK, &ke, post, keyPath(rsaID, "/revoke"), u(jsonBody(map[string]any{"reason": "rotated"}))...)
		k := ke.Key
		if k.Status != "revoked" || !k.Revoked || k.RevokedAt == nil || k.RevocationReason == nil || *k.RevocationReason != "rotated" || !ke.Success {
			t.Fatalf("revoked key: %+v", ke)
		}
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantA, rsaID, "", func(ch string) string { return rsaKey.sign(t, ch) })))
		eventually(t, 5*time.Second, "a token of the revoked key stops working", func() (bool, string) {
			r := c.do(t, get, agentPath(bot.ID), bearer(rsaTok))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		checkError(t, c.do(t, get, agentPath(bot.ID), bearer(rsaTok)), http.StatusUnauthorized, "token_revoked")
		c.expect(t, http.StatusOK, nil, get, agentPath(bot.ID), bearer(edTok)) // the agent's other keys still work
		var kl keyList
		c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?agent_id="+bot.ID, u()...)
		if len(kl.Keys) != 3 {
			t.Fatalf("a revoked key is still listed: %d keys", len(kl.Keys))
		}
		// Deleting a key: gone, and its token stops working.
		c.expect(t, http.StatusNoContent, nil, del, keyPath(ecID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, keyPath(ecID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", del, keyPath(ecID), u()...)
		eventually(t, 5*time.Second, "a token of the deleted key stops working", func() (bool, string) {
			r := c.do(t, get, agentPath(bot.ID), bearer(ecTok))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		checkError(t, c.do(t, get, agentPath(bot.ID), bearer(ecTok)), http.StatusUnauthorized, "token_revoked")
	})

	step(t, "agent created with its public key; deleting an agent", func(t *testing.T) {
		var before summaryJSON
		c.expect(t, http.StatusOK, &before, get, "/api/v1/agents/status/summary", u()...)
		k := newEd25519Key(t)
		var ae agentEnvelope
		c.expect(t, http.StatusCreated, &ae, post, "/api/v1/agents", u(jsonBody(map[string]any{"name": "keyed", "public_key": k.authorized}))...)
		if ae.Key == nil || !ae.Success {
			t.Fatalf("create with public_key: no key in the reply: %+v", ae)
		}
		checkAgent(t, ae.Agent, tenantA)
		checkKey(t, *ae.Key, k, tenantA, ae.Agent.ID, "agent")
		keyed, keyedKey := ae.Agent, ae.Key.ID

		// The same public key again: 409 and no second agent.
		c.expectError(t, http.StatusConflict, "conflict", post, "/api/v1/agents", u(jsonBody(map[string]any{"name": "twin", "public_key": k.stored}))...)
		e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/agents", u(jsonBody(map[string]any{"name": "weak", "public_key": newRSAKey(t, 1024).authorized}))...)
		if len(e.Errors) == 0 || e.Errors[0].Field != "public_key" {
			t.Fatalf("weak key on create: %+v", e)
		}
		var s summaryJSON
		c.expect(t, http.StatusOK, &s, get, "/api/v1/agents/status/summary", u()...)
		if s.Total != before.Total+1 {
			t.Fatalf("failed creates left agents: total %d, want %d", s.Total, before.Total+1)
		}
		pages := listAgents(t, c, nil, 100, u()...)
		if ids := agentIDs(pages); len(ids) != s.Total {
			t.Fatalf("%d agents listed, summary says %d", len(ids), s.Total)
		}

		v := checkVerified(t, c.loginHTTP(t, tenantA, "", keyed.ID, func(ch string) string { return k.sign(t, ch) }), tenantA, keyed.ID, keyedKey)

		c.expect(t, http.StatusNoContent, nil, del, agentPath(keyed.ID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(keyed.ID), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, keyPath(keyedKey), u()...)
		c.expectError(t, http.StatusNotFound, "not_found", del, agentPath(keyed.ID), u()...)
		var kl keyList
		c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?agent_id="+keyed.ID, u()...)
		if len(kl.Keys) != 0 || kl.NextToken != nil {
			t.Fatalf("keys of a deleted agent: %+v", kl)
		}
		eventually(t, 5*time.Second, "the deleted agent's token stops working", func() (bool, string) {
			r := c.do(t, get, agentPath(keyed.ID), bearer(v.Token))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		checkError(t, c.do(t, get, "/api/v1/me", bearer(v.Token)), http.StatusUnauthorized, "token_revoked")
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantA, "", keyed.ID, func(ch string) string { return k.sign(t, ch) })))
		c.expect(t, http.StatusOK, &s, get, "/api/v1/agents/status/summary", u()...)
		if s.Total != before.Total {
			t.Fatalf("after the delete: total %d, want %d", s.Total, before.Total)
		}
		st.agents = s.Total
		// The key's fingerprint is free again.
		c.expect(t, http.StatusCreated, &ae, post, "/api/v1/agents", u(jsonBody(map[string]any{"name": "keyed again", "public_key": k.authorized}))...)
		st.agents++
		for _, d := range details {
			if d != details[0] {
				t.Fatalf("failed logins must share one detail: %q", details)
			}
		}
	})

	var tenantB, keyB, agentB, sshB, tokB string
	step(t, "the free plan's agent limit", func(t *testing.T) {
		var cr createReply
		c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(hank),
			jsonBody(map[string]any{"name": "Small Co", "admin_email": "hank@example.com", "subscription_tier": "free"}))
		tenantB, keyB = cr.TenantID, cr.APIKey
		if limit(t, cr.Tenant, "max_agents") != 3 {
			t.Fatalf("free plan: %v", cr.Tenant.Limits)
		}
		const racers = 6
		replies := make([]reply, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				replies[i], errs[i] = c.try(post, "/api/v1/agents", bearer(hank), tenantHeader(tenantB),
					jsonBody(map[string]any{"name": fmt.Sprintf("racer-%d", i)}))
			})
		}
		wg.Wait()
		created := 0
		for i, r := range replies {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			switch r.Status {
			case http.StatusCreated:
				created++
				var ae agentEnvelope
				_ = r.decode(&ae)
				if agentB == "" {
					agentB = ae.Agent.ID
				}
			case http.StatusPaymentRequired:
				e := checkError(t, r, http.StatusPaymentRequired, "plan_limit_exceeded")
				d := strings.ToLower(e.Detail)
				if !strings.Contains(d, "agent") || !strings.Contains(d, "3") || !strings.Contains(d, "free") {
					t.Fatalf("402 detail must name the resource, count, limit and plan: %q", e.Detail)
				}
			default:
				t.Fatalf("concurrent create: %s", r)
			}
		}
		if created != 3 {
			t.Fatalf("%d of %d concurrent creates succeeded on the free plan, want 3", created, racers)
		}
		pages := listAgents(t, c, nil, 100, bearer(hank), tenantHeader(tenantB))
		if ids := agentIDs(pages); len(ids) != 3 {
			t.Fatalf("%d agents exist, want exactly 3", len(ids))
		}
		var s summaryJSON
		c.expect(t, http.StatusOK, &s, get, "/api/v1/agents/status/summary", bearer(hank), tenantHeader(tenantB))
		if s.Total != 3 || s.Offline != 3 {
			t.Fatalf("summary %+v", s)
		}
		c.expectError(t, http.StatusPaymentRequired, "plan_limit_exceeded", post, "/api/v1/agents", apiKey(keyB), jsonBody(map[string]any{"name": "one more"}))
	})

	kB := newEd25519Key(t)
	step(t, "cross-tenant", func(t *testing.T) {
		var ke keyEnvelope
		c.expect(t, http.StatusCreated, &ke, post, "/api/v1/ssh-keys", apiKey(keyB), jsonBody(map[string]any{"name": "b", "public_key": kB.authorized, "agent_id": agentB}))
		sshB = ke.Key.ID
		tokB = checkVerified(t, c.loginHTTP(t, tenantB, sshB, "", func(ch string) string { return kB.sign(t, ch) }), tenantB, agentB, sshB).Token

		// Tenant B's user, API key and agent token on tenant A's agent and key ids.
		for _, cred := range []struct {
			name string
			opts []any
		}{{"user", []any{bearer(hank), tenantHeader(tenantB)}}, {"user (no header)", []any{bearer(hank)}}, {"API key", []any{apiKey(keyB)}}} {
			t.Run(cred.name, func(t *testing.T) {
				o := func(extra ...any) []any { return append(slices.Clone(cred.opts), extra...) }
				c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(bot.ID), o()...)
				c.expectError(t, http.StatusNotFound, "not_found", put, agentPath(bot.ID), o(jsonBody(map[string]any{"description": "mine"}))...)
				c.expectError(t, http.StatusNotFound, "not_found", put, agentPath(bot.ID, "/status"), o(jsonBody(map[string]any{"status": "error"}))...)
				c.expectError(t, http.StatusNotFound, "not_found", del, agentPath(bot.ID), o()...)
				c.expectError(t, http.StatusNotFound, "not_found", get, keyPath(edID), o()...)
				c.expectError(t, http.StatusNotFound, "not_found", post, keyPath(edID, "/revoke"), o(jsonBody(map[string]any{}))...)
				c.expectError(t, http.StatusNotFound, "not_found", del, keyPath(edID), o()...)
				var kl keyList
				c.expect(t, http.StatusOK, &kl, get, "/api/v1/ssh-keys?agent_id="+bot.ID, o()...)
				var l agentList
				c.expect(t, http.StatusOK, &l, get, "/api/v1/agents?limit=100", o()...)
				if len(kl.Keys) != 0 || len(l.Agents) != 3 {
					t.Fatalf("tenant B sees %d of A's keys and %d agents", len(kl.Keys), len(l.Agents))
				}
				e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/ssh-keys",
					o(jsonBody(map[string]any{"name": "steal", "public_key": newEd25519Key(t).authorized, "agent_id": bot.ID}))...)
				if len(e.Errors) == 0 || e.Errors[0].Field != "agent_id" {
					t.Fatalf("another tenant's agent: %+v", e)
				}
			})
		}
		t.Run("agent token", func(t *testing.T) {
			c.expectError(t, http.StatusNotFound, "not_found", get, agentPath(bot.ID), bearer(tokB))
			c.expectError(t, http.StatusNotFound, "not_found", put, agentPath(bot.ID), bearer(tokB), jsonBody(map[string]any{"description": "mine"}))
			sameAsAbsent(t, c, put, agentPath(bot.ID, "/status"), agentPath(absentULID, "/status"), bearer(tokB), jsonBody(map[string]any{"status": "error"}))
			sameAsAbsent(t, c, del, agentPath(bot.ID), agentPath(absentULID), bearer(tokB))
			sameAsAbsent(t, c, get, keyPath(edID), keyPath(absentULID), bearer(tokB))
			sameAsAbsent(t, c, post, keyPath(edID, "/revoke"), keyPath(absentULID, "/revoke"), bearer(tokB), jsonBody(map[string]any{}))
			sameAsAbsent(t, c, del, keyPath(edID), keyPath(absentULID), bearer(tokB))
			c.expectError(t, http.StatusForbidden, "forbidden", get, agentPath(bot.ID), bearer(tokB), tenantHeader(tenantA))
		})
		// Tenant A's key cannot log into tenant B, by key or by agent.
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantB, edID, "", func(ch string) string { return edKey.sign(t, ch) })))
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantB, "", bot.ID, func(ch string) string { return edKey.sign(t, ch) })))

		// Nothing of A changed.
		var ae agentEnvelope
		c.expect(t, http.StatusOK, &ae, get, agentPath(bot.ID), u()...)
		if ae.Agent.Description != "logged in" || ae.Agent.Status != agentv1.StatusOffline {
			t.Fatalf("tenant B changed A's agent: %+v", ae.Agent)
		}
		var ke2 keyEnvelope
		c.expect(t, http.StatusOK, &ke2, get, keyPath(edID), u()...)
		if ke2.Key.Status != "active" {
			t.Fatalf("tenant B changed A's key: %+v", ke2.Key)
		}
		c.expect(t, http.StatusOK, nil, get, agentPath(bot.ID), bearer(edTok))
		for _, d := range details {
			if d != details[0] {
				t.Fatalf("failed logins must share one detail: %q", details)
			}
		}
	})

	step(t, "tenant cascade", func(t *testing.T) {
		nc := env.natsConnect(t, natsperm.Gateway)
		defer nc.Close()
		credential := sshkeyv1.LookupCredentialRequest{TenantID: tenantB, AgentID: agentB, KeyID: sshB}
		agent := agentv1.LookupRequest{TenantID: tenantB, AgentID: agentB}
		if err := natsCall(t, nc, sshkeyv1.Subject(sshkeyv1.OpLookupCredential), credential); err != nil {
			t.Fatalf("before the delete, lookup_credential: %v", err)
		}
		if err := natsCall(t, nc, agentv1.Subject(agentv1.OpLookup), agent); err != nil {
			t.Fatalf("before the delete, agent lookup: %v", err)
		}
		c.expect(t, http.StatusNoContent, nil, del, tenantPath(tenantB), bearer(hank))
		eventually(t, 15*time.Second, "the cascade deletes tenant B's keys and agents", func() (bool, string) {
			e1 := natsCall(t, nc, sshkeyv1.Subject(sshkeyv1.OpLookupCredential), credential)
			e2 := natsCall(t, nc, agentv1.Subject(agentv1.OpLookup), agent)
			if !isNotFound(e1) || !isNotFound(e2) {
				return false, fmt.Sprintf("lookup_credential: %v; agent lookup: %v", e1, e2)
			}
			return true, ""
		})
		eventually(t, 5*time.Second, "the deleted tenant's agent token stops working", func() (bool, string) {
			r := c.do(t, get, agentPath(agentB), bearer(tokB))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		details = append(details, invalidSignature(t, c.loginHTTP(t, tenantB, sshB, "", func(ch string) string { return kB.sign(t, ch) })))
		if details[len(details)-1] != details[0] {
			t.Fatalf("failed logins must share one detail: %q", details)
		}
		// Tenant A is untouched.
		c.expect(t, http.StatusOK, nil, get, agentPath(bot.ID), bearer(edTok))
	})
	st.done = true
}

// meReplyAgent is GET /api/v1/me for an agent token.
type meReplyAgent struct {
	Kind     string `json:"kind"`
	UserID   string `json:"user_id"`
	AgentID  string `json:"agent_id"`
	KeyID    string `json:"key_id"`
	TenantID string `json:"tenant_id"`
}

// checkAgentsSurvived runs on a restarted stack: the agents and keys are still there and
// the key still logs in.
func checkAgentsSurvived(t *testing.T, c *client, st agentStory) {
	u := as(st.owner, st.tenantID)
	pages := listAgents(t, c, nil, 100, u...)
	if ids := agentIDs(pages); len(ids) != st.agents {
		t.Fatalf("after the restart %d agents, want %d", len(ids), st.agents)
	}
	var ae agentEnvelope
	c.expect(t, http.StatusOK, &ae, get, agentPath(st.agentID), u...)
	if ae.Agent.Name != "login-bot" || ae.Agent.Description != "logged in" {
		t.Fatalf("after the restart: %+v", ae.Agent)
	}
	v := checkVerified(t, c.loginHTTP(t, st.tenantID, st.keyID, "", func(ch string) string { return st.key.sign(t, ch) }), st.tenantID, st.agentID, st.keyID)
	c.expect(t, http.StatusOK, nil, get, agentPath(st.agentID), bearer(v.Token))
}

// neverLogged fails when one of secrets appears in out.
func neverLogged(t *testing.T, out string, secrets []string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("no secrets recorded: the agents scenario did not get far enough")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the stack's output contains a secret (private key line or login response) %q", testkit.Tail(s, 20))
		}
	}
}
