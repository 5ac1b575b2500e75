package realtime

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
)

// subscription is one channel of one session. Live messages reach it from the tenant's
// NATS callback; while it holds (before "subscribed" is out, and during a since_seq
// replay) they are buffered, and when it goes live the buffer is drained skipping what
// was already sent: every message once, in seq order.
type subscription struct {
	s       *session
	channel string
	ctx     context.Context // ends with the subscription (unsubscribe, deletion, session end)
	cancel  context.CancelFunc

	mu      sync.Mutex
	holding bool
	ended   bool
	buf     []held
	bufSize int
	// last is the highest seq sent to the client (since_seq at first): anything at or
	// below it is a duplicate.
	last uint64
	// droppedUpTo is the highest seq dropped from a full buffer: a replay must reach it.
	droppedUpTo uint64
	// known: last is a real position in the channel (since_seq was given, or a message
	// was sent), so a live message that names a later predecessor reveals a gap.
	known bool
}

type held struct {
	frame []byte
	seq   uint64
}

func newSubscription(s *session, channel string, since uint64) *subscription {
	ctx, cancel := context.WithCancel(s.ctx)
	return &subscription{s: s, channel: channel, ctx: ctx, cancel: cancel, holding: true, last: since}
}

// live takes one live message (from the tenant's NATS callback: never blocks). prev is
// the channel's previous stored seq (Nats-Last-Sequence of the republish).
func (sub *subscription) live(frame []byte, seq, prev uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || seq <= sub.last {
		return
	}
	if sub.holding {
		sub.hold(frame, seq)
		return
	}
	if sub.known && prev > sub.last {
		// A message stored after the last one sent never arrived live: core NATS
		// delivers at most once, and a NATS node or route that fails loses what it was
		// forwarding. Read the gap back from the stream, holding live ones meanwhile.
		sub.holding = true
		sub.hold(frame, seq)
		sub.s.hub.metrics.liveGaps.Inc()
		go sub.s.replay(sub, sub.last)
		return
	}
	sub.last, sub.known = seq, true
	sub.s.sendMessage(frame)
}

// hold buffers a live message; a full buffer drops its older half, which a replay then
// reads back from the stream (droppedUpTo). mu held.
func (sub *subscription) hold(frame []byte, seq uint64) {
	cfg := &sub.s.hub.cfg
	if len(sub.buf) >= cfg.QueueFrames || sub.bufSize+len(frame) > cfg.QueueBytes {
		n := len(sub.buf) / 2
		if n == 0 {
			n = len(sub.buf)
		}
		for _, h := range sub.buf[:n] {
			sub.bufSize -= len(h.frame)
		}
		sub.droppedUpTo = max(sub.droppedUpTo, sub.buf[n-1].seq)
		sub.buf = append(sub.buf[:0], sub.buf[n:]...)
	}
	sub.buf = append(sub.buf, held{frame: frame, seq: seq})
	sub.bufSize += len(frame)
}

// replayed sends one stored message of a replay.
func (sub *subscription) replayed(frame []byte, seq uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || seq <= sub.last {
		return
	}
	sub.last, sub.known = seq, true
	if frame != nil {
		sub.s.sendMessage(frame)
	}
}

// goLive drains the buffer (skipping duplicates) and lets live messages through. It
// reports false when buffered messages were dropped that the replay has not reached yet
// (the caller replays further first). force goes live regardless (those messages are no
// longer stored).
func (sub *subscription) goLive(force bool) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended {
		return true
	}
	if !force && sub.droppedUpTo > sub.last {
		return false
	}
	for _, h := range sub.buf {
		if h.seq > sub.last {
			sub.last, sub.known = h.seq, true
			sub.s.sendMessage(h.frame)
		}
	}
	sub.buf, sub.bufSize, sub.holding = nil, 0, false
	return true
}

func (sub *subscription) lastSent() (last, droppedUpTo uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.last, sub.droppedUpTo
}

