package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
)

const ownAgentID = "01JBAGENT00000000000000001"

// channelEnv is a tenant with every kind of principal, for the channel tests.
type channelEnv struct {
	*env
	tenantID, key                               string
	viewer, member, admin, owner, apiKey, agent map[string]string
}

func newChannelEnv(t *testing.T, opts ...envOption) *channelEnv {
	t.Helper()
	e := newEnv(t, opts...)
	c := &channelEnv{env: e}
	c.tenantID, c.key = e.seedTenant("owen")
	e.setRole(c.tenantID, "vic", "viewer")
	e.setRole(c.tenantID, "mia", "member")
	e.setRole(c.tenantID, "adam", "admin")
	h := map[string]string{"X-Tenant-Id": c.tenantID}
	c.viewer = mergeH(bearer(e.userToken("vic")), h)
	c.member = mergeH(bearer(e.userToken("mia")), h)
	c.admin = mergeH(bearer(e.userToken("adam")), h)
	c.owner = mergeH(bearer(e.userToken("owen")), h)
	c.apiKey = apiKey(c.key)
	c.agent = bearer(e.agentToken(c.tenantID, ownAgentID))
	return c
}

// agentTokenWithKey is agentToken for a second agent of a tenant (its own key).
func (e *env) agentTokenWithKey(tenantID, agentID, keyID string) string {
	e.t.Helper()
	e.seedCredential(tenantID, agentID, keyID)
	tok, _, err := e.auth.MintAgentToken(tenantID, agentID, keyID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func messagesPath(channel string) string { return "/api/v1/channels/" + channel + "/messages" }

// TestChannelPolicies checks SPEC §13 "Who may call what" for every channel route, for
// every role and principal kind, each on a fresh tenant.
func TestChannelPolicies(t *testing.T) {
	e := newEnv(t)
	user := func(sub string, roles ...string) func(string) map[string]string {
		tok := e.userToken(sub, roles...)
		return func(string) map[string]string { return bearer(tok) }
	}
	principals := []struct {
		name  string
		creds func(key string) map[string]string
	}{
		{"viewer", user("vic")},
		{"member", user("mia")},
		{"admin", user("adam")},
		{"owner", user("owen")},
		{"api_key", apiKey},
		{"agent", nil}, // minted per tenant below
		{"platform_admin", user("pat", "platform_admin")},
		{"outsider", user("olga")},
	}
	readers := map[string]int{"viewer": 200, "member": 200, "admin": 200, "owner": 200, "api_key": 200, "agent": 200, "platform_admin": 403, "outsider": 403}
	writers := func(ok int) map[string]int {
		return map[string]int{"viewer": 403, "member": ok, "admin": ok, "owner": ok, "api_key": ok, "agent": 403, "platform_admin": 403, "outsider": 403}
	}
	const otherAgent = "01JBAGENT00000000000000002"
	routes := []struct {
		method, path string // {ch} = a public channel of the tenant; {sub} = an agent subscribed to it
		body         any
		want         map[string]int
	}{
		{"GET", "/api/v1/channels", nil, readers},
		{"POST", "/api/v1/channels", map[string]any{"name": "c"}, writers(201)},
		{"GET", "/api/v1/channels/{ch}", nil, readers},
		{"PUT", "/api/v1/channels/{ch}", map[string]any{"name": "renamed"}, writers(200)},
		{"DELETE", "/api/v1/channels/{ch}", nil, writers(204)},
		{"GET", "/api/v1/channels/{ch}/subscriptions", nil, readers},
		{"POST", "/api/v1/channels/{ch}/subscriptions", map[string]any{"agent_id": otherAgent, "role": "publisher"}, writers(201)},
		{"DELETE", "/api/v1/channels/{ch}/subscriptions/{sub}", nil, writers(204)},
		{"GET", "/api/v1/channels/{ch}/messages", nil, readers},
		{"POST", "/api/v1/channels/{ch}/messages", map[string]any{"hello": "world"},
			map[string]int{"viewer": 403, "member": 200, "admin": 200, "owner": 200, "api_key": 200, "agent": 200, "platform_admin": 403, "outsider": 403}},
	}
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
				ch := e.seedChannel(tenantID, channelv1.TypePublic, 0)
				e.seedAgent(tenantID, otherAgent, "other")
				const subscribed = "01JBAGENT00000000000000003"
				e.seedSubscription(tenantID, ch, subscribed, channelv1.RoleSubscriber)
				var creds map[string]string
				if p.creds == nil {
					creds = bearer(e.agentToken(tenantID, ownAgentID))
				} else {
					creds = p.creds(key)
				}
				creds = mergeH(creds, map[string]string{"X-Tenant-Id": tenantID})
				path := strings.NewReplacer("{ch}", ch, "{sub}", subscribed).Replace(rt.path)
				r := e.do(rt.method, path, rt.body, creds)
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

// TestChannelCRUD: the routes relay the service's replies and send it the right ids.
func TestChannelCRUD(t *testing.T) {
	c := newChannelEnv(t)
	r := c.do("POST", "/api/v1/channels", map[string]any{"name": "ops", "type": "private", "metadata": map[string]any{"n": 1}}, c.member)
	c.expect(r, 201, "")
	m := r.json(t)
	ch, _ := m["channel"].(map[string]any)
	id, _ := ch["id"].(string)
	if m["success"] != true || id == "" || ch["type"] != "private" || ch["tenant_id"] != c.tenantID {
		t.Fatalf("create = %s", r.body)
	}
	if got := c.chans.identity(channelv1.OpCreate); got.Plan != plans.Basic || got.TenantID != c.tenantID || got.Role != "member" {
		t.Fatalf("identity = %+v", got)
	}
	// Ids in any case; returned upper-case.
	r = c.do("GET", "/api/v1/channels/"+strings.ToLower(id), nil, c.viewer)
	c.expect(r, 200, "")
	if got := r.json(t)["channel"].(map[string]any)["id"]; got != id {
		t.Fatalf("get id = %v", got)
	}
	c.expect(c.do("GET", "/api/v1/channels/not-a-ulid", nil, c.viewer), 404, "not_found")
	c.expect(c.do("PUT", "/api/v1/channels/"+id, map[string]any{"name": ""}, c.member), 422, "validation_failed")
	c.expect(c.do("PUT", "/api/v1/channels/"+id, map[string]any{"type": "secret"}, c.member), 422, "validation_failed")
	c.expect(c.do("POST", "/api/v1/channels", map[string]any{"name": "x", "history": map[string]any{"max_age_seconds": 1 << 40}}, c.member), 422, "validation_failed")
	c.expect(c.do("POST", "/api/v1/channels", "not json", c.member), 400, "invalid_json")

	// Lists page with signed tokens bound to the tenant.
	for i := range 2 {
		c.expect(c.do("POST", "/api/v1/channels", map[string]any{"name": fmt.Sprint("c", i)}, c.apiKey), 201, "")
	}
	r = c.do("GET", "/api/v1/channels?limit=2", nil, c.agent)
	c.expect(r, 200, "")
	page := r.json(t)
	tok, _ := page["next_token"].(string)
	if len(page["channels"].([]any)) != 2 || tok == "" {
		t.Fatalf("page = %s", r.body)
	}
	r = c.do("GET", "/api/v1/channels?limit=2&next_token="+url.QueryEscape(tok), nil, c.viewer)
	c.expect(r, 200, "")
	if page := r.json(t); len(page["channels"].([]any)) != 1 || page["next_token"] != nil {
		t.Fatalf("page 2 = %s", r.body)
	}
	c.expect(c.do("GET", "/api/v1/channels?limit=0", nil, c.viewer), 422, "validation_failed")
	c.expect(c.do("GET", "/api/v1/channels?next_token=forged", nil, c.viewer), 400, "invalid_next_token")
	other, _ := c.seedTenant("owen")
	c.expect(c.do("GET", "/api/v1/channels?limit=2&next_token="+url.QueryEscape(tok), nil,
		mergeH(bearer(c.userToken("owen")), map[string]string{"X-Tenant-Id": other})), 400, "invalid_next_token")

	// Subscriptions.
	agent := c.seedAgent(c.tenantID, "", "worker")
	r = c.do("POST", "/api/v1/channels/"+id+"/subscriptions", map[string]any{"agent_id": strings.ToLower(agent), "role": "publisher"}, c.member)
	c.expect(r, 201, "")
	if s := r.json(t)["subscription"].(map[string]any); s["agent_id"] != agent || s["role"] != "publisher" {
		t.Fatalf("subscription = %s", r.body)
	}
	c.expect(c.do("POST", "/api/v1/channels/"+id+"/subscriptions", map[string]any{"agent_id": agent}, c.member), 409, "conflict")
	c.expect(c.do("POST", "/api/v1/channels/"+id+"/subscriptions", map[string]any{"agent_id": ulid.Make().String()}, c.member), 422, "validation_failed")
	c.expect(c.do("POST", "/api/v1/channels/"+id+"/subscriptions", map[string]any{"agent_id": agent, "role": "king"}, c.member), 422, "validation_failed")
	c.expect(c.do("POST", "/api/v1/channels/"+id+"/subscriptions", map[string]any{}, c.member), 422, "validation_failed")
	r = c.do("GET", "/api/v1/channels/"+id+"/subscriptions", nil, c.agent)
	c.expect(r, 200, "")
	if subs := r.json(t)["subscriptions"].([]any); len(subs) != 1 {
		t.Fatalf("subscriptions = %s", r.body)
	}
	c.expect(c.do("DELETE", "/api/v1/channels/"+id+"/subscriptions/nope", nil, c.member), 404, "not_found")
	c.expect(c.do("DELETE", "/api/v1/channels/"+id+"/subscriptions/"+strings.ToLower(agent), nil, c.member), 204, "")
	c.expect(c.do("DELETE", "/api/v1/channels/"+id+"/subscriptions/"+agent, nil, c.member), 404, "not_found")

	c.expect(c.do("DELETE", "/api/v1/channels/"+id, nil, c.member), 204, "")
	c.expect(c.do("GET", "/api/v1/channels/"+id, nil, c.member), 404, "not_found")
	c.expect(c.do("DELETE", "/api/v1/channels/"+id, nil, c.member), 404, "not_found")
}

// TestPublishStoresMessage: one publish stores one message whose data is the body byte
// for byte and whose headers are exactly the design's, none copied from the client.
func TestPublishStoresMessage(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 3600)
	body := `{"big": 12345678901234567890, "huge": 1e400, "neg": -0.0, "s": "\u00e9<b>", "nested": {"a": [1, 2.50, true, null]}}`
	headers := mergeH(c.member, map[string]string{
		"Content-Type":         "application/json; charset=utf-8",
		"Nats-TTL":             "1",
		"Nats-Msg-Id":          "client-chosen",
		"Nats-Rollup":          "all",
		"Nats-Expected-Stream": "OTHER",
		"Artcafe-Sender-Id":    "someone-else",
		"Artcafe-Sender-Type":  "agent",
		"Artcafe-Message-Id":   "01JBFAKE000000000000000000",
		"Artcafe-Timestamp":    "2000-01-01T00:00:00.000Z",
		"Artcafe-Tenant-Id":    "abcdef00-0000-4000-8000-999999999999",
	})
	before := time.Now().UTC().Truncate(time.Millisecond)
	r := c.do("POST", messagesPath(strings.ToLower(ch)), "\n  "+body+"\n", headers)
	c.expect(r, 200, "")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a first publish says it was replayed")
	}
	m := r.json(t)
	msgID, _ := m["message_id"].(string)
	ts, err := time.Parse(messagev1.TimestampFormat, fmt.Sprint(m["timestamp"]))
	if m["success"] != true || len(msgID) != 26 || err != nil || ts.Before(before) || ts.Location() != time.UTC {
		t.Fatalf("reply = %s", r.body)
	}
	seq := mustSeq(t, m)

	got := c.stored(seq)
	if got.Subject != messagev1.Subject(c.tenantID, ch) {
		t.Fatalf("subject = %q", got.Subject)
	}
	if string(got.Data) != body {
		t.Fatalf("stored data = %q, want %q", got.Data, body)
	}
	want := map[string]string{
		messagev1.HeaderMessageID:  msgID,
		messagev1.HeaderSenderType: messagev1.SenderUser,
		messagev1.HeaderSenderID:   "mia",
		messagev1.HeaderTimestamp:  fmt.Sprint(m["timestamp"]), // the same text
		"Nats-TTL":                 "3600",
	}
	checkHeaders(t, got.Header, want)

	// History relays it byte for byte too.
	r = c.do("GET", messagesPath(ch), nil, c.viewer)
	c.expect(r, 200, "")
	if !strings.Contains(string(r.body), `"data":`+compactJSON(t, body)) {
		t.Fatalf("history does not carry the data as published: %s", r.body)
	}
}

// compactJSON is s as encoding/json relays a json.RawMessage (whitespace dropped, every
// token's text kept).
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(json.RawMessage(s))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkHeaders(t *testing.T, got map[string][]string, want map[string]string) {
	t.Helper()
	var names []string
	for k, v := range got {
		names = append(names, k)
		if len(v) != 1 {
			t.Errorf("header %s = %q, want one value", k, v)
		}
		if w, ok := want[k]; !ok {
			t.Errorf("unexpected stored header %s: %q", k, v)
		} else if v[0] != w {
			t.Errorf("header %s = %q, want %q", k, v[0], w)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			slices.Sort(names)
			t.Errorf("stored headers %v lack %s", names, k)
		}
	}
}

// TestPublishSenders: each principal kind is recorded as itself; an unlimited channel's
// messages carry no TTL.
func TestPublishSenders(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	for _, tc := range []struct {
		creds    map[string]string
		typ, id  string
		roleName string
	}{
		{c.owner, messagev1.SenderUser, "owen", "owner"},
		{c.apiKey, messagev1.SenderAPIKey, c.tenantID, "api key"},
		{c.agent, messagev1.SenderAgent, ownAgentID, "agent"},
	} {
		r := c.do("POST", messagesPath(ch), `{"from":"`+tc.roleName+`"}`, tc.creds)
		c.expect(r, 200, "")
		got := c.stored(mustSeq(t, r.json(t)))
		if got.Header.Get(messagev1.HeaderSenderType) != tc.typ || got.Header.Get(messagev1.HeaderSenderID) != tc.id {
			t.Fatalf("%s: sender = %s/%s", tc.roleName, got.Header.Get(messagev1.HeaderSenderType), got.Header.Get(messagev1.HeaderSenderID))
		}
		if _, ok := got.Header["Nats-TTL"]; ok {
			t.Fatalf("%s: a channel with unlimited history got Nats-TTL %q", tc.roleName, got.Header.Get("Nats-TTL"))
		}
		if _, ok := got.Header["Nats-Msg-Id"]; ok {
			t.Fatalf("%s: Nats-Msg-Id without an Idempotency-Key", tc.roleName)
		}
	}
}

// TestPublishRefusals: every publish check, with the status and code of the SPEC.
func TestPublishRefusals(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	p := messagesPath(ch)
	c.expect(c.do("POST", p, `{"a":1}`, c.viewer), 403, "forbidden")
	for _, bad := range []string{`[1,2]`, `"text"`, `12`, `null`, `true`, ``, `   `, "{\"a\":\"\xff\"}"} {
		r := c.do("POST", p, bad, c.member)
		c.expect(r, 422, "validation_failed")
		if !strings.Contains(string(r.body), `"field":"data"`) {
			t.Fatalf("%q: %s", bad, r.body)
		}
	}
	// Malformed JSON is 400, as on every other route.
	for _, bad := range []string{`{"a":1`, `{"a":1}{"b":2}`, `{"a":1} x`} {
		c.expect(c.do("POST", p, bad, c.member), 400, "invalid_json")
	}
	c.expect(c.do("POST", p, `{"a":1}`, mergeH(c.member, map[string]string{"Content-Type": "text/plain"})), 415, "unsupported_media_type")

	limit := plans.MaxMessageBytes
	atLimit := `{"p":"` + strings.Repeat("x", limit-8) + `"}`
	if len(atLimit) != limit {
		t.Fatalf("test body is %d bytes", len(atLimit))
	}
	c.expect(c.do("POST", p, atLimit, c.member), 200, "")
	c.expect(c.do("POST", p, `{"p":"`+strings.Repeat("x", limit-7)+`"}`, c.member), 413, "payload_too_large")

	for _, key := range []string{strings.Repeat("k", 256), "tab\there", "é"} {
		r := c.do("POST", p, `{"a":1}`, mergeH(c.member, map[string]string{"Idempotency-Key": key}))
		c.expect(r, 422, "validation_failed")
		if !strings.Contains(string(r.body), `"field":"Idempotency-Key"`) {
			t.Fatalf("%q: %s", key, r.body)
		}
	}
	c.expect(c.do("POST", p, `{"a":1}`, mergeH(c.member, map[string]string{"Idempotency-Key": strings.Repeat("k", 255)})), 200, "")

	c.expect(c.do("POST", messagesPath(ulid.Make().String()), `{"a":1}`, c.member), 404, "not_found")
	c.expect(c.do("POST", messagesPath("nope"), `{"a":1}`, c.member), 404, "not_found")
	c.expect(c.do("POST", messagesPath(ch), `{"a":1}`, mergeH(c.member, map[string]string{"X-Tenant-Id": "not-a-uuid"})), 400, "invalid_tenant_id")

	// The suspended tenant.
	c.setStatus(c.tenantID, "suspended")
	c.expect(c.do("POST", p, `{"a":1}`, c.member), 403, "tenant_suspended")
}

// TestPublishQuota: the quota hook refuses with 429 message_quota_exceeded and
// Retry-After, and nothing is stored.
func TestPublishQuota(t *testing.T) {
	q := &refusingQuota{}
	c := newChannelEnv(t, withQuota(q))
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	c.expect(c.do("POST", messagesPath(ch), `{"a":1}`, c.member), 200, "")
	q.refuse = true
	r := c.do("POST", messagesPath(ch), `{"a":2}`, c.member)
	c.expect(r, 429, "message_quota_exceeded")
	if r.header.Get("Retry-After") != "42" {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	if n := c.subjectCount(c.tenantID, ch); n != 1 {
		t.Fatalf("stored %d messages, want 1", n)
	}
	if q.tenant != c.tenantID || q.plan != plans.Basic || q.n != 1 {
		t.Fatalf("quota asked about %q %q %d", q.tenant, q.plan, q.n)
	}
}

type refusingQuota struct {
	refuse       bool
	tenant, plan string
	n            int
}

func (q *refusingQuota) Allow(_ context.Context, tenantID, plan string, n int) error {
	q.tenant, q.plan, q.n = tenantID, plan, n
	if q.refuse {
		return messaging.QuotaExceeded("the tenant's daily message quota is used up", 42)
	}
	return nil
}

func (q *refusingQuota) Refund(string, string, int) {}

// TestPublishIdempotent: the same key by the same caller on the same channel returns the
// first result with Idempotent-Replayed and stores one message; the scope is (tenant,
// channel, principal, key).
func TestPublishIdempotent(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	ch2 := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	withKey := func(h map[string]string, k string) map[string]string {
		return mergeH(h, map[string]string{"Idempotency-Key": k})
	}
	first := c.do("POST", messagesPath(ch), `{"n":1}`, withKey(c.member, "order-42"))
	c.expect(first, 200, "")
	again := c.do("POST", messagesPath(ch), `{"n":2}`, withKey(c.member, "order-42"))
	c.expect(again, 200, "")
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay headers = %v", again.header)
	}
	if string(again.body) != string(first.body) {
		t.Fatalf("replay = %s, first = %s", again.body, first.body)
	}
	if n := c.subjectCount(c.tenantID, ch); n != 1 {
		t.Fatalf("stored %d messages, want 1", n)
	}
	stored := c.stored(mustSeq(t, first.json(t)))
	if string(stored.Data) != `{"n":1}` || stored.Header.Get("Nats-Msg-Id") != messagev1.DedupID(c.tenantID, ch, "user", "mia", "order-42") {
		t.Fatalf("stored = %q %v", stored.Data, stored.Header)
	}
	// Another principal, another channel, another key: new messages.
	for _, tc := range []struct {
		path string
		h    map[string]string
	}{
		{messagesPath(ch), withKey(c.owner, "order-42")},
		{messagesPath(ch), withKey(c.apiKey, "order-42")},
		{messagesPath(ch), withKey(c.agent, "order-42")},
		{messagesPath(ch2), withKey(c.member, "order-42")},
		{messagesPath(ch), withKey(c.member, "order-43")},
	} {
		r := c.do("POST", tc.path, `{"n":3}`, tc.h)
		c.expect(r, 200, "")
		if r.header.Get("Idempotent-Replayed") != "" || r.json(t)["message_id"] == first.json(t)["message_id"] {
			t.Fatalf("%s %v: replayed %s", tc.path, tc.h, r.body)
		}
	}
	if n := c.subjectCount(c.tenantID, ch); n != 5 {
		t.Fatalf("stored %d messages, want 5", n)
	}
	// Only successful publishes are remembered: a refused one does not reserve the key.
	c.expect(c.do("POST", messagesPath(ch), `[1]`, withKey(c.member, "order-44")), 422, "validation_failed")
	r := c.do("POST", messagesPath(ch), `{"n":4}`, withKey(c.member, "order-44"))
	c.expect(r, 200, "")
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("a refused publish reserved its key")
	}
}

