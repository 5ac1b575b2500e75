package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

// Output states of a session.
const (
	outOpen      = iota // frames are accepted
	outClosing          // a close frame is due (after the queue when flushing)
	outCloseSent        // the close frame is out; waiting for the client's reply
	outDead             // nothing more is written
)

// session is one WebSocket connection. Its reader runs on the connection's goroutine
// (run); a writer goroutine exists only while there is something to write, so an idle
// session costs no goroutine beyond its reader. Every write goes through the queue:
// nothing else ever waits for the socket.
type session struct {
	hub       *Hub
	tenant    *tenantHub
	conn      *fws.Conn
	id        string
	principal auth.Principal
	cred      Admission // the credential as presented (rechecks)
	acc       atomic.Pointer[auth.Access]
	opened    time.Time
	ctx       context.Context // ends with the session: replays, calls, timers
	cancel    context.CancelFunc

	// The send queue (mu-guarded). q[qhead:] are pending frames; qbytes counts them and
	// the one being written.
	omu      sync.Mutex
	q        [][]byte
	qhead    int
	qbytes   int
	ostate   int
	wrunning bool
	pingDue  bool
	code     int
	reason   string
	writers  sync.WaitGroup
	released bool          // the connection went back to the server: never touch it again
	room     chan struct{} // signalled after writes: a replay waiting for queue room

	// Subscriptions (mu-guarded): the reader adds and removes them, channel deletions
	// and the session's end remove them too.
	mu     sync.Mutex
	subs   map[string]*subscription
	events bool

	// Reader-goroutine state.
	rate     rateWindow
	presence *presence // agent sessions only

	// The hub's wheel pings and re-checks the session when these (unix ns) come due.
	nextPing, nextRecheck atomic.Int64
	recheckPending        atomic.Bool
	closedBy              string // who ended it, for the log (reader goroutine)
}

func newSession(h *Hub, tk *ticket, c *fws.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		hub:       h,
		tenant:    tk.tenant,
		conn:      c,
		id:        ulid.Make().String(),
		principal: tk.adm.Principal,
		cred:      tk.adm,
		opened:    time.Now(),
		ctx:       ctx,
		cancel:    cancel,
		room:      make(chan struct{}, 1),
	}
	acc := tk.adm.Access
	s.acc.Store(&acc)
	if s.principal.Kind == natsrpc.KindAgent {
		s.presence = &presence{s: s}
	}
	return s
}

func (s *session) access() auth.Access { return *s.acc.Load() }

// run is the reader: it owns the connection's read side until the session ends.
func (s *session) run() {
	defer s.end()
	cfg := &s.hub.cfg
	s.conn.SetReadLimit(int64(cfg.MaxFrameBytes))
	s.conn.SetPongHandler(func(string) error { s.alive(); return nil })
	s.conn.SetPingHandler(func(data string) error {
		s.alive()
		err := s.conn.WriteControl(fws.PongMessage, []byte(data), time.Now().Add(cfg.WriteTimeout))
		if err != nil && !errors.Is(err, fws.ErrCloseSent) {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				return err
			}
		}
		return nil
	})
	s.alive()
	if s.presence != nil {
		s.activeAgent()
		s.offStack(s.presence.open)
	}
	s.send(frame(realtimev1.Connected{Type: realtimev1.TypeConnected, SessionID: s.id,
		TenantID: s.tenant.id, AgentID: s.principal.AgentID}))
	now := time.Now()
	s.nextPing.Store(now.Add(cfg.PingEvery).UnixNano())
	s.nextRecheck.Store(now.Add(jitter(cfg.RecheckEvery)).UnixNano())
	s.hub.log.Debug().Str("session_id", s.id).Str("tenant_id", s.tenant.id).
		Str("principal", string(s.principal.Kind)).Str("request_id", s.cred.RequestID).Msg("websocket session opened")

	for {
		mt, data, err := s.conn.ReadMessage()
		if err != nil {
			s.readEnded(err)
			return
		}
		if u := s.hub.usage; u != nil {
			u.Received(s.tenant.id, len(data))
		}
		if !s.isOpen() {
			continue // closing: read on until the client's close reply (or the grace ends)
		}
		s.alive()
		s.offStack(func() { s.handle(mt, data) })
	}
}

