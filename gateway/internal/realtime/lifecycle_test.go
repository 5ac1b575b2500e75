package realtime_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// TestSlowConsumer: a subscriber that stops reading is closed with 4008 once its queue
// overflows, while a fast subscriber of the same channel keeps receiving everything.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, realtime.Config{QueueFrames: 16})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	tok := e.userToken("alice", time.Hour)

	fast, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	fast.subscribe(ch)
	// The slow one subscribes, then its test reader stops: nothing is read from its socket.
	slow, _, err := e.dial(bearer(tok), withHeader("X-Tenant-Id", tenant))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, b, err := slow.c.Read(ctx); err != nil || !strings.Contains(string(b), `"connected"`) {
		t.Fatalf("connected: %s %v", b, err)
	}
	slow.sendRaw(websocket.MessageText, []byte(`{"type":"subscribe","channel_id":"`+ch+`"}`))
	if _, b, err := slow.c.Read(ctx); err != nil || !strings.Contains(string(b), `"subscribed"`) {
		t.Fatalf("subscribed: %s %v", b, err)
	}

	// Enough bytes to fill the socket buffers on both sides, then the 16-frame queue. The
	// fast subscriber reads each message before the next is published, so it is never
	// behind however slow the machine (-race, shared cores) is.
	payload := `{"pad":"` + strings.Repeat("x", 60<<10) + `"}`
	const n = 400
	var last uint64
	for i := range n {
		e.publish(tenant, ch, "alice", payload)
		f := fast.expect(realtimev1.TypeMessage)
		if f.Seq <= last {
			t.Fatalf("fast subscriber: message %d out of order", i)
		}
		last = f.Seq
	}
	// Now the slow one reads: what was in flight, then the close.
	if code := slow.closed(); code != realtimev1.CloseSlowConsumer {
		t.Fatalf("slow subscriber closed with %d, want 4008", code)
	}
	// The fast one is unaffected.
	e.publish(tenant, ch, "alice", `{"after":true}`)
	fast.expect(realtimev1.TypeMessage)
}

// TestSubscriptionCap: at most 100 channels per session.
func TestSubscriptionCap(t *testing.T) {
	e := newEnv(t, realtime.Config{FramesPerSecond: 10_000}) // 100 subscribes in a row
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	var chans []string
	for range realtimev1.MaxSubscriptions {
		ch := e.channel(tenant, channelv1.TypePublic)
		chans = append(chans, ch)
		c.subscribe(ch)
	}
	extra := e.channel(tenant, channelv1.TypePublic)
	c.send(realtimev1.Subscribe("over", extra))
	if f := c.expectError(realtimev1.CodeTooManySubscriptions); f.ID != "over" {
		t.Fatalf("error %+v", f)
	}
	// Re-subscribing to one it has is still fine; after an unsubscribe there is room.
	c.subscribe(chans[0])
	c.send(realtimev1.Unsubscribe("u", chans[1]))
	if f := c.expect(realtimev1.TypeUnsubscribed); f.ChannelID != chans[1] || f.ID != "u" {
		t.Fatalf("unsubscribed %+v", f)
	}
	c.subscribe(extra)
	// The unsubscribed channel's messages no longer come; the new one's do.
	e.publish(tenant, chans[1], "alice", `{"gone":true}`)
	m := e.publish(tenant, extra, "alice", `{"here":true}`)
	if f := c.expect(realtimev1.TypeMessage); f.Seq != m.Seq {
		t.Fatalf("got seq %d, want %d", f.Seq, m.Seq)
	}
}

// TestFrameRateLimit: frames over the rate get error rate_limited; a client that keeps
// exceeding it for RateLimitStrikes seconds is closed with 4029.
func TestFrameRateLimit(t *testing.T) {
	e := newEnv(t, realtime.Config{FramesPerSecond: 5})
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	for i := range 8 {
		c.send(realtimev1.Ping(string(rune('a' + i))))
	}
	pongs, limited := 0, 0
	for range 8 {
		r := c.next()
		switch {
		case r.f.Type == realtimev1.TypePong:
			pongs++
		case r.f.Type == realtimev1.TypeError && r.f.Code == natsrpc.CodeRateLimited && r.f.ID != "":
			limited++
		default:
			t.Fatalf("unexpected %s", r.raw)
		}
	}
	if limited == 0 || pongs+limited != 8 || pongs > 5 {
		t.Fatalf("%d pongs and %d rate_limited errors for 8 pings at 5/s", pongs, limited)
	}
	// Keep flooding: closed with 4029 after a few seconds over the limit.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := c.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`))
			cancel()
			if err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if code := c.closed(); code != realtimev1.CloseRateLimited {
		t.Fatalf("closed with %d, want 4029", code)
	}
	<-done
}

