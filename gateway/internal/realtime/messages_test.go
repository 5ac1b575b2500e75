package realtime_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// TestPublishAndReceive: a publish frame is acked with the stored message's id and seq;
// every subscriber (the publisher's own session included) gets the same message object,
// data byte for byte; an idempotent repeat acks the first result and stores nothing.
func TestPublishAndReceive(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	alice := e.userToken("alice", time.Hour)
	pubC, _ := e.connect(bearer(alice), withHeader("X-Tenant-Id", tenant))
	subC, _ := e.connect(bearer(alice), withHeader("X-Tenant-Id", tenant))
	pubC.subscribe(ch)
	subC.subscribe(ch)

	// Sent as raw text: encoding/json would compact and HTML-escape a RawMessage.
	data := `{"n": 12345678901234567890, "x": 1e400, "s": "<b>&\u00e9</b>", "nested": {"a": [1, 2.50]}}`
	pubC.sendRaw(websocket.MessageText, []byte(`{"type":"publish","id":"m1","channel_id":"`+ch+`","idempotency_key":"k-1","data":`+data+`}`))
	var ack realtimev1.ServerFrame
	var mine received
	for ack.Type == "" || mine.f.Type == "" { // the ack and the message may come in either order
		r := pubC.next()
		switch r.f.Type {
		case realtimev1.TypeAck:
			ack = r.f
		case realtimev1.TypeMessage:
			mine = r
		default:
			t.Fatalf("unexpected frame %s", r.raw)
		}
	}
	if ack.ID != "m1" || ack.MessageID == "" || ack.Seq == 0 || ack.Timestamp.IsZero() || ack.Replayed {
		t.Fatalf("ack %+v", ack)
	}
	other := subC.next()
	for _, r := range []received{mine, other} {
		m := r.f.Message()
		if m.MessageID != ack.MessageID || m.Seq != ack.Seq || m.ChannelID != ch || m.TenantID != tenant ||
			m.Sender != (messagev1.Sender{Type: messagev1.SenderUser, ID: "alice"}) || !m.Timestamp.Equal(ack.Timestamp) {
			t.Fatalf("message %s does not match ack %+v", r.raw, ack)
		}
		if !bytes.Contains(r.raw, []byte(`"data":`+data+`}`)) {
			t.Fatalf("data not byte for byte: %s", r.raw)
		}
	}
	// Idempotent repeat: the first result, nothing new stored or delivered.
	pubC.send(realtimev1.ClientFrame{Type: realtimev1.TypePublish, ID: "m2", ChannelID: ch, Data: json.RawMessage(`{"other":1}`), IdempotencyKey: "k-1"})
	again := pubC.expect(realtimev1.TypeAck)
	if again.ID != "m2" || again.MessageID != ack.MessageID || again.Seq != ack.Seq || !again.Replayed {
		t.Fatalf("replayed ack %+v, first %+v", again, ack)
	}
	pubC.send(realtimev1.Ping("sync"))
	pubC.expect(realtimev1.TypePong) // no message frame in between: nothing was published
}