// offStack runs fn on a goroutine of its own and waits for it. The reader's goroutine
// lives as long as the session, and a goroutine's stack never shrinks below what its
// blocked read uses times four: one deep call (a lookup, a JetStream publish, JSON)
// would leave every session that ever made one with 8-16 KiB of stack instead of 4.
// Frames and presence calls therefore run on short-lived goroutines (a few hundred ns
// each, at most the frame rate), and the reader only reads.
// A panic there is logged and ends the session (1011), never the process.
func (s *session) offStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				s.hub.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Str("session_id", s.id).Msg("websocket frame panicked")
				s.close(fws.CloseInternalServerErr, "internal error", false)
			}
		}()
		fn()
	}()
	<-done
}

// alive records that something arrived: the idle deadline moves, an agent's presence is
// refreshed (at most every PresenceRefresh).
func (s *session) alive() {
	now := time.Now()
	_ = s.conn.SetReadDeadline(now.Add(s.hub.cfg.IdleTimeout))
	if s.presence != nil && s.presence.due(now) {
		s.activeAgent() // again now and then: a session may span several days
		s.offStack(func() { s.presence.refresh(now, false) })
	}
}

// activeAgent meters an agent session as open now.
func (s *session) activeAgent() {
	if u := s.hub.usage; u != nil {
		u.ActiveAgent(s.tenant.id, s.principal.AgentID)
	}
}

// readEnded decides how the session ends after its reader failed.
func (s *session) readEnded(err error) {
	var ce *fws.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		s.closedBy = "client"
		if s.isOpen() {
			s.setDead() // the library has answered the client's close
		}
		return
	case errors.Is(err, fws.ErrReadLimit):
		// The library has sent 1009; read out what the client still sends so the close
		// reaches it (closing a socket with unread input resets it).
		s.closedBy = "frame_too_big"
		s.setState(outCloseSent)
		s.linger()
		return
	case errors.As(err, &ne) && ne.Timeout() && s.isOpen():
		s.closedBy = realtimev1.ReasonIdleTimeout
		s.close(realtimev1.CloseIdleTimeout, realtimev1.ReasonIdleTimeout, false)
		s.waitWriter()
		s.linger()
		return
	}
	if s.closedBy == "" {
		s.closedBy = "network"
	}
}

// linger discards input until the client closes the connection or CloseGrace passes.
func (s *session) linger() {
	nc := s.conn.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(s.hub.cfg.CloseGrace))
	_, _ = io.Copy(io.Discard, nc)
}

// end releases everything the session holds. It runs once, on the reader goroutine.
func (s *session) end() {
	s.cancel()
	s.setDead()
	_ = s.conn.NetConn().SetWriteDeadline(time.Now()) // a writer stuck on the socket gives up
	s.waitWriter()

	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	events := s.events
	s.events = false
	s.mu.Unlock()
	for _, sub := range subs {
		sub.end()
		s.tenant.removeRoute(s, sub.channel)
	}
	if events {
		s.tenant.removeEvents(s)
	}
	if s.presence != nil {
		s.presence.close()
	}
	s.omu.Lock()
	code, reason := s.code, s.reason
	s.omu.Unlock()
	s.hub.metrics.closed(code)
	s.omu.Lock()
	s.released = true // from here on the server may reuse the connection's memory
	s.omu.Unlock()
	s.hub.log.Debug().Str("session_id", s.id).Str("tenant_id", s.tenant.id).Int("close_code", code).
		Str("reason", reason).Str("ended_by", s.closedBy).Dur("duration", time.Since(s.opened)).Msg("websocket session closed")
}

// ---- periodic work (driven by the hub's wheel) ----

// jitter spreads periodic work of sessions opened together over ±10 %.
func jitter(d time.Duration) time.Duration {
	if d < 10 {
		return d
	}
	return d - d/10 + time.Duration(time.Now().UnixNano()%int64(d/5))
}

// due runs what has come due at now: the token's expiry, a server ping, a re-check
// (queued to the hub's workers). Only the wheel calls it.
func (s *session) due(now time.Time, recheckAll bool) {
	if exp := s.principal.ExpiresAt; !exp.IsZero() && !now.Before(exp) {
		s.close(realtimev1.CloseTokenExpired, realtimev1.ReasonTokenExpired, false)
		return
	}
	cfg := &s.hub.cfg
	n := now.UnixNano()
	if n >= s.nextPing.Load() {
		s.nextPing.Store(now.Add(cfg.PingEvery).UnixNano())
		s.omu.Lock()
		if s.ostate == outOpen {
			s.pingDue = true
			s.kick()
		}
		s.omu.Unlock()
	}
	if recheckAll || n >= s.nextRecheck.Load() {
		s.nextRecheck.Store(now.Add(jitter(cfg.RecheckEvery)).UnixNano())
		s.hub.recheckSoon(s)
	}
}

