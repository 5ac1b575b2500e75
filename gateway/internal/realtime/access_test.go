package realtime_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// removeSubscription removes an agent's record as the channel service would: the record
// goes, then subscriptions.removed is published (unless lost).
func (e *env) removeSubscription(tenantID, channelID, agentID string, announce bool) {
	e.t.Helper()
	e.fake.mu.Lock()
	delete(e.fake.channels[tenantID+"/"+channelID].roles, agentID)
	e.fake.mu.Unlock()
	if announce {
		e.announce(tenantID, eventsv1.EntitySubscriptions, eventsv1.ActionRemoved, eventsv1.SubscriptionRef{ChannelID: channelID, AgentID: agentID})
	}
}

// setType changes a channel's type as the channel service would, with channels.updated.
func (e *env) setType(tenantID, channelID, typ string) {
	e.t.Helper()
	e.fake.mu.Lock()
	e.fake.channels[tenantID+"/"+channelID].typ = typ
	e.fake.mu.Unlock()
	e.announce(tenantID, eventsv1.EntityChannels, eventsv1.ActionUpdated, eventsv1.ChannelRef{ChannelID: channelID, Type: typ})
}

func (e *env) announce(tenantID, entity, action string, ref any) {
	e.t.Helper()
	data, _ := json.Marshal(ref)
	ev, _ := json.Marshal(eventsv1.Event{Type: entity + "." + action, TenantID: tenantID, Timestamp: time.Now().UTC(), Data: data})
	subject := eventsv1.Subject(tenantID, entity, action)
	before := e.appliedCount(subject)
	if err := e.nc.Publish(subject, ev); err != nil {
		e.t.Fatal(err)
	}
	e.waitApplied(subject, before+1)
}

// quiet checks that nothing is pending for c: a ping's pong is the next frame.
func (c *client) quiet() {
	c.t.Helper()
	id := newID()
	c.send(realtimev1.Ping(id))
	r := c.next()
	if r.f.Type != realtimev1.TypePong || r.f.ID != id {
		c.t.Fatalf("frame %s, want only the pong", r.raw)
	}
}

// expectMessage reads the next frame, a message of channel with seq.
func (c *client) expectMessage(channel string, seq uint64) {
	c.t.Helper()
	f := c.expect(realtimev1.TypeMessage)
	if f.ChannelID != channel || f.Seq != seq {
		c.t.Fatalf("message of %s seq %d, want %s seq %d", f.ChannelID, f.Seq, channel, seq)
	}
}

// expectRevoked reads the next frame: unsubscribed {channel, access_revoked}.
func (c *client) expectRevoked(channel string) {
	c.t.Helper()
	f := c.expect(realtimev1.TypeUnsubscribed)
	if f.ChannelID != channel || f.Reason != realtimev1.ReasonAccessRevoked || f.ID != "" {
		c.t.Fatalf("unsubscribed %+v, want %s access_revoked", f, channel)
	}
}