// TestPublishRules: the publish checks are the REST ones (the same publisher): viewers
// 403, unknown channel 404, agents in private channels need publisher or admin.
func TestPublishRules(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	e.setRole(tenant, "victor", natsrpc.RoleViewer)
	pub := e.channel(tenant, channelv1.TypePublic)
	priv := e.channel(tenant, channelv1.TypePrivate)
	agent := newID()
	e.grant(tenant, priv, agent, channelv1.RoleSubscriber)

	viewer, _ := e.connect(bearer(e.userToken("victor", time.Hour)), withHeader("X-Tenant-Id", tenant))
	viewer.subscribe(pub) // viewers read
	viewer.send(realtimev1.Publish("v1", pub, json.RawMessage(`{"a":1}`)))
	if f := viewer.expectError(natsrpc.CodeForbidden); f.ID != "v1" {
		t.Fatalf("viewer publish error %+v", f)
	}

	ag, _ := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)))
	ag.subscribe(priv) // any role reads
	ag.send(realtimev1.Publish("a1", priv, json.RawMessage(`{"a":1}`)))
	ag.expectError(natsrpc.CodeForbidden)
	ag.send(realtimev1.Publish("a2", newID(), json.RawMessage(`{"a":1}`)))
	ag.expectError(natsrpc.CodeNotFound)
	e.grant(tenant, priv, agent, channelv1.RolePublisher)
	e.channels.ForgetRole(tenant, priv, agent) // what the gateway does when it adds a subscription
	ag.send(realtimev1.Publish("a3", priv, json.RawMessage(`{"a":1}`)))
	for {
		r := ag.next()
		if r.f.Type == realtimev1.TypeAck {
			if r.f.ID != "a3" {
				t.Fatalf("ack %s", r.raw)
			}
			break
		}
		if r.f.Type != realtimev1.TypeMessage {
			t.Fatalf("unexpected %s", r.raw)
		}
	}

	// A private channel without any subscription record: not even reading.
	other := newID()
	ag2, _ := e.connect(bearer(e.agentToken(tenant, other, newID(), time.Hour)))
	ag2.send(realtimev1.Subscribe("s1", priv))
	if f := ag2.expectError(natsrpc.CodeForbidden); f.ID != "s1" {
		t.Fatalf("error %+v", f)
	}
}

// TestTenantIsolation: a session of tenant B that names tenant A's channel ids in every
// frame is told "not found" and receives nothing of A, while A's own session does.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	a, _ := e.tenant("alice", plans.Pro)
	b, bKey := e.tenant("bob", plans.Pro)
	aCh := e.channel(a, channelv1.TypePublic)
	bCh := e.channel(b, channelv1.TypePublic)

	aliceC, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", a))
	aliceC.subscribe(aCh)
	bAgent := newID()
	bSessions := []*client{}
	for _, opt := range [][]dialOpt{
		{bearer(e.userToken("bob", time.Hour)), withHeader("X-Tenant-Id", b)},
		{withHeader("X-Api-Key", bKey)},
		{bearer(e.agentToken(b, bAgent, newID(), time.Hour))},
	} {
		c, f := e.connect(opt...)
		if f.TenantID != b {
			t.Fatalf("connected to %s, want %s", f.TenantID, b)
		}
		c.subscribe(bCh)
		// Every way of naming A's channel: subscribe (plain, replay), publish, unsubscribe.
		c.send(realtimev1.Subscribe("x1", aCh))
		c.expectError(natsrpc.CodeNotFound)
		c.send(realtimev1.SubscribeSince("x2", aCh, 0))
		c.expectError(natsrpc.CodeNotFound)
		c.send(realtimev1.Publish("x3", aCh, json.RawMessage(`{"evil":true}`)))
		c.expectError(natsrpc.CodeNotFound)
		c.send(realtimev1.Unsubscribe("x4", aCh))
		c.expect(realtimev1.TypeUnsubscribed)
		bSessions = append(bSessions, c)
	}

	// A publishes; then B publishes a sentinel. B's sessions see only the sentinel.
	e.publish(a, aCh, "alice", `{"secret":"of A"}`)
	if r := aliceC.next(); r.f.Type != realtimev1.TypeMessage || r.f.TenantID != a {
		t.Fatalf("A's own session: %s", r.raw)
	}
	sentinel := e.publish(b, bCh, "bob", `{"sentinel":true}`)
	for _, c := range bSessions {
		r := c.next()
		if r.f.Type != realtimev1.TypeMessage || r.f.MessageID != sentinel.MessageID || r.f.TenantID != b {
			t.Fatalf("B's session got %s before its sentinel", r.raw)
		}
	}
	// And nothing of A's straggles in afterwards either.
	time.Sleep(200 * time.Millisecond)
	for _, c := range bSessions {
		select {
		case r := <-c.frames:
			t.Fatalf("B's session got %s", r.raw)
		default:
		}
	}
	if len(aliceC.frames) != 0 {
		t.Fatalf("A's session got B's sentinel")
	}
}