// recheckCredentials runs the upgrade's checks again (the authenticator's answers are
// cached ≤ 5 s and dropped at once by revocation events). A credential that no longer
// stands closes the session with 4003 (4001 when it expired); an outage changes nothing.
// An agent's channel subscriptions are then checked again too (cached lookups).
func (s *session) recheckCredentials() {
	if !s.isOpen() {
		return
	}
	// Not derived from s.ctx: a child context would leave its bookkeeping on the
	// session's for as long as the session lives; the call is bounded anyway.
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.CallTimeout)
	defer cancel()
	ctx = natsrpc.WithIdentity(ctx, natsrpc.Identity{RequestID: s.id, Kind: natsrpc.KindSystem})
	pr, err := s.hub.auth.Authenticate(ctx, s.cred.Authorization, s.cred.APIKey)
	var acc auth.Access
	if err == nil {
		if pr.Kind != s.principal.Kind || pr.UserID != s.principal.UserID || pr.AgentID != s.principal.AgentID ||
			pr.KeyID != s.principal.KeyID || (pr.Kind != natsrpc.KindUser && pr.TenantID != s.tenant.id) {
			err = natsrpc.Forbidden("the credential no longer names this session's principal")
		}
	}
	if err == nil {
		// The session is bound to its tenant: it is named, whatever first resolved it.
		acc, err = s.hub.auth.Resolve(ctx, pr, s.tenant.id)
	}
	if err == nil && acc.TenantStatus == tenantv1.StatusSuspended {
		err = natsrpc.NewError(403, natsrpc.CodeTenantSuspended, "the tenant is suspended")
	}
	if err != nil {
		e, ok := natsrpc.AsError(err)
		switch {
		case !ok || e.Status >= 500 || e.Status < 400:
			if s.ctx.Err() == nil {
				s.hub.log.Warn().Err(err).Str("session_id", s.id).Msg("websocket credential re-check failed; session kept")
			}
		case e.Code == natsrpc.CodeTokenExpired:
			s.close(realtimev1.CloseTokenExpired, realtimev1.ReasonTokenExpired, false)
		default:
			s.close(realtimev1.CloseRevoked, e.Code, false)
		}
		return
	}
	s.acc.Store(&acc)
	s.recheckSubscriptions()
}

// ---- the send queue and its writer ----

// send queues a frame. It never blocks: a full queue (QueueFrames or QueueBytes) means
// the client does not keep up, and the session is closed with 4008 slow_consumer
// rather than slowing the sender (a NATS callback serving every session of a tenant).
func (s *session) send(f []byte) bool {
	cfg := &s.hub.cfg
	s.omu.Lock()
	defer s.omu.Unlock()
	if s.ostate != outOpen {
		return false
	}
	if len(s.q)-s.qhead >= cfg.QueueFrames || s.qbytes+len(f) > cfg.QueueBytes {
		s.beginClose(realtimev1.CloseSlowConsumer, realtimev1.ReasonSlowConsumer, false)
		return false
	}
	s.q = append(s.q, f)
	s.qbytes += len(f)
	s.kick()
	return true
}

// sendMessage queues a message frame (counted).
func (s *session) sendMessage(f []byte) {
	if s.send(f) {
		s.hub.metrics.messages.Inc()
	}
}

// kick starts the writer unless it runs (omu held).
func (s *session) kick() {
	if !s.wrunning {
		s.wrunning = true
		s.writers.Add(1)
		go s.write()
	}
}

// Bounds of one batched write.
const (
	batchFrames = 64
	batchBytes  = 256 << 10
)