// TestChannelDeleted: a deleted channel's subscribers get unsubscribed {reason:
// channel_deleted}; other channels go on.
func TestChannelDeleted(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	doomed := e.channel(tenant, channelv1.TypePublic)
	kept := e.channel(tenant, channelv1.TypePublic)
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c.subscribe(doomed)
	c.subscribe(kept)
	c.send(realtimev1.SubscribeEvents("ev"))
	if f := c.expect(realtimev1.TypeSubscribed); !f.Events || f.ID != "ev" {
		t.Fatalf("subscribed %+v", f)
	}
	e.deleteChannel(tenant, doomed)
	var unsub, event bool
	for !unsub || !event {
		r := c.next()
		switch r.f.Type {
		case realtimev1.TypeUnsubscribed:
			if r.f.ChannelID != doomed || r.f.Reason != realtimev1.ReasonChannelDeleted {
				t.Fatalf("unsubscribed %s", r.raw)
			}
			unsub = true
		case realtimev1.TypeEvent: // subscribe_events sees the channel lifecycle too
			if r.f.Event == nil || r.f.Event.Type != "channels.deleted" || r.f.Event.TenantID != tenant {
				t.Fatalf("event %s", r.raw)
			}
			var ref eventsv1.ChannelRef
			if err := json.Unmarshal(r.f.Event.Data, &ref); err != nil || ref.ChannelID != doomed {
				t.Fatalf("event data %s", r.raw)
			}
			event = true
		default:
			t.Fatalf("unexpected %s", r.raw)
		}
	}
	m := e.publish(tenant, kept, "alice", `{"still":"here"}`)
	if f := c.expect(realtimev1.TypeMessage); f.Seq != m.Seq {
		t.Fatalf("seq %d, want %d", f.Seq, m.Seq)
	}
	// Subscribing to it again: not found.
	c.send(realtimev1.Subscribe("again", doomed))
	c.expectError(natsrpc.CodeNotFound)
}

// TestRevocation: the events that revoke a credential close its sessions with 4003,
// and only those.
func TestRevocation(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	other, _ := e.tenant("zed", plans.Pro)
	e.setRole(tenant, "mallory", natsrpc.RoleMember)
	e.setRole(tenant, "victor", natsrpc.RoleMember)

	agentA, keyA := newID(), newID()
	agentB, keyB := newID(), newID()
	sessA, _ := e.connect(bearer(e.agentToken(tenant, agentA, keyA, time.Hour)))
	sessB, _ := e.connect(bearer(e.agentToken(tenant, agentB, keyB, time.Hour)))
	mallory, _ := e.connect(bearer(e.userToken("mallory", time.Hour)), withHeader("X-Tenant-Id", tenant))
	victor, _ := e.connect(bearer(e.userToken("victor", time.Hour)), withHeader("X-Tenant-Id", tenant))
	bystander, _ := e.connect(bearer(e.userToken("zed", time.Hour)), withHeader("X-Tenant-Id", other))

	// A revoked key closes the sessions of tokens minted with it.
	e.fake.revokeKey(tenant, agentA, keyA)
	e.notify(sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{TenantID: tenant, KeyID: keyA, AgentID: agentA, Change: sshkeyv1.ChangeRevoked})
	if code := sessA.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("revoked key: closed with %d, want 4003", code)
	}
	// A deleted agent.
	e.notify(agentv1.SubjectAgentChanged, agentv1.AgentChanged{TenantID: tenant, AgentID: agentB, Change: agentv1.ChangeDeleted})
	if code := sessB.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("deleted agent: closed with %d, want 4003", code)
	}
	// A removed member: the session re-checks and is closed; a demoted one stays, with
	// the new role (a viewer may not publish any more).
	e.setRole(tenant, "mallory", "")
	e.setRole(tenant, "victor", natsrpc.RoleViewer)
	e.notify(tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenant, Change: tenantv1.ChangeMembers})
	if code := mallory.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("removed member: closed with %d, want 4003", code)
	}
	ch := e.channel(tenant, channelv1.TypePublic)
	eventually(t, "the demotion reaches the session", func() bool {
		victor.send(realtimev1.Publish("p", ch, json.RawMessage(`{"a":1}`)))
		r := victor.next()
		if r.f.Type == realtimev1.TypeError && r.f.Code == natsrpc.CodeForbidden {
			return true
		}
		if r.f.Type != realtimev1.TypeAck {
			t.Fatalf("unexpected %s", r.raw)
		}
		return false
	})
	// A suspended tenant.
	e.fake.mu.Lock()
	e.fake.tenants[tenant].status = tenantv1.StatusSuspended
	e.fake.mu.Unlock()
	e.notify(tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenant, Change: tenantv1.ChangeStatus})
	if code := victor.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("suspended tenant: closed with %d, want 4003", code)
	}
	// Another tenant's session never noticed.
	bystander.send(realtimev1.Ping("still"))
	bystander.expect(realtimev1.TypePong)
	// A deleted tenant.
	e.notify(tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: other, Change: tenantv1.ChangeDeleted})
	if code := bystander.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("deleted tenant: closed with %d, want 4003", code)
	}
}