// end stops the subscription: nothing more is sent for it, a replay stops.
func (sub *subscription) end() {
	sub.cancel()
	sub.mu.Lock()
	sub.ended, sub.buf = true, nil
	sub.mu.Unlock()
}

// ---- subscribe / unsubscribe frames ----

func (s *session) subscribe(f *realtimev1.ClientFrame) {
	channel, ok := channelv1.NormalizeID(f.ChannelID)
	if !ok {
		// Malformed, unknown or another tenant's: all the same "not found".
		s.send(errorFrame(f.ID, "", natsrpc.CodeNotFound, "channel not found"))
		return
	}
	s.mu.Lock()
	_, already := s.subs[channel]
	n := len(s.subs)
	s.mu.Unlock()
	if already { // harmless: nothing changes, not even a since_seq
		s.send(frame(realtimev1.Subscribed{Type: realtimev1.TypeSubscribed, ID: f.ID, ChannelID: channel}))
		return
	}
	if n >= s.hub.cfg.MaxSubscriptions {
		s.send(errorFrame(f.ID, channel, realtimev1.CodeTooManySubscriptions,
			"a session may subscribe to at most 100 channels"))
		return
	}
	if err := s.mayRead(channel); err != nil {
		s.sendError(f.ID, channel, err)
		return
	}
	var since uint64
	if f.SinceSeq != nil {
		since = *f.SinceSeq
	}
	sub := newSubscription(s, channel, since)
	sub.known = f.SinceSeq != nil
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[string]*subscription{}
	}
	s.subs[channel] = sub
	s.mu.Unlock()
	if err := s.tenant.addRoute(s, sub); err != nil {
		s.dropSubscription(sub)
		s.hub.log.Warn().Err(err).Msg("websocket: live subscription failed")
		s.send(errorFrame(f.ID, channel, natsrpc.CodeServiceUnavailable, "live messages are unavailable right now; try again"))
		return
	}
	if f.SinceSeq == nil {
		s.startAtEnd(sub)
	}
	// The tenant's live interest is confirmed: anything stored from now on reaches the
	// buffer, so "subscribed" promises no later message is missed.
	s.send(frame(realtimev1.Subscribed{Type: realtimev1.TypeSubscribed, ID: f.ID, ChannelID: channel}))
	if f.SinceSeq == nil {
		sub.goLive(true)
		return
	}
	go s.replay(sub, since)
}

// startAtEnd gives a subscription without since_seq a known position, the channel's
// last stored message, so that a live message lost on the way (a NATS node or route that
// fails) is read back like any other gap (subscription.live). It runs before "subscribed"
// is sent: whatever is stored up to that position predates the subscription. If the
// stream cannot be read now, the position stays unknown until the first live message.
func (s *session) startAtEnd(sub *subscription) {
	ctx, cancel := s.callCtx()
	defer cancel()
	stream, err := s.hub.messages(ctx)
	var last uint64
	if err == nil {
		last, err = lastSeq(ctx, stream, messagev1.Subject(s.tenant.id, sub.channel))
	}
	if err != nil {
		s.hub.log.Debug().Err(err).Str("channel_id", sub.channel).Msg("websocket: channel position unknown at subscribe")
		return
	}
	sub.mu.Lock()
	sub.last, sub.known = max(sub.last, last), true
	sub.mu.Unlock()
}

// mayRead checks that the session's tenant has the channel (404 otherwise, whoever owns
// that id) and that an agent may read a private one (any subscription role).
func (s *session) mayRead(channel string) error {
	ctx, cancel := s.callCtx()
	defer cancel()
	info, err := s.hub.channels.Lookup(ctx, s.tenant.id, channel)
	if err != nil {
		return err
	}
	if s.principal.Kind == natsrpc.KindAgent && info.Private() {
		role, err := s.hub.channels.AgentRole(ctx, s.tenant.id, channel, s.principal.AgentID)
		if err != nil {
			return err
		}
		if role == "" {
			return natsrpc.Forbidden("this private channel needs a subscription of the agent")
		}
	}
	return nil
}