// write is the writer: one at a time per session, it drains the queue, sends due pings
// and finally the close frame, then exits. Queued frames go out in batches: one writev
// for everything waiting (up to batchFrames/batchBytes), so a session that falls behind
// costs fewer system calls, not more.
func (s *session) write() {
	defer s.writers.Done()
	cfg := &s.hub.cfg
	var w frameWriter
	for {
		ping, closeFrame := false, false
		code, reason := 0, ""
		w.reset()
		s.omu.Lock()
		switch {
		case s.ostate == outDead || s.ostate == outCloseSent:
			s.wrunning = false
			s.omu.Unlock()
			return
		case s.pingDue:
			ping, s.pingDue = true, false
		case s.qhead < len(s.q):
			for s.qhead < len(s.q) && w.frames < batchFrames && (w.frames == 0 || w.size+len(s.q[s.qhead]) <= batchBytes) {
				w.add(s.q[s.qhead])
				s.q[s.qhead] = nil
				s.qhead++
			}
			if s.qhead == len(s.q) { // drained: let a burst's backing array go
				if cap(s.q) > 16 {
					s.q = nil
				} else {
					s.q = s.q[:0]
				}
				s.qhead = 0
			}
		case s.ostate == outClosing:
			closeFrame, code, reason = true, s.code, s.reason
			s.ostate = outCloseSent
		default:
			s.wrunning = false
			s.omu.Unlock()
			return
		}
		s.omu.Unlock()

		deadline := time.Now().Add(cfg.WriteTimeout)
		var err error
		switch {
		case w.frames > 0:
			err = w.writeTo(s.raw(), deadline)
			if u := s.hub.usage; u != nil && err == nil {
				u.Delivered(s.tenant.id, w.messages, w.size)
			}
			s.omu.Lock()
			s.qbytes -= w.size
			s.omu.Unlock()
			select {
			case s.room <- struct{}{}:
			default:
			}
		case ping:
			err = s.conn.WriteControl(fws.PingMessage, nil, deadline)
		case closeFrame:
			// Through the library, so that it knows the close is sent (it then does not
			// answer the client's close reply with a second one).
			err = s.conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, reason), deadline)
			// Give the client CloseGrace to answer, then stop reading.
			time.AfterFunc(cfg.CloseGrace, func() { s.interrupt(false) })
		}
		if err != nil {
			// The socket is gone or stuck: nothing more can be said; end the reader too.
			s.setDead()
			_ = s.conn.NetConn().SetReadDeadline(time.Now())
		}
	}
}

// raw is the socket the writer writes data frames to: the TCP connection itself when
// fasthttp exposes it (writev needs it), else the hijacked connection. Go serialises
// concurrent writes on one socket, each written whole, so these frames never interleave
// with the control frames the library writes (pongs, its own closes).
func (s *session) raw() net.Conn {
	nc := s.conn.NetConn()
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return nc
}

// frameWriter frames server-to-client text messages (RFC 6455 §5.2: FIN, opcode 1, no
// mask) and writes a batch of them with one writev.
type frameWriter struct {
	headers  []byte
	bufs     net.Buffers
	frames   int
	messages int // message frames among them (usage: messages delivered)
	size     int // payload bytes
}

// messagePrefix starts every message frame (messagev1.AppendJSON) and no other frame.
var messagePrefix = []byte(`{"type":"message",`)

func (w *frameWriter) reset() {
	w.headers, w.bufs, w.frames, w.messages, w.size = w.headers[:0], w.bufs[:0], 0, 0, 0
}