// TestBurstToTenSubscribers: 1,000 messages published as fast as possible reach each of
// 10 subscribers, all of them, once, in seq order.
func TestBurstToTenSubscribers(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	tok := e.userToken("alice", time.Hour)
	var subs []*client
	for range 10 {
		c, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
		c.subscribe(ch)
		subs = append(subs, c)
	}
	const n = 1000
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	for w := range 4 { // four concurrent publishers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				seqs[i] = e.publish(tenant, ch, "alice", `{"i":`+strconv.Itoa(i)+`}`).Seq
			}
		}()
	}
	wg.Wait()
	want := map[uint64]bool{}
	for _, s := range seqs {
		want[s] = true
	}
	for k, c := range subs {
		var last uint64
		for i := range n {
			f := c.expect(realtimev1.TypeMessage)
			if f.Seq <= last || !want[f.Seq] {
				t.Fatalf("subscriber %d, message %d: seq %d after %d (dup, disorder or unknown)", k, i, f.Seq, last)
			}
			last = f.Seq
		}
	}
}

// TestReplayThenLive: with since_seq a subscriber gets the stored messages after it, then
// the live ones, while a publisher keeps publishing: every message after since_seq once,
// in seq order, no gap.
func TestReplayThenLive(t *testing.T) {
	e := newEnv(t, realtime.Config{ReplayBatch: 7})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	noise := e.channel(tenant, channelv1.TypePublic) // interleaved seqs of another channel
	tok := e.userToken("alice", time.Hour)

	var mu sync.Mutex
	var published []uint64
	record := func(p messagev1.Published) {
		mu.Lock()
		published = append(published, p.Seq)
		mu.Unlock()
	}
	for i := range 200 {
		record(e.publish(tenant, ch, "alice", fmt.Sprintf(`{"i":%d}`, i)))
		e.publish(tenant, noise, "alice", `{"noise":true}`)
	}
	since := published[49]

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // keeps publishing while the subscriber replays and goes live
		defer close(done)
		for i := 200; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			record(e.publish(tenant, ch, "alice", fmt.Sprintf(`{"i":%d}`, i)))
			e.publish(tenant, noise, "alice", `{"noise":true}`)
		}
	}()

	c, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	c.send(realtimev1.SubscribeSince("r1", ch, since))
	if f := c.expect(realtimev1.TypeSubscribed); f.ID != "r1" {
		t.Fatalf("subscribed %+v", f)
	}
	var got []uint64
	for len(got) < 600 {
		f := c.expect(realtimev1.TypeMessage)
		if f.ChannelID != ch {
			t.Fatalf("message of channel %s", f.ChannelID)
		}
		got = append(got, f.Seq)
	}
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	var want []uint64
	for _, s := range published {
		if s > since {
			want = append(want, s)
		}
	}
	for i, s := range got {
		if i >= len(want) || want[i] != s {
			t.Fatalf("message %d: seq %d, want %d (gap, duplicate or disorder)", i, s, want[min(i, len(want)-1)])
		}
	}
}

// TestReplayWhenChannelIsQuiet: replay of a channel whose history ends before since_seq,
// and since_seq 0 on an empty channel, go live at once.
func TestReplayWhenChannelIsQuiet(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	empty := e.channel(tenant, channelv1.TypePublic)
	first := e.publish(tenant, ch, "alice", `{"i":0}`)
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c.send(realtimev1.SubscribeSince("a", ch, first.Seq))
	c.expect(realtimev1.TypeSubscribed)
	c.send(realtimev1.SubscribeSince("b", empty, 0))
	c.expect(realtimev1.TypeSubscribed)
	second := e.publish(tenant, ch, "alice", `{"i":1}`)
	third := e.publish(tenant, empty, "alice", `{"i":2}`)
	// Order holds within a channel, not across channels.
	got := map[string]uint64{}
	for range 2 {
		f := c.expect(realtimev1.TypeMessage)
		got[f.ChannelID] = f.Seq
	}
	if got[ch] != second.Seq || got[empty] != third.Seq {
		t.Fatalf("got %v, want %s=%d %s=%d", got, ch, second.Seq, empty, third.Seq)
	}
	// A repeated subscribe is harmless.
	c.send(realtimev1.SubscribeSince("c", ch, 0))
	if f := c.expect(realtimev1.TypeSubscribed); f.ID != "c" {
		t.Fatalf("subscribed %+v", f)
	}
	c.send(realtimev1.Ping("p"))
	c.expect(realtimev1.TypePong)
}