// recheckSubscription checks again that the session may read sub's channel, and ends
// the subscription when it may not: access_revoked (403: an agent without a record in a
// private channel) or channel_deleted (404). An outage keeps it: the next check (an
// event, or the periodic re-check) decides.
func (s *session) recheckSubscription(sub *subscription) {
	if sub.ctx.Err() != nil {
		return
	}
	err := s.mayRead(sub.channel)
	if err == nil {
		return
	}
	e, ok := natsrpc.AsError(err)
	switch {
	case ok && e.Status == http.StatusForbidden:
		s.endSubscription(sub, realtimev1.ReasonAccessRevoked)
	case ok && e.Status == http.StatusNotFound:
		s.endSubscription(sub, realtimev1.ReasonChannelDeleted)
	default:
		if s.ctx.Err() == nil {
			s.hub.log.Warn().Err(err).Str("session_id", s.id).Str("channel_id", sub.channel).Msg("websocket: subscription access re-check failed; subscription kept")
		}
	}
}

// recheckSubscriptions checks every channel subscription of an agent session again
// (the periodic re-check: it bounds what a lost event costs). Users and API keys need
// no subscription record, so their sessions have nothing to check.
func (s *session) recheckSubscriptions() {
	if s.principal.Kind != natsrpc.KindAgent {
		return
	}
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		if !s.isOpen() {
			return
		}
		s.recheckSubscription(sub)
	}
}

func (s *session) unsubscribe(f *realtimev1.ClientFrame) {
	channel, ok := channelv1.NormalizeID(f.ChannelID)
	if ok {
		s.mu.Lock()
		sub := s.subs[channel]
		s.mu.Unlock()
		if sub != nil {
			s.dropSubscription(sub)
		}
	}
	if !ok {
		channel = ""
	}
	s.send(frame(realtimev1.Unsubscribed{Type: realtimev1.TypeUnsubscribed, ID: f.ID, ChannelID: channel}))
}

// dropSubscription removes sub from the session and the tenant's routing.
func (s *session) dropSubscription(sub *subscription) bool {
	s.mu.Lock()
	cur, ok := s.subs[sub.channel]
	if ok && cur == sub {
		delete(s.subs, sub.channel)
	}
	s.mu.Unlock()
	if !ok || cur != sub {
		return false
	}
	sub.end()
	s.tenant.removeRoute(s, sub.channel)
	return true
}

// endSubscription is the server ending a subscription (channel deleted, access
// revoked, replay failed):
// the client is told with unsubscribed {channel_id, reason}.
func (s *session) endSubscription(sub *subscription, reason string) {
	if s.dropSubscription(sub) {
		s.send(frame(realtimev1.Unsubscribed{Type: realtimev1.TypeUnsubscribed, ChannelID: sub.channel, Reason: reason}))
	}
}

func publishInput(s *session, acc auth.Access, f *realtimev1.ClientFrame) messaging.PublishInput {
	return messaging.PublishInput{
		TenantID:       s.tenant.id,
		ChannelID:      f.ChannelID,
		Principal:      s.principal,
		Role:           acc.Role,
		Plan:           acc.TenantTier,
		Data:           f.Data,
		IdempotencyKey: f.IdempotencyKey,
	}
}

// ---- replay ----

// replay sends the stored messages after since, then lets the buffered live ones
// through. A failure ends the subscription (reason replay_failed) rather than leave a
// silent gap.
func (s *session) replay(sub *subscription, since uint64) {
	err := s.replayStored(sub, since)
	if err == nil || sub.ctx.Err() != nil {
		return
	}
	s.hub.log.Warn().Err(err).Str("session_id", s.id).Str("channel_id", sub.channel).Msg("websocket replay failed")
	s.send(errorFrame("", sub.channel, natsrpc.CodeServiceUnavailable, "stored messages could not be read; subscribe again"))
	s.endSubscription(sub, realtimev1.ReasonReplayFailed)
}