func (w *frameWriter) add(payload []byte) {
	h := len(w.headers)
	w.headers = append(w.headers, 0x81)
	switch n := len(payload); {
	case n < 126:
		w.headers = append(w.headers, byte(n))
	case n <= 0xffff:
		w.headers = append(w.headers, 126, byte(n>>8), byte(n))
	default:
		w.headers = append(w.headers, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	// Record the header's span; the slices are taken once headers stops growing.
	w.bufs = append(w.bufs, w.headers[h:len(w.headers):len(w.headers)], payload)
	w.frames++
	w.size += len(payload)
	if bytes.HasPrefix(payload, messagePrefix) {
		w.messages++
	}
}

func (w *frameWriter) writeTo(c net.Conn, deadline time.Time) error {
	// headers may have moved while growing: re-point each header slice into it.
	off := 0
	for i := 0; i < len(w.bufs); i += 2 {
		n := len(w.bufs[i])
		w.bufs[i] = w.headers[off : off+n : off+n]
		off += n
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	bufs := w.bufs // WriteTo consumes its receiver
	_, err := bufs.WriteTo(c)
	return err
}

// waitForRoom blocks a replay until the queue is at most half full, so replaying a long
// history never overflows the queue of a client that does read.
func (s *session) waitForRoom(ctx context.Context) error {
	cfg := &s.hub.cfg
	for {
		s.omu.Lock()
		n, b, st := len(s.q)-s.qhead, s.qbytes, s.ostate
		s.omu.Unlock()
		if st != outOpen {
			return context.Canceled
		}
		if n < cfg.QueueFrames/2 && b < cfg.QueueBytes/2 {
			return nil
		}
		select {
		case <-s.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close ends the session with a close code: the queue is dropped (flush: written
// first), the close frame follows, and the reader ends on the client's reply or after
// CloseGrace. Only the first close counts.
func (s *session) close(code int, reason string, flush bool) {
	s.omu.Lock()
	s.beginClose(code, reason, flush)
	s.omu.Unlock()
}

// beginClose runs with omu held.
func (s *session) beginClose(code int, reason string, flush bool) {
	if s.ostate != outOpen {
		return
	}
	s.ostate, s.code, s.reason = outClosing, code, reason
	if !flush {
		for i := s.qhead; i < len(s.q); i++ {
			s.qbytes -= len(s.q[i])
		}
		s.q, s.qhead = nil, 0
	}
	s.kick()
}

// closeNow writes a close frame directly (a session that never started).
func (s *session) closeNow(code int, reason string) {
	_ = s.conn.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(code, reason), time.Now().Add(s.hub.cfg.WriteTimeout))
}

// abort cuts the connection at once (shutdown out of time).
func (s *session) abort() {
	s.setDead()
	s.interrupt(true)
}

// interrupt ends a blocked read (and with writes, a blocked write) from another
// goroutine, unless the connection has already gone back to the server.
func (s *session) interrupt(writes bool) {
	s.omu.Lock()
	defer s.omu.Unlock()
	if s.released {
		return
	}
	if writes {
		_ = s.conn.NetConn().SetDeadline(time.Now())
	} else {
		_ = s.conn.NetConn().SetReadDeadline(time.Now())
	}
}

func (s *session) isOpen() bool {
	s.omu.Lock()
	defer s.omu.Unlock()
	return s.ostate == outOpen
}

func (s *session) setState(st int) {
	s.omu.Lock()
	if s.ostate < st {
		s.ostate = st
	}
	s.omu.Unlock()
}

func (s *session) setDead() {
	s.omu.Lock()
	s.ostate = outDead
	s.q, s.qhead, s.qbytes = nil, 0, 0
	s.omu.Unlock()
}

// waitWriter waits until no writer runs (the close frame, if any, is out).
func (s *session) waitWriter() { s.writers.Wait() }

// ---- frame rate ----

// rateWindow counts a session's frames per second. A second with frames over the limit
// is a strike; RateLimitStrikes seconds in a row close the session with 4029.
type rateWindow struct {
	start              time.Time
	n, rejected, strik int
}

// take reports whether a frame arriving at now is within the limit, whether to answer
// it with rate_limited (at most limit answers a second), and whether to close.
func (r *rateWindow) take(now time.Time, limit, strikes int) (ok, answer, kill bool) {
	if el := now.Sub(r.start); el >= time.Second {
		if el >= 2*time.Second || r.rejected == 0 {
			r.strik = 0
		}
		r.start, r.n, r.rejected = now, 0, 0
	}
	if r.n < limit {
		r.n++
		return true, false, false
	}
	r.rejected++
	if r.rejected == 1 {
		r.strik++
	}
	return false, r.rejected <= limit, r.strik >= strikes
}

// ---- client frames ----

func (s *session) handle(mt int, data []byte) {
	cfg := &s.hub.cfg
	ok, answer, kill := s.rate.take(time.Now(), cfg.FramesPerSecond, cfg.RateLimitStrikes)
	if !ok {
		if kill {
			s.close(realtimev1.CloseRateLimited, realtimev1.ReasonRateLimited, false)
			return
		}
		if answer {
			var f struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(data, &f)
			s.send(errorFrame(clip(f.ID), "", natsrpc.CodeRateLimited, "more than the allowed frames per second; slow down"))
		}
		return
	}
	if mt != fws.TextMessage {
		s.send(errorFrame("", "", natsrpc.CodeValidationFailed, "frames are JSON text messages"))
		return
	}
	var f realtimev1.ClientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.send(errorFrame("", "", natsrpc.CodeInvalidJSON, "the frame is not a JSON object of the expected shape"))
		return
	}
	if len(f.ID) > realtimev1.MaxIDBytes {
		s.send(errorFrame("", "", natsrpc.CodeValidationFailed, "id is longer than 128 bytes"))
		return
	}
	switch f.Type {
	case realtimev1.TypeSubscribe:
		s.subscribe(&f)
	case realtimev1.TypeUnsubscribe:
		s.unsubscribe(&f)
	case realtimev1.TypePublish:
		s.publish(&f)
	case realtimev1.TypeHeartbeat:
		s.heartbeat(&f)
	case realtimev1.TypePing:
		s.send(frame(realtimev1.Pong{Type: realtimev1.TypePong, ID: f.ID}))
	case realtimev1.TypeSubscribeEvents:
		s.subscribeEvents(&f)
	case realtimev1.TypeUnsubscribeEvents:
		s.unsubscribeEvents(&f)
	default:
		s.send(errorFrame(f.ID, "", natsrpc.CodeValidationFailed,
			"unknown frame type; expected subscribe, unsubscribe, publish, heartbeat, ping or subscribe_events"))
	}
}

// clip keeps an id echoed in an error short.
func clip(id string) string {
	if len(id) > realtimev1.MaxIDBytes {
		return ""
	}
	return id
}

// callCtx bounds one upstream call made for a frame and carries the session's identity
// (request id = session id) for the logs of the services it reaches. The reader makes
// these calls and the session cannot end before they return, so they need not derive
// from s.ctx (a child would leave its bookkeeping on it for the session's life).
func (s *session) callCtx() (context.Context, context.CancelFunc) {
	acc := s.access()
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{RequestID: s.id, TenantID: s.tenant.id,
		Kind: s.principal.Kind, Role: acc.Role, Plan: acc.TenantTier, ClientIP: s.cred.ClientIP})
	return context.WithTimeout(ctx, s.hub.cfg.CallTimeout)
}

// sendError answers a frame with the error err stands for.
func (s *session) sendError(id, channelID string, err error) {
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status == 500 {
		if s.ctx.Err() == nil {
			s.hub.log.Error().Err(err).Str("session_id", s.id).Msg("websocket frame failed")
		}
		e = natsrpc.Internal()
	}
	s.send(errorFrame(id, channelID, e.Code, e.Detail))
}

func (s *session) publish(f *realtimev1.ClientFrame) {
	acc := s.access()
	ctx, cancel := s.callCtx()
	defer cancel()
	res, replayed, err := s.hub.pub.Publish(ctx, publishInput(s, acc, f))
	if err != nil {
		s.sendError(f.ID, "", err)
		return
	}
	s.send(frame(realtimev1.Ack{Type: realtimev1.TypeAck, ID: f.ID, MessageID: res.MessageID, Seq: res.Seq,
		Timestamp: res.Timestamp, Replayed: replayed}))
}

func (s *session) heartbeat(f *realtimev1.ClientFrame) {
	switch f.Status {
	case "", realtimev1.StatusBusy, realtimev1.StatusIdle, "online":
	default:
		s.send(errorFrame(f.ID, "", natsrpc.CodeValidationFailed, "status must be busy or idle"))
		return
	}
	if s.presence != nil && f.Status != "" {
		s.presence.setStatus(f.Status)
	}
}

func (s *session) subscribeEvents(f *realtimev1.ClientFrame) {
	if s.principal.Kind == natsrpc.KindAgent {
		// The tenant's events are the dashboard's view (every agent's status, channel
		// lifecycle): more than an agent token may read over REST.
		s.send(errorFrame(f.ID, "", natsrpc.CodeForbidden, "agent tokens may not subscribe to the tenant's events"))
		return
	}
	s.mu.Lock()
	already := s.events
	s.events = true
	s.mu.Unlock()
	if !already {
		if err := s.tenant.addEvents(s); err != nil {
			s.mu.Lock()
			s.events = false
			s.mu.Unlock()
			s.hub.log.Warn().Err(err).Msg("websocket: events subscription failed")
			s.send(errorFrame(f.ID, "", natsrpc.CodeServiceUnavailable, "events are unavailable right now; try again"))
			return
		}
	}
	s.send(frame(realtimev1.Subscribed{Type: realtimev1.TypeSubscribed, ID: f.ID, Events: true}))
}

func (s *session) unsubscribeEvents(f *realtimev1.ClientFrame) {
	s.mu.Lock()
	was := s.events
	s.events = false
	s.mu.Unlock()
	if was {
		s.tenant.removeEvents(s)
	}
	s.send(frame(realtimev1.Unsubscribed{Type: realtimev1.TypeUnsubscribed, ID: f.ID, Events: true}))
}