// TestPublishUnknownAndDeletedChannel: 404 for unknown and deleted channels, at once
// after the deletion event (also for a deletion made through another gateway); a
// channel that appears after a cached 404 without any event works within the 1 s
// negative TTL.
func TestPublishUnknownAndDeletedChannel(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	c.expect(c.do("POST", messagesPath(ch), `{"a":1}`, c.member), 200, "") // cached now
	deletedEvents := eventsv1.Subject(c.tenantID, eventsv1.EntityChannels, eventsv1.ActionDeleted)
	c.expect(c.do("DELETE", "/api/v1/channels/"+ch, nil, c.member), 204, "")
	c.waitHints(deletedEvents, 1)
	c.expect(c.do("POST", messagesPath(ch), `{"a":1}`, c.member), 404, "not_found")
	if n := c.subjectCount(c.tenantID, ch); n != 0 {
		t.Fatalf("a deleted channel still has %d messages", n)
	}

	// Deleted through another gateway: only the event tells this one.
	ch2 := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	c.expect(c.do("POST", messagesPath(ch2), `{"a":1}`, c.member), 200, "")
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{TenantID: c.tenantID, Kind: natsrpc.KindAPIKey, Role: "admin"})
	if err := natsrpc.NewClient(c.chans.nc).Call(ctx, channelv1.Subject(channelv1.OpDelete), &channelv1.DeleteRequest{ChannelID: ch2}, nil); err != nil {
		t.Fatal(err)
	}
	c.waitHints(deletedEvents, 2)
	c.expect(c.do("POST", messagesPath(ch2), `{"a":1}`, c.member), 404, "not_found")

	// A new channel works at once (a cached 404 followed by the created event is in the
	// messaging package's tests: the id cannot be known here before the create).
	created := eventsv1.Subject(c.tenantID, eventsv1.EntityChannels, eventsv1.ActionCreated)
	r := c.do("POST", "/api/v1/channels", map[string]any{"name": "later"}, c.member)
	c.expect(r, 201, "")
	c.waitHints(created, 1)
	id := r.json(t)["channel"].(map[string]any)["id"].(string)
	c.expect(c.do("POST", messagesPath(id), `{"a":1}`, c.member), 200, "")

	// The same with the event lost: a cached 404 lives at most a second.
	late := ulid.Make().String()
	c.expect(c.do("POST", messagesPath(late), `{"a":1}`, c.member), 404, "not_found")
	c.chans.mu.Lock()
	c.chans.put(c.tenantID, newChannel(c.tenantID, late, "late", channelv1.TypePublic, channelv1.History{}))
	c.chans.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := c.do("POST", messagesPath(late), `{"a":1}`, c.member)
		if r.status == 200 {
			break
		}
		c.expect(r, 404, "not_found")
		if time.Now().After(deadline) {
			t.Fatal("a channel created after a cached 404 still is 404")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPublishPrivateChannel: agents need a publisher or admin subscription; users and
// API keys do not; a subscription added or removed through this gateway counts at once.
func TestPublishPrivateChannel(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePrivate, 0)
	p := messagesPath(ch)
	c.expect(c.do("POST", p, `{"a":1}`, c.agent), 403, "forbidden")
	c.expect(c.do("GET", p, nil, c.agent), 403, "forbidden")
	c.expect(c.do("POST", p, `{"a":1}`, c.member), 200, "")
	c.expect(c.do("POST", p, `{"a":1}`, c.apiKey), 200, "")

	c.expect(c.do("POST", "/api/v1/channels/"+ch+"/subscriptions", map[string]any{"agent_id": ownAgentID}, c.member), 201, "")
	c.expect(c.do("POST", p, `{"a":1}`, c.agent), 403, "forbidden") // a subscriber only reads
	c.expect(c.do("GET", p, nil, c.agent), 200, "")
	c.expect(c.do("DELETE", "/api/v1/channels/"+ch+"/subscriptions/"+ownAgentID, nil, c.member), 204, "")
	c.expect(c.do("POST", "/api/v1/channels/"+ch+"/subscriptions", map[string]any{"agent_id": ownAgentID, "role": "publisher"}, c.member), 201, "")
	c.expect(c.do("POST", p, `{"a":1}`, c.agent), 200, "")
	c.expect(c.do("DELETE", "/api/v1/channels/"+ch+"/subscriptions/"+ownAgentID, nil, c.member), 204, "")
	c.expect(c.do("POST", p, `{"a":1}`, c.agent), 403, "forbidden")
	c.expect(c.do("POST", "/api/v1/channels/"+ch+"/subscriptions", map[string]any{"agent_id": ownAgentID, "role": "admin"}, c.member), 201, "")
	c.expect(c.do("POST", p, `{"a":1}`, c.agent), 200, "")

	// Made public (an update): every agent of the tenant may publish.
	other := bearer(c.agentTokenWithKey(c.tenantID, "01JBAGENT00000000000000009", "01JBKEY0000000000000000009"))
	c.expect(c.do("POST", p, `{"a":1}`, other), 403, "forbidden")
	c.expect(c.do("PUT", "/api/v1/channels/"+ch, map[string]any{"type": "public"}, c.member), 200, "")
	c.expect(c.do("POST", p, `{"a":1}`, other), 200, "")
}

