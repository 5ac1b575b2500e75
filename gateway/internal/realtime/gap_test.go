package realtime_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// setRePublish turns the stream's republish off or on again. With it off a message is
// stored but never reaches the live subject: exactly what a live message lost on the
// way (a NATS node or route that failed while forwarding it) looks like to a gateway.
func (e *env) setRePublish(on bool) {
	e.t.Helper()
	cfg := messagev1.StreamConfig(1)
	if !on {
		cfg.RePublish = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		e.t.Fatalf("update stream (republish %v): %v", on, err)
	}
}

// expectSeqs reads message frames of channel ch and requires exactly seqs, in order.
func (c *client) expectSeqs(who, ch string, seqs ...uint64) {
	c.t.Helper()
	for i, want := range seqs {
		r := c.next()
		if r.f.Type != realtimev1.TypeMessage || r.f.ChannelID != ch || r.f.Seq != want {
			c.t.Fatalf("%s: frame %d is %s, want the message of seq %d (all wanted: %v)", who, i, r.raw, want, seqs)
		}
	}
}

// TestLiveGapIsReadBack: messages stored but never delivered live (republish off for
// them) are read back from the stream when the next live message names a later
// predecessor (Nats-Last-Sequence), for a subscription whose position is known either
// way: since_seq given, or a message already sent. Each session gets every message once,
// in seq order, the lost ones included; later live messages follow with no duplicate.
func TestLiveGapIsReadBack(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	noise := e.channel(tenant, channelv1.TypePublic) // interleaved seqs of another channel
	tok := e.userToken("alice", time.Hour)

	plain, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	plain.subscribe(ch) // no since_seq: its position is known once a message is sent
	since, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	since.send(realtimev1.SubscribeSince("s", ch, 0)) // the empty channel: live at once
	since.expect(realtimev1.TypeSubscribed)

	first := e.publish(tenant, ch, "alice", `{"i":0}`).Seq
	plain.expectSeqs("plain", ch, first)
	since.expectSeqs("since_seq", ch, first)

	e.setRePublish(false)
	var lost []uint64
	for i := 1; i <= 3; i++ {
		lost = append(lost, e.publish(tenant, ch, "alice", fmt.Sprintf(`{"i":%d}`, i)).Seq)
		e.publish(tenant, noise, "alice", `{"noise":true}`)
	}
	e.setRePublish(true)

	// The next live message reveals the gap; later ones queue behind its repair.
	var after []uint64
	for i := 4; i <= 6; i++ {
		after = append(after, e.publish(tenant, ch, "alice", fmt.Sprintf(`{"i":%d}`, i)).Seq)
	}
	want := append(append([]uint64{}, lost...), after...)
	plain.expectSeqs("plain", ch, want...)
	since.expectSeqs("since_seq", ch, want...)

	// Live again, nothing repeated: the next frame of each is the next message.
	next := e.publish(tenant, ch, "alice", `{"i":7}`).Seq
	plain.expectSeqs("plain", ch, next)
	since.expectSeqs("since_seq", ch, next)
}

// TestLiveWithoutSinceSeqReplaysNothing: a subscription without since_seq has no
// position in the channel, so its first live message, whose predecessor it never saw,
// is not a gap: the stored history is not replayed. A message lost after that is.
func TestLiveWithoutSinceSeqReplaysNothing(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	for i := range 5 {
		e.publish(tenant, ch, "alice", fmt.Sprintf(`{"old":%d}`, i))
	}
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c.subscribe(ch)

	firstLive := e.publish(tenant, ch, "alice", `{"i":0}`).Seq
	c.expectSeqs("session without since_seq", ch, firstLive)
	second := e.publish(tenant, ch, "alice", `{"i":1}`).Seq
	c.expectSeqs("session without since_seq", ch, second)

	// From its first message on, its position is known: a loss now is read back.
	e.setRePublish(false)
	lost := e.publish(tenant, ch, "alice", `{"i":2}`).Seq
	e.setRePublish(true)
	third := e.publish(tenant, ch, "alice", `{"i":3}`).Seq
	c.expectSeqs("session without since_seq", ch, lost, third)
}

// A session subscribed without since_seq starts at the channel's last stored message, so
// a message lost live before its first delivery is read back too (and nothing older).
func TestLiveGapBeforeTheFirstMessage(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	for i := range 3 {
		e.publish(tenant, ch, "alice", fmt.Sprintf(`{"old":%d}`, i))
	}
	c, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	c.subscribe(ch)

	e.setRePublish(false)
	lost := e.publish(tenant, ch, "alice", `{"i":0}`).Seq
	e.setRePublish(true)
	next := e.publish(tenant, ch, "alice", `{"i":1}`).Seq
	c.expectSeqs("session without since_seq", ch, lost, next)
}