// TestRecheckWithoutEvents: a revocation whose event was lost still closes the session
// at the next periodic re-check.
func TestRecheckWithoutEvents(t *testing.T) {
	e := newEnv(t, realtime.Config{RecheckEvery: 200 * time.Millisecond})
	tenant, _ := e.tenant("alice", plans.Pro)
	agent, key := newID(), newID()
	c, _ := e.connect(bearer(e.agentToken(tenant, agent, key, time.Hour)))
	e.fake.revokeKey(tenant, agent, key) // no event: the cached answer lives ≤ 5 s
	if code := c.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("closed with %d, want 4003", code)
	}
}

// TestTokenExpiry: a session ends with 4001 when its token expires.
func TestTokenExpiry(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.userToken("alice", 2*time.Second)), withHeader("X-Tenant-Id", tenant))
	if code := c.closed(); code != realtimev1.CloseTokenExpired {
		t.Fatalf("closed with %d, want 4001", code)
	}
}

// TestIdleTimeout: nothing at all (no frame, no pong) for IdleTimeout → 4000.
func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, realtime.Config{IdleTimeout: time.Second, PingEvery: time.Hour})
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.agentToken(tenant, newID(), newID(), time.Hour)))
	if code := c.closed(); code != realtimev1.CloseIdleTimeout {
		t.Fatalf("closed with %d, want 4000", code)
	}
}

// TestPongsKeepAlive: server pings answered by the client library keep a silent session
// open past IdleTimeout.
func TestPongsKeepAlive(t *testing.T) {
	e := newEnv(t, realtime.Config{IdleTimeout: 1500 * time.Millisecond, PingEvery: 150 * time.Millisecond})
	tenant, _ := e.tenant("alice", plans.Pro)
	c, _ := e.connect(bearer(e.agentToken(tenant, newID(), newID(), time.Hour)))
	time.Sleep(4 * time.Second) // well past IdleTimeout, with no frame from the client
	c.send(realtimev1.Ping("alive"))
	c.expect(realtimev1.TypePong)
}