// TestChannelsCrossTenant: another tenant's channel id is just "not found" for users,
// API keys and agent tokens of this tenant, on every channel route.
func TestChannelsCrossTenant(t *testing.T) {
	c := newChannelEnv(t)
	theirs, _ := c.seedTenant("zed")
	theirChannel := c.seedChannel(theirs, channelv1.TypePublic, 0)
	c.seedSubscription(theirs, theirChannel, "01JBAGENT0000000000000000Z", channelv1.RolePublisher)
	for name, creds := range map[string]map[string]string{"user": c.owner, "api key": c.apiKey, "agent": c.agent} {
		for _, rt := range []struct {
			method, path string
			body         any
		}{
			{"POST", messagesPath(theirChannel), `{"a":1}`},
			{"GET", messagesPath(theirChannel), nil},
			{"GET", "/api/v1/channels/" + theirChannel, nil},
			{"GET", "/api/v1/channels/" + theirChannel + "/subscriptions", nil},
			{"PUT", "/api/v1/channels/" + theirChannel, map[string]any{"name": "mine"}},
			{"POST", "/api/v1/channels/" + theirChannel + "/subscriptions", map[string]any{"agent_id": ownAgentID}},
			{"DELETE", "/api/v1/channels/" + theirChannel + "/subscriptions/01JBAGENT0000000000000000Z", nil},
			{"DELETE", "/api/v1/channels/" + theirChannel, nil},
		} {
			if name == "agent" && rt.method != "GET" && !strings.HasSuffix(rt.path, "/messages") {
				continue // agents may not write channels at all (403, covered by the policy test)
			}
			r := c.do(rt.method, rt.path, rt.body, creds)
			if r.status != 404 {
				t.Fatalf("%s %s %s: %d %s", name, rt.method, rt.path, r.status, r.body)
			}
		}
	}
	if n := c.subjectCount(theirs, theirChannel); n != 0 {
		t.Fatalf("their channel got %d messages", n)
	}
	// Their channel is untouched.
	c.chans.mu.Lock()
	got := c.chans.channels[theirs][theirChannel]
	c.chans.mu.Unlock()
	if got == nil || got.Name != "seeded public" || got.SubscriberCount != 1 {
		t.Fatalf("their channel = %+v", got)
	}
	// A message published with their tenant in the header: bound credentials say 403,
	// a user not in their tenant 403 too.
	theirH := map[string]string{"X-Tenant-Id": theirs}
	c.expect(c.do("POST", messagesPath(theirChannel), `{"a":1}`, mergeH(c.apiKey, theirH)), 403, "forbidden")
	c.expect(c.do("POST", messagesPath(theirChannel), `{"a":1}`, mergeH(c.agent, theirH)), 403, "forbidden")
	c.expect(c.do("POST", messagesPath(theirChannel), `{"a":1}`, mergeH(bearer(c.userToken("mia")), theirH)), 403, "forbidden")
}

