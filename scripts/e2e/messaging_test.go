package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// The channel and message resources of SPEC §4.5 as the wire names them, decoded
// independently of contracts/ so a renamed JSON field fails here.
type channelJSON struct {
	ID          string         `json:"id"`
	ChannelID   string         `json:"channel_id"`
	TenantID    string         `json:"tenant_id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Type        string         `json:"type"`
	Status      string         `json:"status"`
	Metadata    map[string]any `json:"metadata"`
	History     struct {
		MaxAgeSeconds int64 `json:"max_age_seconds"`
		MaxMessages   int64 `json:"max_messages"`
	} `json:"history"`
	SubscriberCount int64   `json:"subscriber_count"`
	TotalMessages   int64   `json:"total_messages"`
	LastMessageAt   *string `json:"last_message_at"`
	CreatedAt       string  `json:"created_at"`
	UpdatedAt       string  `json:"updated_at"`
}

type channelEnvelope struct {
	Channel channelJSON `json:"channel"`
	Success bool        `json:"success"`
}

type channelList struct {
	Channels  []channelJSON `json:"channels"`
	NextToken *string       `json:"next_token"`
}

type subscriptionJSON struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	ChannelID      string `json:"channel_id"`
	AgentID        string `json:"agent_id"`
	Role           string `json:"role"`
	CreatedAt      string `json:"created_at"`
}

type subscriptionEnvelope struct {
	Subscription subscriptionJSON `json:"subscription"`
	Success      bool             `json:"success"`
}

type subscriptionList struct {
	Subscriptions []subscriptionJSON `json:"subscriptions"`
	NextToken     *string            `json:"next_token"`
}

type senderJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// messageJSON is the message object; a message frame decodes into it too (its fields
// sit beside "type").
type messageJSON struct {
	MessageID string          `json:"message_id"`
	Seq       uint64          `json:"seq"`
	ChannelID string          `json:"channel_id"`
	TenantID  string          `json:"tenant_id"`
	Timestamp string          `json:"timestamp"`
	Sender    senderJSON      `json:"sender"`
	Data      json.RawMessage `json:"data"`
}

type historyJSON struct {
	Messages  []messageJSON `json:"messages"`
	NextToken *string       `json:"next_token"`
}

type publishedJSON struct {
	MessageID string `json:"message_id"`
	Seq       uint64 `json:"seq"`
	Timestamp string `json:"timestamp"`
	Success   bool   `json:"success"`
}

func channelPath(id string, rest ...string) string {
	return "/api/v1/channels/" + id + strings.Join(rest, "")
}

// frameMessage decodes a message frame as the message object.
func frameMessage(t *testing.T, f wsFrame) messageJSON {
	t.Helper()
	var m messageJSON
	if err := json.Unmarshal(f.raw, &m); err != nil {
		t.Fatalf("message frame %s: %v", f, err)
	}
	return m
}

// sameMessage requires two views of one message to be the same envelope, data byte for
// byte: SPEC §13 says data is stored and delivered as the same JSON text, so a path that
// re-encodes it (compacting spaces, escaping <>&) fails here.
func sameMessage(t *testing.T, what string, got, want messageJSON) {
	t.Helper()
	if err := sameEnvelope(got, want); err != "" {
		t.Fatalf("%s: %s", what, err)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("%s: data %s\nwant the published bytes %s", what, got.Data, want.Data)
	}
}

// reencodings collects history messages whose data is the published JSON value but not
// its text. The story goes on (the rest of it does not depend on the bytes) and fails
// at its end, so one deviation does not hide the others.
type reencodings []string

// check is sameMessage for a history read: a different envelope or value fails at
// once; the same value in other text is recorded.
func (r *reencodings) check(t *testing.T, what string, got, want messageJSON) {
	t.Helper()
	if err := sameEnvelope(got, want); err != "" {
		t.Fatalf("%s: %s", what, err)
	}
	if bytes.Equal(got.Data, want.Data) {
		return
	}
	if !sameJSONValue(got.Data, want.Data) {
		t.Fatalf("%s: data %s\nwant %s", what, got.Data, want.Data)
	}
	*r = append(*r, fmt.Sprintf("%s: %s, published as %s", what, got.Data, want.Data))
}

func sameEnvelope(got, want messageJSON) string {
	got.Data, want.Data = nil, nil
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("envelope %+v\nwant %+v", got, want)
	}
	return ""
}

// sameJSONValue compares two JSON texts as values, numbers by their text.
func sameJSONValue(a, b []byte) bool {
	decode := func(b []byte) (any, bool) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, ok1 := decode(a)
	vb, ok2 := decode(b)
	return ok1 && ok2 && reflect.DeepEqual(va, vb)
}

// checkMessage checks a message object's own fields.
func checkMessage(t *testing.T, m messageJSON, tenant, channel string, sender senderJSON) {
	t.Helper()
	if !ulidRe.MatchString(m.MessageID) || m.Seq == 0 || m.ChannelID != channel || m.TenantID != tenant || m.Sender != sender {
		t.Fatalf("message %+v: want a ULID id, a seq, channel %s, tenant %s, sender %+v", m, channel, tenant, sender)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil || !strings.HasSuffix(m.Timestamp, "Z") || time.Since(ts) > 10*time.Minute || time.Until(ts) > time.Minute {
		t.Fatalf("message timestamp %q (%v)", m.Timestamp, err)
	}
}

// history reads a channel's whole history with limit-sized pages.
func history(t *testing.T, c *client, channel string, limit int, opts ...any) []messageJSON {
	t.Helper()
	var out []messageJSON
	next := ""
	for range 1000 {
		q := url.Values{"limit": {itoa(limit)}}
		if next != "" {
			q.Set("next_token", next)
		}
		var h historyJSON
		r := c.expect(t, http.StatusOK, &h, get, channelPath(channel, "/messages?"+q.Encode()), opts...)
		if _, ok := r.object(t)["next_token"]; !ok {
			t.Fatalf("no next_token field: %s", r)
		}
		if len(h.Messages) > limit || (h.NextToken != nil && len(h.Messages) == 0) {
			t.Fatalf("page of %d (limit %d, next_token %v)", len(h.Messages), limit, h.NextToken)
		}
		out = append(out, h.Messages...)
		if h.NextToken == nil {
			return out
		}
		next = *h.NextToken
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// bySeq finds the message with seq in ms.
func bySeq(t *testing.T, ms []messageJSON, seq uint64) messageJSON {
	t.Helper()
	for _, m := range ms {
		if m.Seq == seq {
			return m
		}
	}
	t.Fatalf("no message with seq %d among %d", seq, len(ms))
	return messageJSON{}
}

// seqsOf lists the seqs of message frames.
func seqsOf(fs []wsFrame) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.Seq
	}
	return out
}

// agentToken registers an agent with a new ed25519 key in tenant (as owner) and logs it
// in; it returns the agent id and an agent token.
func agentToken(t *testing.T, env stackEnv, c *client, owner, tenant, name string) (string, string) {
	t.Helper()
	k := newEd25519Key(t)
	var ae agentEnvelope
	c.expect(t, http.StatusCreated, &ae, post, "/api/v1/agents",
		as(owner, tenant, jsonBody(map[string]any{"name": name, "public_key": k.authorized}))...)
	if ae.Key == nil {
		t.Fatalf("agent %s: no key in the reply", name)
	}
	cl := agentlogin.Client{BaseURL: env.baseURL() + "/api/v1", HTTP: c.http}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tok, err := cl.Login(ctx, tenant, ae.Key.KeyID, "", k.signer)
	if err != nil {
		t.Fatalf("agent %s login: %v", name, err)
	}
	return ae.Agent.ID, tok.Token
}

// agentStatus polls GET /agents/{id} until its status is want.
func agentStatus(t *testing.T, c *client, tok, tenant, agent, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "agent "+agent+" "+want, func() (bool, string) {
		var ae agentEnvelope
		c.expect(t, http.StatusOK, &ae, get, agentPath(agent), as(tok, tenant)...)
		return ae.Agent.Status == want, "status " + ae.Agent.Status
	})
}

// waitEvent waits on a subscribe_events session for an event of type typ whose data
// has the field key = value.
func waitEvent(t *testing.T, s *wsSession, from int, typ, key, value string) wsFrame {
	t.Helper()
	f, _ := s.waitFrame(t, from, fmt.Sprintf("event %s %s=%s", typ, key, value), 15*time.Second, func(f wsFrame) bool {
		if f.Type != realtimev1.TypeEvent || f.Event == nil || f.Event.Type != typ {
			return false
		}
		var data map[string]any
		return json.Unmarshal(f.Event.Data, &data) == nil && data[key] == value
	})
	return f
}

// runMessaging is the messaging story of issue 4 on the real fleet: channels and
// subscriptions over REST; two agents and a dashboard on WebSockets exchanging messages
// published over REST and WS; idempotent publishes; since_seq reconnects; history;
// presence and tenant events; tenant isolation against a second tenant's sessions; a
// deleted channel; and a burst of 1,000 messages to 10 subscribers.
func runMessaging(t *testing.T, env stackEnv, c *client) {
	base := env.baseURL()
	// Sessions opened in a step live until the story ends.
	story := t
	var reencoded reencodings
	alice := env.token(t, "-sub", "e2e-msg-alice") // owner of tenant A
	vera := env.token(t, "-sub", "e2e-msg-vera")   // viewer in tenant A
	bob := env.token(t, "-sub", "e2e-msg-bob")     // owner of tenant B
	ops := env.token(t, "-sub", "e2e-msg-ops", "-role", "platform_admin")

	var tenantA, tenantB string
	var scout, courier, loner, spy string // agent ids (spy is in tenant B)
	var scoutTok, courierTok, lonerTok, spyTok string
	step(t, "tenants, agents and agent tokens", func(t *testing.T) {
		var cr createReply
		c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(alice),
			jsonBody(map[string]any{"name": "Messaging A", "admin_email": "alice@example.com"}))
		tenantA = cr.TenantID
		// Enterprise: the burst and the many sessions below stay clear of plan limits.
		c.expect(t, http.StatusOK, nil, put, tenantPath(tenantA, "/plan"), bearer(ops),
			jsonBody(map[string]any{"subscription_tier": "enterprise"}))
		c.expect(t, http.StatusCreated, nil, post, tenantPath(tenantA, "/members"), bearer(alice),
			jsonBody(map[string]any{"user_id": "e2e-msg-vera", "role": "viewer"}))
		c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(bob),
			jsonBody(map[string]any{"name": "Messaging B", "admin_email": "bob@example.com"}))
		tenantB = cr.TenantID
		scout, scoutTok = agentToken(t, env, c, alice, tenantA, "scout")
		courier, courierTok = agentToken(t, env, c, alice, tenantA, "courier")
		loner, lonerTok = agentToken(t, env, c, alice, tenantA, "loner")
		spy, spyTok = agentToken(t, env, c, bob, tenantB, "spy")
	})
	a := func(extra ...any) []any { return as(alice, tenantA, extra...) }

	var general, private, bRoom channelJSON
	step(t, "channels: create, get, list, update", func(t *testing.T) {
		c.expect(t, http.StatusCreated, &channelEnvelope{}, post, "/api/v1/channels", a(jsonBody(map[string]any{
			"name": "general", "description": "everyone", "metadata": map[string]any{"team": "e2e"}}))...)
		var ce channelEnvelope
		r := c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", a(jsonBody(map[string]any{"name": "general"}))...)
		general = ce.Channel
		// Names are not unique; ids are.
		if !ulidRe.MatchString(general.ID) || general.ChannelID != general.ID || general.TenantID != tenantA ||
			general.Name != "general" || general.Type != "public" || general.Status != "active" ||
			general.SubscriberCount != 0 || general.TotalMessages != 0 || general.LastMessageAt != nil || !ce.Success {
			t.Fatalf("created channel: %s", r)
		}
		c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", a(jsonBody(map[string]any{"name": "ops", "type": "private"}))...)
		private = ce.Channel
		if private.Type != "private" {
			t.Fatalf("private channel: %+v", private)
		}
		var got channelEnvelope
		c.expect(t, http.StatusOK, &got, get, channelPath(strings.ToLower(general.ID)), a()...)
		if got.Channel.ID != general.ID || got.Channel.Name != "general" {
			t.Fatalf("get (lower-case id): %+v", got.Channel)
		}
		var l channelList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/channels?limit=100", a()...)
		var ids []string
		for _, ch := range l.Channels {
			ids = append(ids, ch.ID)
		}
		if len(ids) != 3 || !slices.IsSorted(ids) || !slices.Contains(ids, general.ID) || !slices.Contains(ids, private.ID) {
			t.Fatalf("list: %v", ids)
		}
		c.expect(t, http.StatusOK, &got, put, channelPath(general.ID), a(jsonBody(map[string]any{"description": "all hands"}))...)
		if got.Channel.Description != "all hands" || got.Channel.Name != "general" {
			t.Fatalf("update: %+v", got.Channel)
		}
		// Who may: viewers and agents read, only members and up write.
		c.expect(t, http.StatusOK, nil, get, channelPath(general.ID), as(vera, tenantA)...)
		c.expect(t, http.StatusOK, nil, get, channelPath(general.ID), bearer(scoutTok))
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/channels", as(vera, tenantA, jsonBody(map[string]any{"name": "x"}))...)
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/channels", bearer(scoutTok), jsonBody(map[string]any{"name": "x"}))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/channels", a(jsonBody(map[string]any{"name": ""}))...)
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath(absentULID), a()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath("not-an-id"), a()...)
		// Another tenant's channel does not exist for bob.
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath(general.ID), as(bob, tenantB)...)
		c.expectError(t, http.StatusForbidden, "forbidden", get, channelPath(general.ID), as(bob, tenantA)...)

		c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", as(bob, tenantB, jsonBody(map[string]any{"name": "b-room"}))...)
		bRoom = ce.Channel
		// Tenant B is on the basic plan: history defaults to its bounds, more is 422.
		if bRoom.History.MaxMessages != 10000 || bRoom.History.MaxAgeSeconds != 7*24*3600 {
			t.Fatalf("basic plan history defaults: %+v", bRoom.History)
		}
		e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/channels",
			as(bob, tenantB, jsonBody(map[string]any{"name": "big", "history": map[string]any{"max_messages": 10001}}))...)
		if len(e.Errors) == 0 || !strings.HasPrefix(e.Errors[0].Field, "history") {
			t.Fatalf("history over the plan: %+v", e)
		}
	})

	step(t, "subscriptions", func(t *testing.T) {
		var se subscriptionEnvelope
		r := c.expect(t, http.StatusCreated, &se, post, channelPath(private.ID, "/subscriptions"),
			a(jsonBody(map[string]any{"agent_id": strings.ToLower(scout), "role": "publisher"}))...)
		s := se.Subscription
		if s.ID == "" || s.SubscriptionID != s.ID || s.ChannelID != private.ID || s.AgentID != scout || s.Role != "publisher" || s.CreatedAt == "" || !se.Success {
			t.Fatalf("subscription: %s", r)
		}
		c.expect(t, http.StatusCreated, &se, post, channelPath(private.ID, "/subscriptions"), a(jsonBody(map[string]any{"agent_id": courier}))...)
		if se.Subscription.Role != "subscriber" {
			t.Fatalf("default role: %+v", se.Subscription)
		}
		c.expectError(t, http.StatusConflict, "conflict", post, channelPath(private.ID, "/subscriptions"),
			a(jsonBody(map[string]any{"agent_id": courier, "role": "admin"}))...)
		e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, channelPath(private.ID, "/subscriptions"),
			a(jsonBody(map[string]any{"agent_id": spy}))...) // an agent of tenant B
		if len(e.Errors) == 0 || e.Errors[0].Field != "agent_id" {
			t.Fatalf("agent of another tenant: %+v", e)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, channelPath(private.ID, "/subscriptions"),
			a(jsonBody(map[string]any{"agent_id": loner, "role": "owner"}))...)
		c.expectError(t, http.StatusForbidden, "forbidden", post, channelPath(private.ID, "/subscriptions"),
			bearer(scoutTok), jsonBody(map[string]any{"agent_id": loner}))
		var sl subscriptionList
		c.expect(t, http.StatusOK, &sl, get, channelPath(private.ID, "/subscriptions"), bearer(courierTok))
		var agents []string
		for _, s := range sl.Subscriptions {
			agents = append(agents, s.AgentID)
		}
		want := []string{scout, courier}
		slices.Sort(want)
		if !slices.Equal(agents, want) {
			t.Fatalf("subscriptions %v, want %v (by agent id)", agents, want)
		}
		var ce channelEnvelope
		c.expect(t, http.StatusOK, &ce, get, channelPath(private.ID), a()...)
		if ce.Channel.SubscriberCount != 2 {
			t.Fatalf("subscriber_count %d, want 2", ce.Channel.SubscriberCount)
		}
		// Add and remove one on the public channel.
		c.expect(t, http.StatusCreated, nil, post, channelPath(general.ID, "/subscriptions"), a(jsonBody(map[string]any{"agent_id": loner}))...)
		c.expect(t, http.StatusNoContent, nil, del, channelPath(general.ID, "/subscriptions/", loner), a()...)
		c.expectError(t, http.StatusNotFound, "not_found", del, channelPath(general.ID, "/subscriptions/", loner), a()...)
	})

	// The sessions: the dashboard first (it watches the tenant's events), then the agents,
	// then tenant B's, which must never see anything of tenant A.
	var dash, scoutWS, courierWS, lonerWS, bobWS, spyWS *wsSession
	evMark := 0
	step(t, "sessions open: dashboard, agents, and tenant B's", func(t *testing.T) {
		dash = dialWS(t, story, base, "dashboard", wsAuth{token: alice, tenant: tenantA, tenantQuery: true})
		if dash.connected.TenantID != tenantA || dash.connected.AgentID != "" {
			t.Fatalf("dashboard connected: %s", dash.connected)
		}
		m := dash.mark()
		dash.send(t, realtimev1.SubscribeEvents("events"))
		if f := dash.expectReply(t, m, "events", realtimev1.TypeSubscribed, ""); !f.Events {
			t.Fatalf("subscribe_events reply: %s", f)
		}
		evMark = dash.mark()
		scoutWS = dialWS(t, story, base, "scout", wsAuth{token: scoutTok})
		if scoutWS.connected.TenantID != tenantA || scoutWS.connected.AgentID != scout {
			t.Fatalf("scout connected: %s", scoutWS.connected)
		}
		courierWS = dialWS(t, story, base, "courier", wsAuth{token: courierTok, inQuery: true})
		lonerWS = dialWS(t, story, base, "loner", wsAuth{token: lonerTok, tenant: tenantA})
		bobWS = dialWS(t, story, base, "bob", wsAuth{token: bob, tenant: tenantB})
		spyWS = dialWS(t, story, base, "spy", wsAuth{token: spyTok})
		if bobWS.connected.TenantID != tenantB || spyWS.connected.TenantID != tenantB {
			t.Fatalf("tenant B sessions: %s %s", bobWS.connected, spyWS.connected)
		}
		m = bobWS.mark()
		bobWS.send(t, realtimev1.SubscribeEvents("events"))
		bobWS.expectReply(t, m, "events", realtimev1.TypeSubscribed, "")
		bobWS.subscribe(t, bRoom.ID)
		spyWS.subscribe(t, bRoom.ID)
	})

	step(t, "refused before the upgrade", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			auth   wsAuth
			status int
			code   string
		}{
			{"no credentials", wsAuth{}, http.StatusUnauthorized, "unauthorized"},
			{"bad token", wsAuth{token: "nope", inQuery: true}, http.StatusUnauthorized, "unauthorized"},
			{"bob into tenant A", wsAuth{token: bob, tenant: tenantA}, http.StatusForbidden, "forbidden"},
			{"tenant B's agent into tenant A", wsAuth{token: spyTok, tenant: tenantA, tenantQuery: true}, http.StatusForbidden, "forbidden"},
			{"malformed tenant", wsAuth{token: alice, tenant: "A", tenantQuery: true}, http.StatusBadRequest, "invalid_tenant_id"},
		} {
			s, r, err := tryDialWS(base, tc.name, tc.auth)
			if err == nil {
				s.close()
				t.Fatalf("%s: the upgrade succeeded", tc.name)
			}
			if r == nil {
				t.Fatalf("%s: no HTTP reply: %v", tc.name, err)
			}
			checkError(t, *r, tc.status, tc.code)
		}
	})

	step(t, "presence: agents online when their sessions open", func(t *testing.T) {
		agentStatus(t, c, alice, tenantA, scout, "online", 15*time.Second)
		agentStatus(t, c, alice, tenantA, courier, "online", 15*time.Second)
		waitEvent(t, dash, evMark, "agents.status", "agent_id", scout)
		waitEvent(t, dash, evMark, "agents.status", "agent_id", courier)
	})

	var published []messageJSON // every message of general, as the dashboard saw them
	step(t, "REST and WebSocket publishes reach every subscriber with the same envelope", func(t *testing.T) {
		sessions := []*wsSession{dash, scoutWS, courierWS}
		marks := make([]int, len(sessions))
		for i, s := range sessions {
			s.subscribe(t, general.ID)
			// A repeated subscribe is harmless: one subscription, no duplicate delivery.
			s.subscribe(t, general.ID)
			marks[i] = s.mark()
		}
		// Data with spacing, markup and a number no float64 holds: delivered byte for byte.
		restData := `{"kind": "rest", "big": 12345678901234567890, "f": 1.50, "html": "<b>&</b>"}`
		var p publishedJSON
		c.expect(t, http.StatusOK, &p, post, channelPath(general.ID, "/messages"), a(jsonBody(restData))...)
		if !p.Success || !ulidRe.MatchString(p.MessageID) || p.Seq == 0 {
			t.Fatalf("publish reply %+v", p)
		}
		m := scoutWS.mark()
		scoutWS.send(t, realtimev1.Publish("p-1", general.ID, json.RawMessage(`{"kind":"ws","n":2}`)))
		ack := scoutWS.expectReply(t, m, "p-1", realtimev1.TypeAck, "")
		if !ulidRe.MatchString(ack.MessageID) || ack.Seq <= p.Seq {
			t.Fatalf("ack %s after REST seq %d", ack, p.Seq)
		}
		var first []messageJSON
		for i, s := range sessions {
			fs := s.waitMessages(t, marks[i], general.ID, 2, 10*time.Second)
			if len(fs) != 2 {
				t.Fatalf("%s: %d messages, want 2: %s", s.name, len(fs), s.describe(marks[i]))
			}
			ms := []messageJSON{frameMessage(t, fs[0]), frameMessage(t, fs[1])}
			if i == 0 {
				first = ms
				checkMessage(t, ms[0], tenantA, general.ID, senderJSON{"user", "e2e-msg-alice"})
				checkMessage(t, ms[1], tenantA, general.ID, senderJSON{"agent", scout})
				if ms[0].MessageID != p.MessageID || ms[0].Seq != p.Seq || ms[0].Timestamp != p.Timestamp {
					t.Fatalf("REST message %+v differs from its publish reply %+v", ms[0], p)
				}
				if ms[1].MessageID != ack.MessageID || ms[1].Seq != ack.Seq {
					t.Fatalf("WS message %+v differs from its ack %s", ms[1], ack)
				}
				if string(ms[0].Data) != restData || string(ms[1].Data) != `{"kind":"ws","n":2}` {
					t.Fatalf("data not byte for byte: %s, %s", ms[0].Data, ms[1].Data)
				}
				continue
			}
			sameMessage(t, s.name+" message 1", ms[0], first[0])
			sameMessage(t, s.name+" message 2", ms[1], first[1])
		}
		h := history(t, c, general.ID, 100, a()...)
		reencoded.check(t, "history of the REST publish", bySeq(t, h, p.Seq), first[0])
		reencoded.check(t, "history of the WS publish", bySeq(t, h, ack.Seq), first[1])
		published = append(published, first...)
	})

	step(t, "bad publishes: 404, 413, 422, error frames that keep the session", func(t *testing.T) {
		c.expectError(t, http.StatusNotFound, "not_found", post, channelPath(absentULID, "/messages"), a(jsonBody(`{"a":1}`))...)
		c.expectError(t, http.StatusNotFound, "not_found", post, channelPath("nope", "/messages"), a(jsonBody(`{"a":1}`))...)
		for _, bad := range []string{`[1,2]`, `"text"`, `42`, `null`} {
			c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, channelPath(general.ID, "/messages"), a(jsonBody(bad))...)
		}
		// Malformed JSON: 400 invalid_json as on every other route, or 422 (not an object).
		if r := c.do(t, post, channelPath(general.ID, "/messages"), a(jsonBody(`{"a":`))...); r.Status == http.StatusBadRequest {
			checkError(t, r, http.StatusBadRequest, "invalid_json")
		} else {
			checkError(t, r, http.StatusUnprocessableEntity, "validation_failed")
		}
		big := `{"blob":"` + strings.Repeat("x", 70<<10) + `"}`
		c.expectError(t, http.StatusRequestEntityTooLarge, "payload_too_large", post, channelPath(general.ID, "/messages"), a(jsonBody(big))...)
		c.expectError(t, http.StatusForbidden, "forbidden", post, channelPath(general.ID, "/messages"), as(vera, tenantA, jsonBody(`{"a":1}`))...)
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, channelPath(general.ID, "/messages"),
			a(jsonBody(`{"a":1}`), header("Idempotency-Key", strings.Repeat("k", 256)))...)

		m := courierWS.mark()
		courierWS.send(t, realtimev1.Publish("b-1", absentULID, json.RawMessage(`{"a":1}`)))
		courierWS.expectReply(t, m, "b-1", realtimev1.TypeError, "not_found")
		courierWS.send(t, realtimev1.Publish("b-2", general.ID, json.RawMessage(`[1]`)))
		courierWS.expectReply(t, m, "b-2", realtimev1.TypeError, "validation_failed")
		courierWS.sendRaw(t, []byte(`{"type":"publish","id":"b-3","channel_id":`))
		courierWS.waitFrame(t, m, "an error for a broken frame", 10*time.Second, func(f wsFrame) bool {
			return f.Type == realtimev1.TypeError && f.Code == "invalid_json"
		})
		courierWS.sendRaw(t, []byte(`{"type":"teleport","id":"b-4"}`))
		courierWS.expectReply(t, m, "b-4", realtimev1.TypeError, "")
		courierWS.send(t, realtimev1.Ping("alive"))
		courierWS.expectReply(t, m, "alive", realtimev1.TypePong, "")
	})

	step(t, "private channel: subscription records and roles", func(t *testing.T) {
		for _, s := range []*wsSession{scoutWS, courierWS, dash} {
			s.subscribe(t, private.ID)
		}
		m := lonerWS.mark()
		lonerWS.send(t, realtimev1.Subscribe("priv", private.ID))
		if f := lonerWS.reply(t, m, "priv"); f.Type != realtimev1.TypeError || (f.Code != "forbidden" && f.Code != "not_found") {
			t.Fatalf("an agent without a subscription record subscribed to a private channel: %s", f)
		}
		c.expectError(t, http.StatusForbidden, "forbidden", post, channelPath(private.ID, "/messages"), bearer(lonerTok), jsonBody(`{"a":1}`))
		c.expectError(t, http.StatusForbidden, "forbidden", post, channelPath(private.ID, "/messages"), bearer(courierTok), jsonBody(`{"a":1}`))
		m = courierWS.mark()
		courierWS.send(t, realtimev1.Publish("priv-pub", private.ID, json.RawMessage(`{"a":1}`)))
		courierWS.expectReply(t, m, "priv-pub", realtimev1.TypeError, "forbidden")

		dm, cm := dash.mark(), courierWS.mark()
		var p publishedJSON
		c.expect(t, http.StatusOK, &p, post, channelPath(private.ID, "/messages"), bearer(scoutTok), jsonBody(`{"secret":"plan"}`))
		for _, x := range []struct {
			s    *wsSession
			mark int
		}{{dash, dm}, {courierWS, cm}} {
			fs := x.s.waitMessages(t, x.mark, private.ID, 1, 10*time.Second)
			if fs[0].Seq != p.Seq {
				t.Fatalf("%s: %s, want seq %d", x.s.name, fs[0], p.Seq)
			}
		}
		// Agents read a private channel's history only with a subscription record.
		c.expect(t, http.StatusOK, nil, get, channelPath(private.ID, "/messages"), bearer(courierTok))
		c.expectError(t, http.StatusForbidden, "forbidden", get, channelPath(private.ID, "/messages"), bearer(lonerTok))
	})

	step(t, "Idempotency-Key: one message, the first result replayed", func(t *testing.T) {
		m := dash.mark()
		var p1, p2, p3 publishedJSON
		r1 := c.expect(t, http.StatusOK, &p1, post, channelPath(general.ID, "/messages"), a(jsonBody(`{"order":42}`), header("Idempotency-Key", "order-42"))...)
		r2 := c.expect(t, http.StatusOK, &p2, post, channelPath(general.ID, "/messages"), a(jsonBody(`{"order":42}`), header("Idempotency-Key", "order-42"))...)
		if r1.Header.Get("Idempotent-Replayed") == "true" || r2.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("Idempotent-Replayed: first %q, second %q", r1.Header.Get("Idempotent-Replayed"), r2.Header.Get("Idempotent-Replayed"))
		}
		if p1.MessageID != p2.MessageID || p1.Seq != p2.Seq || p1.Timestamp != p2.Timestamp {
			t.Fatalf("replay %+v differs from the first %+v", p2, p1)
		}
		// The same key from another principal is another scope: a new message.
		c.expect(t, http.StatusOK, &p3, post, channelPath(general.ID, "/messages"), bearer(scoutTok), jsonBody(`{"order":42}`), header("Idempotency-Key", "order-42"))
		if p3.MessageID == p1.MessageID {
			t.Fatal("the same key from another principal replayed alice's message")
		}
		// Over the WebSocket: the second ack is the first one, replayed.
		wm := courierWS.mark()
		f := realtimev1.Publish("i-1", general.ID, json.RawMessage(`{"order":43}`))
		f.IdempotencyKey = "order-43"
		courierWS.send(t, f)
		a1 := courierWS.expectReply(t, wm, "i-1", realtimev1.TypeAck, "")
		f.ID = "i-2"
		courierWS.send(t, f)
		a2 := courierWS.expectReply(t, wm, "i-2", realtimev1.TypeAck, "")
		if a2.MessageID != a1.MessageID || a2.Seq != a1.Seq || !a2.Replayed || a1.Replayed {
			t.Fatalf("WS replay: first %s, second %s", a1, a2)
		}
		// A sentinel after them: the dashboard got each message once.
		var s publishedJSON
		c.expect(t, http.StatusOK, &s, post, channelPath(general.ID, "/messages"), a(jsonBody(`{"sentinel":1}`))...)
		fs := dash.waitMessages(t, m, general.ID, 4, 10*time.Second)
		got := seqsOf(fs)
		if !slices.Equal(got, []uint64{p1.Seq, p3.Seq, a1.Seq, s.Seq}) {
			t.Fatalf("dashboard got seqs %v, want %v", got, []uint64{p1.Seq, p3.Seq, a1.Seq, s.Seq})
		}
		h := history(t, c, general.ID, 100, a()...)
		n := 0
		for _, hm := range h {
			if string(hm.Data) == `{"order":42}` {
				n++
			}
		}
		if n != 2 { // alice's once, scout's once
			t.Fatalf("history has %d {order:42} messages, want 2", n)
		}
		for _, f := range fs {
			published = append(published, frameMessage(t, f))
		}
	})

	step(t, "reconnect with since_seq: exactly the missed messages, then live", func(t *testing.T) {
		last := published[len(published)-1].Seq
		courierWS.close()
		agentStatus(t, c, alice, tenantA, courier, "offline", 15*time.Second)
		var missed []uint64
		for i := range 5 {
			var p publishedJSON
			c.expect(t, http.StatusOK, &p, post, channelPath(general.ID, "/messages"), a(jsonBody(fmt.Sprintf(`{"missed":%d}`, i)))...)
			missed = append(missed, p.Seq)
		}
		courierWS = dialWS(t, story, base, "courier again", wsAuth{token: courierTok})
		m := courierWS.mark()
		courierWS.send(t, realtimev1.SubscribeSince("resume", general.ID, last))
		// Live traffic while the replay runs: no gap, no duplicate.
		var live []uint64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range 3 {
				var p publishedJSON
				r, err := c.try(post, channelPath(general.ID, "/messages"), a(jsonBody(fmt.Sprintf(`{"live":%d}`, i)))...)
				if err != nil || r.Status != http.StatusOK || r.decode(&p) != nil {
					t.Errorf("live publish during the replay: %v %s", err, r)
					return
				}
				live = append(live, p.Seq)
			}
		})
		sub := courierWS.expectReply(t, m, "resume", realtimev1.TypeSubscribed, "")
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		want := append(slices.Clone(missed), live...)
		fs := courierWS.waitMessages(t, m, general.ID, len(want), 10*time.Second)
		time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
		fs = courierWS.messages(m, general.ID)
		if got := seqsOf(fs); !slices.Equal(got, want) {
			t.Fatalf("after since_seq=%d: seqs %v, want %v", last, got, want)
		}
		// subscribed comes before every replayed message.
		for _, f := range courierWS.since(m) {
			if f.Type == realtimev1.TypeMessage {
				t.Fatalf("a message came before subscribed: %s (subscribed %s)", f, sub)
			}
			if f.Type == realtimev1.TypeSubscribed {
				break
			}
		}
		for _, f := range fs {
			published = append(published, frameMessage(t, f))
		}
	})

	step(t, "history: oldest first, pages, after_seq and before_seq", func(t *testing.T) {
		h := history(t, c, general.ID, 100, a()...)
		var seqs []uint64
		for _, m := range h {
			seqs = append(seqs, m.Seq)
		}
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Fatalf("history seqs not strictly increasing: %v", seqs)
		}
		for _, p := range published {
			reencoded.check(t, "history", bySeq(t, h, p.Seq), p)
		}
		paged := history(t, c, general.ID, 3, a()...)
		if len(paged) != len(h) {
			t.Fatalf("pages of 3 gave %d messages, one page %d", len(paged), len(h))
		}
		for i := range h {
			sameMessage(t, "paged history", paged[i], h[i])
		}
		var page historyJSON
		c.expect(t, http.StatusOK, &page, get, channelPath(general.ID, fmt.Sprintf("/messages?after_seq=%d&limit=2", h[1].Seq)), a()...)
		if len(page.Messages) != 2 || page.Messages[0].Seq != h[2].Seq || page.Messages[1].Seq != h[3].Seq || page.NextToken == nil {
			t.Fatalf("after_seq=%d&limit=2: %+v", h[1].Seq, page)
		}
		n := len(h)
		c.expect(t, http.StatusOK, &page, get, channelPath(general.ID, fmt.Sprintf("/messages?before_seq=%d&limit=2", h[n-1].Seq)), a()...)
		if len(page.Messages) != 2 || page.Messages[0].Seq != h[n-3].Seq || page.Messages[1].Seq != h[n-2].Seq {
			t.Fatalf("before_seq=%d&limit=2: %+v", h[n-1].Seq, page)
		}
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, channelPath(general.ID, "/messages?limit=0"), a()...)
		c.expectError(t, http.StatusBadRequest, "invalid_next_token", get, channelPath(general.ID, "/messages?next_token=forged"), a()...)
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath(general.ID, "/messages"), as(bob, tenantB)...)
		// total_messages and last_message_at come from the stream (may lag up to 5 s).
		eventually(t, 15*time.Second, "total_messages of general", func() (bool, string) {
			var ce channelEnvelope
			c.expect(t, http.StatusOK, &ce, get, channelPath(general.ID), a()...)
			return ce.Channel.TotalMessages == int64(len(h)) && ce.Channel.LastMessageAt != nil,
				fmt.Sprintf("total_messages %d (want %d), last_message_at %v", ce.Channel.TotalMessages, len(h), ce.Channel.LastMessageAt)
		})
	})

	step(t, "presence: busy by heartbeat, offline when the last session closes", func(t *testing.T) {
		m := dash.mark()
		scoutWS.send(t, realtimev1.Heartbeat(realtimev1.StatusBusy))
		agentStatus(t, c, alice, tenantA, scout, "busy", 15*time.Second)
		waitEvent(t, dash, m, "agents.status", "status", "busy")
		second := dialWS(t, t, base, "scout 2", wsAuth{token: scoutTok})
		scoutWS.close()
		// One session left, which reports nothing: online, not offline.
		agentStatus(t, c, alice, tenantA, scout, "online", 15*time.Second)
		m = dash.mark()
		second.close()
		agentStatus(t, c, alice, tenantA, scout, "offline", 15*time.Second)
		waitEvent(t, dash, m, "agents.status", "status", "offline")
		scoutWS = dialWS(t, story, base, "scout 3", wsAuth{token: scoutTok})
		agentStatus(t, c, alice, tenantA, scout, "online", 15*time.Second)
	})

	step(t, "channel events and a deleted channel", func(t *testing.T) {
		m := dash.mark()
		var ce channelEnvelope
		c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", a(jsonBody(map[string]any{"name": "short-lived"}))...)
		temp := ce.Channel.ID
		waitEvent(t, dash, m, "channels.created", "channel_id", temp)
		c.expect(t, http.StatusOK, nil, put, channelPath(temp), a(jsonBody(map[string]any{"name": "still short-lived"}))...)
		waitEvent(t, dash, m, "channels.updated", "channel_id", temp)
		c.expect(t, http.StatusOK, nil, post, channelPath(temp, "/messages"), a(jsonBody(`{"soon":"gone"}`))...)
		dash.subscribe(t, temp)
		courierWS.subscribe(t, temp)
		dm, cm := dash.mark(), courierWS.mark()
		c.expect(t, http.StatusNoContent, nil, del, channelPath(temp), a()...)
		waitEvent(t, dash, m, "channels.deleted", "channel_id", temp)
		for _, x := range []struct {
			s    *wsSession
			mark int
		}{{dash, dm}, {courierWS, cm}} {
			f, _ := x.s.waitFrame(t, x.mark, "unsubscribed channel_deleted", 10*time.Second, func(f wsFrame) bool {
				return f.Type == realtimev1.TypeUnsubscribed && f.ChannelID == temp
			})
			if f.Reason != realtimev1.ReasonChannelDeleted {
				t.Fatalf("%s: %s, want reason channel_deleted", x.s.name, f)
			}
		}
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath(temp), a()...)
		eventually(t, 5*time.Second, "publishing to the deleted channel is 404", func() (bool, string) {
			r := c.do(t, post, channelPath(temp, "/messages"), a(jsonBody(`{"late":1}`))...)
			return r.Status == http.StatusNotFound, r.String()
		})
		c.expectError(t, http.StatusNotFound, "not_found", get, channelPath(temp, "/messages"), a()...)
		m = courierWS.mark()
		courierWS.send(t, realtimev1.Subscribe("gone", temp))
		courierWS.expectReply(t, m, "gone", realtimev1.TypeError, "not_found")
	})

	step(t, "tenant isolation: whatever ids tenant B sends", func(t *testing.T) {
		for _, s := range []*wsSession{bobWS, spyWS} {
			m := s.mark()
			for i, id := range []string{general.ID, strings.ToLower(general.ID), private.ID, "*", ">", "tenant." + tenantA + ".channel." + general.ID,
				general.ID + ".live", tenantA, "../" + general.ID, ""} {
				fid := fmt.Sprintf("x-%d", i)
				s.send(t, realtimev1.Subscribe(fid, id))
				if f := s.reply(t, m, fid); f.Type != realtimev1.TypeError {
					t.Fatalf("%s subscribed to %q of tenant A: %s", s.name, id, f)
				}
				pid := fmt.Sprintf("p-%d", i)
				s.send(t, realtimev1.Publish(pid, id, json.RawMessage(`{"intruder":true}`)))
				if f := s.reply(t, m, pid); f.Type != realtimev1.TypeError {
					t.Fatalf("%s published to %q of tenant A: %s", s.name, id, f)
				}
			}
			// since_seq into another tenant's channel is not found either.
			s.send(t, realtimev1.SubscribeSince("since", general.ID, 0))
			s.expectReply(t, m, "since", realtimev1.TypeError, "not_found")
		}
		c.expectError(t, http.StatusNotFound, "not_found", post, channelPath(general.ID, "/messages"), bearer(spyTok), jsonBody(`{"a":1}`))
		c.expectError(t, http.StatusForbidden, "forbidden", post, channelPath(general.ID, "/messages"), bearer(spyTok), tenantHeader(tenantA), jsonBody(`{"a":1}`))
		// Tenant B's own traffic reaches B and never A.
		am := dash.mark()
		bm := bobWS.mark()
		var p publishedJSON
		c.expect(t, http.StatusOK, &p, post, channelPath(bRoom.ID, "/messages"), as(bob, tenantB, jsonBody(`{"b":"only"}`))...)
		bobWS.waitMessages(t, bm, bRoom.ID, 1, 10*time.Second)
		m := dash.mark()
		dash.send(t, realtimev1.Subscribe("b-room", bRoom.ID))
		dash.expectReply(t, m, "b-room", realtimev1.TypeError, "not_found")
		c.expect(t, http.StatusOK, nil, post, channelPath(general.ID, "/messages"), a(jsonBody(`{"after":"b"}`))...)
		dash.waitMessages(t, am, general.ID, 1, 10*time.Second)
		for _, f := range dash.since(am) {
			// (The not_found reply above echoes the id the dashboard itself sent.)
			if f.Type != realtimev1.TypeError && (f.TenantID == tenantB || f.ChannelID == bRoom.ID) {
				t.Fatalf("tenant A's dashboard received %s", f)
			}
		}
	})

	step(t, "1,000 messages in a burst reach each of 10 subscribers, in order", func(t *testing.T) {
		var ce channelEnvelope
		c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", a(jsonBody(map[string]any{"name": "burst"}))...)
		burst := ce.Channel.ID
		subs := make([]*wsSession, 10)
		marks := make([]int, len(subs))
		for i := range subs {
			subs[i] = dialWS(t, t, base, fmt.Sprintf("burst-%d", i), wsAuth{token: alice, tenant: tenantA})
			subs[i].subscribe(t, burst)
			marks[i] = subs[i].mark()
		}
		const n = 1000
		acked := make(chan uint64, n)
		var wg sync.WaitGroup
		work := make(chan int)
		pc := newClient(base)
		for range 8 {
			wg.Go(func() {
				for i := range work {
					var p publishedJSON
					r, err := pc.try(post, channelPath(burst, "/messages"), a(jsonBody(fmt.Sprintf(`{"burst":%d}`, i)))...)
					if err != nil || r.Status != http.StatusOK || r.decode(&p) != nil {
						t.Errorf("burst publish %d: %v %s", i, err, r)
						continue
					}
					acked <- p.Seq
				}
			})
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		close(acked)
		if t.Failed() {
			t.FailNow()
		}
		var want []uint64
		for s := range acked {
			want = append(want, s)
		}
		slices.Sort(want)
		for i, s := range subs {
			fs := s.waitMessages(t, marks[i], burst, n, 30*time.Second)
			if got := seqsOf(fs); !slices.Equal(got, want) {
				t.Fatalf("%s: %d messages, in order %v; want the %d acknowledged seqs in order", s.name, len(got), slices.IsSorted(got), n)
			}
		}
		for _, s := range subs {
			s.close()
		}
	})

	step(t, "tenant B never saw anything of tenant A", func(t *testing.T) {
		for _, s := range []*wsSession{bobWS, spyWS} {
			for _, f := range s.since(0) {
				// Error frames may echo what the session itself sent (ids of tenant A).
				echo := f.Type == realtimev1.TypeError
				if f.TenantID == tenantA || (f.Event != nil && f.Event.TenantID != tenantB) ||
					(!echo && bytes.Contains(f.raw, []byte(tenantA))) ||
					(f.Type == realtimev1.TypeMessage && f.ChannelID != bRoom.ID) {
					t.Fatalf("%s received %s", s.name, f)
				}
			}
			if closed, err := s.closed(); closed {
				t.Fatalf("%s was closed: %v", s.name, err)
			}
		}
	})

	step(t, "history returns data byte for byte", func(t *testing.T) {
		if len(reencoded) > 0 {
			t.Fatalf("SPEC §13: a message's data is stored and delivered as the same JSON text, but GET "+
				"…/messages re-encoded it (%d of the messages checked), e.g.\n%s", len(reencoded), reencoded[0])
		}
	})
}