// replayWait is how long a replay waits for the next stored message before it checks
// whether more are stored at all.
const replayWait = 2 * time.Second

func (s *session) replayStored(sub *subscription, since uint64) error {
	ctx := sub.ctx
	subject := messagev1.Subject(s.tenant.id, sub.channel)
	stream, err := s.hub.messages(ctx)
	if err != nil {
		return err
	}
	// The live interest came first, so every message stored after this read is in the
	// buffer: the replay must reach last, and no further (unless the buffer dropped some).
	last, err := lastSeq(ctx, stream, subject)
	if err != nil {
		return err
	}
	if since > 0 && last > since {
		if first, truncated, err := truncatedAfter(ctx, stream, subject, since); err != nil {
			return err
		} else if truncated {
			s.send(frame(realtimev1.Error{Type: realtimev1.TypeError, Code: realtimev1.CodeHistoryTruncated,
				Detail:    "part of the requested history has expired or was trimmed; first_seq is the first stored message after since_seq",
				ChannelID: sub.channel, FirstSeq: &first}))
		}
	}

	var (
		cons jetstream.Consumer
		it   jetstream.MessagesContext
	)
	defer func() {
		if it != nil {
			it.Stop()
		}
		if cons != nil {
			// The consumer would expire on its own; deleting it frees the server now.
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
			cancel()
		}
	}()
	caughtUp := false
	for {
		sent, dropped := sub.lastSent()
		if (caughtUp || sent >= last) && dropped <= sent {
			if sub.goLive(false) {
				return nil
			}
			continue
		}
		if it == nil {
			cons, err = stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
				FilterSubjects:    []string{subject},
				DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
				OptStartSeq:       sent + 1,
				InactiveThreshold: 30 * time.Second,
			})
			if err != nil {
				return err
			}
			if it, err = cons.Messages(jetstream.PullMaxMessages(s.hub.cfg.ReplayBatch)); err != nil {
				return err
			}
		}
		if err := s.waitForRoom(ctx); err != nil {
			return nil // the session is closing or the subscription ended
		}
		nctx, cancel := context.WithTimeout(ctx, replayWait)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Nothing came: if nothing after what was sent is stored any more (expired or
			// trimmed meanwhile), what is waited for will never come.
			more, err := storedAfter(ctx, stream, subject, sent)
			if err != nil {
				return err
			}
			if !more {
				sub.goLive(true)
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		f, ok := messageFrame(s.tenant.id, sub.channel, meta.Sequence.Stream, m.Headers(), m.Data())
		if !ok {
			s.hub.log.Warn().Uint64("seq", meta.Sequence.Stream).Msg("stored message with malformed headers skipped")
			f = nil
		}
		sub.replayed(f, meta.Sequence.Stream)
		caughtUp = meta.NumPending == 0
	}
}

// lastSeq is the sequence of the channel's newest stored message (0: none).
func lastSeq(ctx context.Context, stream jetstream.Stream, subject string) (uint64, error) {
	m, err := stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// storedAfter reports whether the channel has a stored message after seq.
func storedAfter(ctx context.Context, stream jetstream.Stream, subject string, seq uint64) (bool, error) {
	_, err := stream.GetMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// truncatedAfter tells whether messages of the channel after since may have been lost
// (expired or trimmed) and which stored message comes first after it. A channel's
// messages are removed oldest first, so if the client's last message (since) is still
// stored nothing after it was removed. If it is not (or since was not this channel's),
// the range is reported truncated unless the first stored message follows since
// directly in the stream, which leaves no room for a lost one.
func truncatedAfter(ctx context.Context, stream jetstream.Stream, subject string, since uint64) (uint64, bool, error) {
	m, err := stream.GetMsg(ctx, since)
	switch {
	case err == nil && m.Subject == subject:
		return 0, false, nil
	case err != nil && !errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, false, err
	}
	first, err := stream.GetMsg(ctx, since+1, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return first.Sequence, first.Sequence > since+1, nil
}