// TestSubscriptionRemovedRevokesAccess: an agent whose record in a private channel is
// removed loses its live subscription (unsubscribed access_revoked) and receives
// nothing more of it; other agents with records, users and its other channels go on.
func TestSubscriptionRemovedRevokesAccess(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, _ := e.tenant("alice", plans.Pro)
	private := e.channel(tenant, channelv1.TypePrivate)
	public := e.channel(tenant, channelv1.TypePublic)
	doomed, kept := newID(), newID()
	e.grant(tenant, private, doomed, channelv1.RoleSubscriber)
	e.grant(tenant, private, kept, channelv1.RolePublisher)

	a, _ := e.connect(bearer(e.agentToken(tenant, doomed, newID(), time.Hour)), withHeader("X-Tenant-Id", tenant))
	b, _ := e.connect(bearer(e.agentToken(tenant, kept, newID(), time.Hour)), withHeader("X-Tenant-Id", tenant))
	u, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	a.subscribe(private)
	a.subscribe(public)
	b.subscribe(private)
	u.subscribe(private)
	m1 := e.publish(tenant, private, "alice", `{"n":1}`)
	for _, c := range []*client{a, b, u} {
		c.expectMessage(private, m1.Seq)
	}

	e.removeSubscription(tenant, private, doomed, true)
	a.expectRevoked(private)
	// In one tenant's live feed messages arrive in order: had the subscription stayed,
	// m2 would come before m3.
	m2 := e.publish(tenant, private, "alice", `{"n":2}`)
	m3 := e.publish(tenant, public, "alice", `{"n":3}`)
	a.expectMessage(public, m3.Seq)
	a.quiet()
	b.expectMessage(private, m2.Seq)
	b.quiet()
	u.expectMessage(private, m2.Seq)
	u.quiet()
	// Subscribing again is refused now.
	a.send(realtimev1.Subscribe("again", private))
	if f := a.expectError(natsrpc.CodeForbidden); f.ID != "again" {
		t.Fatalf("error %+v", f)
	}
	// Another agent's removal elsewhere changes nothing for b.
	e.removeSubscription(tenant, public, kept, true)
	b.quiet()
}

// TestChannelMadePrivateRevokesAccess: a public channel made private ends the live
// subscriptions of the agents without a record; agents with one, users and API keys
// keep theirs. Back to public, nothing is ended.
func TestChannelMadePrivateRevokesAccess(t *testing.T) {
	e := newEnv(t, realtime.Config{})
	tenant, key := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePublic)
	outsider, member := newID(), newID()
	e.grant(tenant, ch, member, channelv1.RoleSubscriber)

	a, _ := e.connect(bearer(e.agentToken(tenant, outsider, newID(), time.Hour)), withHeader("X-Tenant-Id", tenant))
	b, _ := e.connect(bearer(e.agentToken(tenant, member, newID(), time.Hour)), withHeader("X-Tenant-Id", tenant))
	u, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	k, _ := e.connect(withHeader("x-api-key", key))
	for _, c := range []*client{a, b, u, k} {
		c.subscribe(ch)
	}
	// A flip to public (already public) ends nothing.
	e.setType(tenant, ch, channelv1.TypePublic)
	e.setType(tenant, ch, channelv1.TypePrivate)
	a.expectRevoked(ch)
	m := e.publish(tenant, ch, "alice", `{"secret":true}`)
	a.quiet()
	for _, c := range []*client{b, u, k} {
		c.expectMessage(ch, m.Seq)
		c.quiet()
	}
	// Public again: nobody is unsubscribed, and the outsider may subscribe again.
	e.setType(tenant, ch, channelv1.TypePublic)
	a.subscribe(ch)
	m = e.publish(tenant, ch, "alice", `{"open":true}`)
	for _, c := range []*client{a, b, u, k} {
		c.expectMessage(ch, m.Seq)
		c.quiet()
	}
}

// TestLostAccessEventIsCaughtUp: when the event is lost, the periodic re-check (with
// the channel cache's bounded staleness) still ends the subscription.
func TestLostAccessEventIsCaughtUp(t *testing.T) {
	e := newEnv(t, realtime.Config{RecheckEvery: 100 * time.Millisecond})
	tenant, _ := e.tenant("alice", plans.Pro)
	ch := e.channel(tenant, channelv1.TypePrivate)
	agent := newID()
	e.grant(tenant, ch, agent, channelv1.RoleAdmin)
	a, _ := e.connect(bearer(e.agentToken(tenant, agent, newID(), time.Hour)), withHeader("X-Tenant-Id", tenant))
	u, _ := e.connect(bearer(e.userToken("alice", time.Hour)), withHeader("X-Tenant-Id", tenant))
	a.subscribe(ch)
	u.subscribe(ch)
	e.removeSubscription(tenant, ch, agent, false)
	a.expectRevoked(ch)
	m := e.publish(tenant, ch, "alice", `{"after":true}`)
	a.quiet()
	u.expectMessage(ch, m.Seq)
	u.quiet()
}