// TestShutdown: the hub's shutdown closes every session with 1001 after what was queued,
// and refuses new upgrades.
func TestShutdown(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	tok := e.userToken("alice", time.Hour)
	a, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	b, _ := e.connect(bearer(e.agentToken(tenant, newID(), newID(), time.Hour)))
	a.subscribe(ch)
	m := e.publish(tenant, ch, "alice", `{"last":"words"}`)
	if f := a.expect(realtimev1.TypeMessage); f.Seq != m.Seq {
		t.Fatalf("seq %d", f.Seq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, c := range []*client{a, b} {
		if code := c.closed(); code != websocket.StatusGoingAway {
			t.Fatalf("closed with %d, want 1001", code)
		}
	}
	if n := e.hub.Sessions(); n != 0 {
		t.Fatalf("%d sessions after shutdown", n)
	}
	e.refused(503, natsrpc.CodeServiceUnavailable, bearer(tok), withHeader("X-Tenant-Id", tenant))
}

// TestHistoryTruncated: since_seq pointing before messages that are no longer stored
// gets error history_truncated with first_seq before the replay.
func TestHistoryTruncated(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	var seqs []uint64
	for i := range 10 {
		seqs = append(seqs, e.publish(tenant, ch, "alice", `{"i":`+string(rune('0'+i))+`}`).Seq)
	}
	// Trim the channel to its last 4 messages, as the channel service does.
	ctx := context.Background()
	if err := e.stream.Purge(ctx, jsPurgeKeep(tenant, ch, 4)...); err != nil {
		t.Fatal(err)
	}
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c.send(realtimev1.SubscribeSince("h", ch, seqs[2]))
	c.expect(realtimev1.TypeSubscribed)
	f := c.expectError(realtimev1.CodeHistoryTruncated)
	if f.FirstSeq == nil || *f.FirstSeq != seqs[6] || f.ChannelID != ch {
		t.Fatalf("history_truncated %+v, want first_seq %d", f, seqs[6])
	}
	for _, want := range seqs[6:] {
		if m := c.expect(realtimev1.TypeMessage); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
	// Since a message that is still stored: no error, just the rest.
	c2, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c2.send(realtimev1.SubscribeSince("h2", ch, seqs[7]))
	c2.expect(realtimev1.TypeSubscribed)
	for _, want := range seqs[8:] {
		if m := c2.expect(realtimev1.TypeMessage); m.Seq != want {
			t.Fatalf("seq %d, want %d", m.Seq, want)
		}
	}
}

// TestEvents: subscribe_events streams the tenant's events (users and API keys), never
// another tenant's; agent tokens may not subscribe.
func TestEvents(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	a, aKey := e.tenant("alice", plans.Pro)
	b, _ := e.tenant("bob", plans.Pro)
	dash, _ := e.connect(withHeader("X-Api-Key", aKey))
	other, _ := e.connect(bearer(e.userToken("bob", time.Hour)), withHeader("X-Tenant-Id", b))
	for _, c := range []*client{dash, other} {
		c.send(realtimev1.SubscribeEvents("e"))
		c.expect(realtimev1.TypeSubscribed)
	}
	agent, _ := e.connect(bearer(e.agentToken(a, newID(), newID(), time.Hour)))
	agent.send(realtimev1.SubscribeEvents("e"))
	agent.expectError(natsrpc.CodeForbidden)

	status := func(tenant, agentID, st string) {
		data, _ := json.Marshal(eventsv1.AgentStatus{AgentID: agentID, Status: st})
		ev, _ := json.Marshal(eventsv1.Event{Type: "agents.status", TenantID: tenant, Timestamp: time.Now().UTC(), Data: data})
		if err := e.nc.Publish(eventsv1.Subject(tenant, eventsv1.EntityAgents, eventsv1.ActionStatus), ev); err != nil {
			t.Fatal(err)
		}
	}
	status(a, "01JBAGENTOFTENANTA00000000", "busy")
	status(b, "01JBAGENTOFTENANTB00000000", "idle")
	f := dash.expect(realtimev1.TypeEvent)
	var st eventsv1.AgentStatus
	if f.Event.Type != "agents.status" || f.Event.TenantID != a || json.Unmarshal(f.Event.Data, &st) != nil || st.Status != "busy" {
		t.Fatalf("event %+v", f.Event)
	}
	if f := other.expect(realtimev1.TypeEvent); f.Event.TenantID != b {
		t.Fatalf("tenant B's dashboard got %+v", f.Event)
	}
	dash.send(realtimev1.ClientFrame{Type: realtimev1.TypeUnsubscribeEvents, ID: "u"})
	if f := dash.expect(realtimev1.TypeUnsubscribed); !f.Events || f.ID != "u" {
		t.Fatalf("unsubscribed %+v", f)
	}
	status(a, "01JBAGENTOFTENANTA00000000", "idle")
	dash.send(realtimev1.Ping("p"))
	dash.expect(realtimev1.TypePong)
}

// TestAPIKeyRotation: a rotated API key's sessions are closed with 4003.
func TestAPIKeyRotation(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, key := e.tenant("alice", plans.Pro)
	c, _ := e.connect(withHeader("X-Api-Key", key))
	e.fake.mu.Lock()
	e.fake.tenants[tenant].keyHash = "rotated"
	e.fake.mu.Unlock()
	e.notify(tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenant, Change: tenantv1.ChangeAPIKey})
	if code := c.closed(); code != realtimev1.CloseRevoked {
		t.Fatalf("closed with %d, want 4003", code)
	}
}
