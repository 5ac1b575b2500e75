package realtime

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// tenantHub is one tenant's sessions on this gateway and the routing of its live
// messages and events to them. Every frame it routes comes from a subject under
// tenant.<its id>, and it knows only its own sessions: that is the isolation.
type tenantHub struct {
	hub *Hub
	id  string

	mu       sync.RWMutex
	sessions map[*session]struct{}
	reserved int // admitted upgrades whose session has not started yet

	// channels routes a channel's live messages to its subscribers.
	channels map[string]map[*session]*subscription
	nsubs    int // subscriptions in channels
	live     *liveSub
	// events are the sessions that asked for subscribe_events.
	events   map[*session]struct{}
	eventSub *liveSub
}

// liveSub is one NATS subscription shared by the tenant's sessions. ready is closed once
// the server has confirmed the interest (err says whether it did): a subscribe is
// confirmed to the client only then, so nothing published after "subscribed" is missed.
type liveSub struct {
	sub   *nats.Subscription
	ready chan struct{}
	err   error
}

func newTenantHub(h *Hub, id string) *tenantHub {
	return &tenantHub{hub: h, id: id, sessions: map[*session]struct{}{}, channels: map[string]map[*session]*subscription{}}
}

func (t *tenantHub) sessionList() []*session {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*session, 0, len(t.sessions))
	for s := range t.sessions {
		out = append(out, s)
	}
	return out
}

// addRoute starts routing channel's live messages to sub of s, subscribing the tenant's
// live wildcard first if no session of the tenant had a channel yet, and waits until
// that subscription is confirmed.
func (t *tenantHub) addRoute(s *session, sub *subscription) error {
	t.mu.Lock()
	subs := t.channels[sub.channel]
	if subs == nil {
		subs = map[*session]*subscription{}
		t.channels[sub.channel] = subs
	}
	subs[s] = sub
	t.nsubs++
	if t.live == nil {
		t.live = t.subscribe(messagev1.LiveWildcard(t.id), t.onLive)
	}
	live := t.live
	t.mu.Unlock()
	<-live.ready
	if live.err != nil {
		t.removeRoute(s, sub.channel)
		return live.err
	}
	return nil
}

// removeRoute stops routing channel to s; the last subscription of the tenant drops the
// NATS interest. It reports whether s was subscribed.
func (t *tenantHub) removeRoute(s *session, channel string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	subs := t.channels[channel]
	if _, ok := subs[s]; !ok {
		return false
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(t.channels, channel)
	}
	t.nsubs--
	if t.nsubs == 0 && t.live != nil {
		t.live.stop()
		t.live = nil
	}
	return true
}

// addEvents / removeEvents: the same for subscribe_events.
func (t *tenantHub) addEvents(s *session) error {
	t.mu.Lock()
	if t.events == nil {
		t.events = map[*session]struct{}{}
	}
	t.events[s] = struct{}{}
	if t.eventSub == nil {
		t.eventSub = t.subscribe(eventsv1.TenantWildcard(t.id), t.onEvent)
	}
	ev := t.eventSub
	t.mu.Unlock()
	<-ev.ready
	if ev.err != nil {
		t.removeEvents(s)
		return ev.err
	}
	return nil
}

func (t *tenantHub) removeEvents(s *session) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.events[s]; !ok {
		return false
	}
	delete(t.events, s)
	if len(t.events) == 0 && t.eventSub != nil {
		t.eventSub.stop()
		t.eventSub = nil
	}
	return true
}

// subscribe makes a shared subscription (t.mu held). The flush that confirms it runs on
// its own goroutine: t.mu is not held across a round trip.
func (t *tenantHub) subscribe(subject string, cb func(*liveSub, *nats.Msg)) *liveSub {
	ls := &liveSub{ready: make(chan struct{})}
	sub, err := t.hub.nc.Subscribe(subject, func(m *nats.Msg) { cb(ls, m) })
	if err != nil {
		ls.err = fmt.Errorf("subscribe %s: %w", subject, err)
		close(ls.ready)
		return ls
	}
	// Pending limits far above any burst a gateway sees: routing never blocks, so the
	// queue only holds what arrived while the callback ran.
	_ = sub.SetPendingLimits(1<<20, 256<<20)
	ls.sub = sub
	go func() {
		ls.err = t.hub.nc.Flush()
		close(ls.ready)
	}()
	return ls
}

func (ls *liveSub) stop() {
	if ls.sub != nil {
		_ = ls.sub.Unsubscribe()
	}
}

// onLive routes one republished message (tenant.<t>.channel.<c>.live, Nats-Sequence) to
// the channel's subscribers. It runs on the subscription's goroutine, so the messages of
// a channel reach each session in stream order; it never blocks on a session.
func (t *tenantHub) onLive(ls *liveSub, m *nats.Msg) {
	tenant, channel, ok := messagev1.ParseSubject(m.Subject)
	if !ok || tenant != t.id {
		return
	}
	seq, err := parseSeq(m.Header.Get(headerSequence))
	if err != nil {
		t.hub.log.Warn().Str("subject", m.Subject).Msg("live message without a sequence dropped")
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.live != ls { // an old subscription's last callback after the interest was renewed
		return
	}
	subs := t.channels[channel]
	if len(subs) == 0 {
		return
	}
	// The channel's previous stored seq (0 for its first message): a subscription that
	// has not sent it has a gap to read back (subscription.live).
	prev, _ := parseSeq(m.Header.Get(jetstream.LastSequenceHeader))
	frame, ok := messageFrame(tenant, channel, seq, m.Header, m.Data)
	if !ok {
		t.hub.log.Warn().Str("subject", m.Subject).Msg("live message with malformed headers dropped")
		return
	}
	for _, sub := range subs {
		sub.live(frame, seq, prev)
	}
}

// onEvent sends one tenant event to the sessions that asked for events.
func (t *tenantHub) onEvent(ls *liveSub, m *nats.Msg) {
	if len(m.Data) == 0 || m.Data[0] != '{' || !json.Valid(m.Data) {
		return
	}
	frame := eventFrame(m.Data)
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.eventSub != ls {
		return
	}
	for s := range t.events {
		s.send(frame)
	}
}

// channelDeleted drops channel from every session of the tenant.
func (t *tenantHub) channelDeleted(channel string) {
	t.mu.RLock()
	var subs []*subscription
	for _, sub := range t.channels[channel] {
		subs = append(subs, sub)
	}
	t.mu.RUnlock()
	for _, sub := range subs {
		sub.s.endSubscription(sub, realtimev1.ReasonChannelDeleted)
	}
}

// accessChanged checks again, on a goroutine of its own, the subscriptions to channel
// of agentID's sessions (every agent session when agentID is "").
func (t *tenantHub) accessChanged(channel, agentID string) {
	t.mu.RLock()
	var subs []*subscription
	for s, sub := range t.channels[channel] {
		if s.principal.Kind == natsrpc.KindAgent && (agentID == "" || s.principal.AgentID == agentID) {
			subs = append(subs, sub)
		}
	}
	t.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	go func() {
		for _, sub := range subs {
			sub.s.recheckSubscription(sub)
		}
	}()
}

// removeSession forgets an ended session (its routes are already gone).
func (t *tenantHub) removeSession(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, s)
}