// TestHistory: pages oldest first through signed tokens bound to the channel and filters;
// malformed filters are 422.
func TestHistory(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	other := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	var seqs []uint64
	for i := range 5 {
		r := c.do("POST", messagesPath(ch), fmt.Sprintf(`{"i":%d,"n":1e400}`, i), c.member)
		c.expect(r, 200, "")
		seqs = append(seqs, mustSeq(t, r.json(t)))
		c.expect(c.do("POST", messagesPath(other), `{"other":true}`, c.member), 200, "")
	}
	type message struct {
		MessageID string           `json:"message_id"`
		Seq       uint64           `json:"seq"`
		ChannelID string           `json:"channel_id"`
		TenantID  string           `json:"tenant_id"`
		Sender    messagev1.Sender `json:"sender"`
		Data      json.RawMessage  `json:"data"`
	}
	read := func(query string, creds map[string]string) ([]message, string) {
		t.Helper()
		r := c.do("GET", messagesPath(ch)+query, nil, creds)
		c.expect(r, 200, "")
		var out struct {
			Messages  []message `json:"messages"`
			NextToken *string   `json:"next_token"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatalf("%s: %s", err, r.body)
		}
		next := ""
		if out.NextToken != nil {
			next = *out.NextToken
		}
		return out.Messages, next
	}
	var got []uint64
	msgs, next := read("?limit=2", c.viewer)
	for {
		for _, m := range msgs {
			if m.ChannelID != ch || m.TenantID != c.tenantID || m.Sender.ID != "mia" || !strings.HasSuffix(string(m.Data), `"n":1e400}`) {
				t.Fatalf("message = %+v (%s)", m, m.Data)
			}
			got = append(got, m.Seq)
		}
		if next == "" {
			break
		}
		msgs, next = read("?limit=2&next_token="+url.QueryEscape(next), c.agent)
	}
	if !slices.Equal(got, seqs) {
		t.Fatalf("paged seqs = %v, want %v", got, seqs)
	}

	msgs, next = read(fmt.Sprintf("?after_seq=%d&before_seq=%d", seqs[0], seqs[4]), c.apiKey)
	if len(msgs) != 3 || msgs[0].Seq != seqs[1] || msgs[2].Seq != seqs[3] || next != "" {
		t.Fatalf("after/before = %+v %q", msgs, next)
	}
	_, tok := read(fmt.Sprintf("?limit=1&after_seq=%d", seqs[0]), c.viewer)
	if tok == "" {
		t.Fatal("no next_token")
	}
	// The token is bound to the channel and to the filters.
	c.expect(c.do("GET", messagesPath(other)+fmt.Sprintf("?limit=1&after_seq=%d&next_token=", seqs[0])+url.QueryEscape(tok), nil, c.viewer), 400, "invalid_next_token")
	c.expect(c.do("GET", messagesPath(ch)+"?limit=1&after_seq=0&next_token="+url.QueryEscape(tok), nil, c.viewer), 400, "invalid_next_token")
	c.expect(c.do("GET", messagesPath(ch)+"?limit=1&next_token="+url.QueryEscape(tok), nil, c.viewer), 400, "invalid_next_token")
	msgs, _ = read(fmt.Sprintf("?limit=1&after_seq=%d&next_token=", seqs[0])+url.QueryEscape(tok), c.viewer)
	if len(msgs) != 1 || msgs[0].Seq != seqs[2] {
		t.Fatalf("second page = %+v", msgs)
	}

	for _, q := range []string{"?after_seq=-1", "?before_seq=x", "?after_seq=1.5", "?limit=101", fmt.Sprintf("?after_seq=%d&before_seq=%d", seqs[2], seqs[2]+1)} {
		c.expect(c.do("GET", messagesPath(ch)+q, nil, c.viewer), 422, "validation_failed")
	}
	c.expect(c.do("GET", messagesPath(ulid.Make().String()), nil, c.viewer), 404, "not_found")
}

// TestWarmPublishCallsNoService: with warm caches a publish is authentication and the
// channel from cache and one JetStream publish; no service is asked.
func TestWarmPublishCallsNoService(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePrivate, 0)
	c.seedSubscription(c.tenantID, ch, ownAgentID, channelv1.RolePublisher)
	for _, creds := range []map[string]string{c.member, c.apiKey, c.agent} {
		c.expect(c.do("POST", messagesPath(ch), `{"warm":1}`, creds), 200, "")
	}
	lookups := c.chans.callCount(channelv1.OpLookup)
	tenantCalls := func() int {
		n := 0
		for _, op := range []string{tenantv1.OpLookupMembership, tenantv1.OpLookupAPIKey, tenantv1.OpLookupTenant, tenantv1.OpLookupUserTenants} {
			n += c.tenants.callCount(op)
		}
		return n
	}
	tenants, creds := tenantCalls(), c.fleet.callCount(sshkeyv1.OpLookupCredential)
	for range 20 {
		for _, creds := range []map[string]string{c.member, c.apiKey, c.agent} {
			c.expect(c.do("POST", messagesPath(ch), `{"hot":1}`, creds), 200, "")
		}
	}
	if got := c.chans.callCount(channelv1.OpLookup); got != lookups {
		t.Fatalf("warm publishes made %d channel lookups", got-lookups)
	}
	if got := tenantCalls(); got != tenants {
		t.Fatalf("warm publishes made %d tenant lookups", got-tenants)
	}
	if got := c.fleet.callCount(sshkeyv1.OpLookupCredential); got != creds {
		t.Fatalf("warm publishes made %d credential lookups", got-creds)
	}
	if n := c.subjectCount(c.tenantID, ch); n != 63 {
		t.Fatalf("stored %d, want 63", n)
	}
}

// TestPublishStoreUnavailable: without the stream the publish is 503, not 500.
func TestPublishStoreUnavailable(t *testing.T) {
	c := newChannelEnv(t)
	ch := c.seedChannel(c.tenantID, channelv1.TypePublic, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.js.DeleteStream(ctx, messagev1.Stream); err != nil {
		t.Fatal(err)
	}
	c.expect(c.do("POST", messagesPath(ch), `{"a":1}`, c.member), http.StatusServiceUnavailable, "service_unavailable")
}
