// Package realtime is the gateway's WebSocket endpoint (GET /api/v1/ws, SPEC §4.6 and
// §13): the sessions (one reader goroutine each, a writer with a bounded queue), their
// channel subscriptions with replay-then-live, the live fan-out from NATS, publishing
// through the shared messaging.Publisher, tenant event streams, revocation and expiry
// closes, the per-tenant connection cap and the presence keys of agent sessions.
//
// Live fan-out: one NATS subscription per (gateway, tenant) on
// messagev1.LiveWildcard(tenant), shared by every session of that tenant on this gateway
// and held only while at least one of them has a channel subscription. Its callback
// routes each message to the sessions subscribed to that channel with a map lookup and a
// non-blocking enqueue, so it never waits for a socket. Why per tenant and not per
// channel: a tenant's dashboards and agents usually watch most of its channels; one
// subscription per tenant keeps the gateway's interest, goroutines and pending buffers
// proportional to tenants, not channels, and a session's subscribe needs no NATS round
// trip once its tenant is live. The cost is that a gateway also receives the messages of
// that tenant's channels none of its sessions watch; they are dropped after one lookup.
package realtime

import (
	"context"
	"errors"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
)

// Config tunes the sessions. The zero value is the SPEC's numbers; tests shorten times.
type Config struct {
	// AllowedOrigins: when not empty, a browser's Origin must be one of them
	// (CORS_ALLOWED_ORIGINS). Requests without Origin (agents, CLIs) are not browsers.
	AllowedOrigins []string
	// GatewayID names this gateway in presence values (default: a fresh ULID).
	GatewayID string
	// PresenceReplicas of the presence bucket when this gateway creates it
	// (NATS_JS_REPLICAS; default 1). An existing bucket is used as it is.
	PresenceReplicas int

	PingEvery    time.Duration // server pings (default realtimev1.PingEvery)
	IdleTimeout  time.Duration // nothing received, not even a pong → 4000 (default 90 s)
	WriteTimeout time.Duration // one socket write (default 10 s)
	CloseGrace   time.Duration // wait for the client's close reply (default 2 s)

	MaxFrameBytes    int // default realtimev1.MaxFrameBytes
	MaxSubscriptions int // default realtimev1.MaxSubscriptions
	FramesPerSecond  int // default realtimev1.MaxFramesPerSecond
	RateLimitStrikes int // default realtimev1.RateLimitStrikes
	QueueFrames      int // default realtimev1.MaxQueuedFrames
	QueueBytes       int // default realtimev1.MaxQueuedBytes

	// PresenceTTL is the life of an agent session's presence key without a refresh
	// (default presencev1.TTL); PresenceRefresh the least time between refreshes
	// (default presencev1.RefreshEvery).
	PresenceTTL     time.Duration
	PresenceRefresh time.Duration

	// RecheckEvery is how often a session's credentials are checked again with the
	// authenticator (cached answers, ≤ 5 s old). Revocation events close sessions at
	// once; this bounds the damage of a lost event. Default 5 s.
	RecheckEvery time.Duration
	// CallTimeout bounds one upstream call a frame makes (lookup, publish). Default 5 s.
	CallTimeout time.Duration
	// ReplayBatch is how many stored messages a replay asks for at a time (default 256).
	ReplayBatch int
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	seti := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.GatewayID == "" {
		c.GatewayID = ulid.Make().String()
	}
	set(&c.PingEvery, realtimev1.PingEvery)
	set(&c.IdleTimeout, realtimev1.IdleTimeout)
	set(&c.WriteTimeout, 10*time.Second)
	set(&c.CloseGrace, 2*time.Second)
	seti(&c.MaxFrameBytes, realtimev1.MaxFrameBytes)
	seti(&c.MaxSubscriptions, realtimev1.MaxSubscriptions)
	seti(&c.FramesPerSecond, realtimev1.MaxFramesPerSecond)
	seti(&c.RateLimitStrikes, realtimev1.RateLimitStrikes)
	seti(&c.QueueFrames, realtimev1.MaxQueuedFrames)
	seti(&c.QueueBytes, realtimev1.MaxQueuedBytes)
	set(&c.PresenceTTL, presencev1.TTL)
	set(&c.PresenceRefresh, presencev1.RefreshEvery)
	set(&c.RecheckEvery, 5*time.Second)
	set(&c.CallTimeout, 5*time.Second)
	seti(&c.ReplayBatch, 256)
}

// Authenticator is what sessions need of auth.Authenticator: the same checks as the
// upgrade, run again while a session lives.
type Authenticator interface {
	Authenticate(ctx context.Context, authorization, apiKey string) (auth.Principal, error)
	Resolve(ctx context.Context, p auth.Principal, headerTenant string) (auth.Access, error)
}

// ConnectionGate caps a tenant's sessions across gateways (limits.Connections): Acquire
// admits one more session within limit (≤ 0: unlimited, counted for the peak) or
// returns the 429; Release ends one.
type ConnectionGate interface {
	Acquire(ctx context.Context, tenantID string, limit int64) error
	Release(tenantID string)
}

// UsageRecorder hears what sessions cost (metering.Meter): frame bytes read, message
// frames and bytes written, agents with a session open.
type UsageRecorder interface {
	Received(tenantID string, bytes int)
	Delivered(tenantID string, messages, bytes int)
	ActiveAgent(tenantID, agentID string)
}

// Deps are the hub's collaborators.
type Deps struct {
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	Auth      Authenticator
	Channels  *messaging.Channels
	Publisher *messaging.Publisher
	Log       zerolog.Logger
	Metrics   prometheus.Registerer // nil: counted, not exported
	// Connections, when set, holds the connection cap across gateways; nil: the cap
	// holds per gateway.
	Connections ConnectionGate
	// Usage, when set, meters the sessions.
	Usage UsageRecorder
}

// Hub owns every session of this gateway. It is safe for concurrent use.
type Hub struct {
	cfg      Config
	nc       *nats.Conn
	js       jetstream.JetStream
	auth     Authenticator
	channels *messaging.Channels
	pub      *messaging.Publisher
	log      zerolog.Logger
	metrics  *metrics
	upgrade  fiber.Handler
	origins  map[string]bool
	gate     ConnectionGate
	usage    UsageRecorder
	rechecks chan *session // to the re-check workers
	stop     chan struct{} // ends the wheel and the workers
	stopOnce sync.Once

	mu       sync.Mutex
	tenants  map[string]*tenantHub
	stopping bool
	idle     chan struct{} // closed when stopping and no session is left

	js1      sync.Mutex // guards the lazily bound handles below
	stream   jetstream.Stream
	presence jetstream.KeyValue
}

// New builds the hub and registers it for channel deletions and access changes.
func New(d Deps, cfg Config) (*Hub, error) {
	if d.NATS == nil || d.JetStream == nil || d.Auth == nil || d.Channels == nil || d.Publisher == nil {
		return nil, errors.New("realtime: NATS, JetStream, Auth, Channels and Publisher are required")
	}
	cfg.defaults()
	h := &Hub{
		cfg:      cfg,
		nc:       d.NATS,
		js:       d.JetStream,
		auth:     d.Auth,
		channels: d.Channels,
		pub:      d.Publisher,
		log:      d.Log,
		gate:     d.Connections,
		usage:    d.Usage,
		tenants:  map[string]*tenantHub{},
		rechecks: make(chan *session, recheckQueue),
		stop:     make(chan struct{}),
	}
	var err error
	if h.metrics, err = newMetrics(d.Metrics, h); err != nil {
		return nil, err
	}
	if len(cfg.AllowedOrigins) > 0 {
		h.origins = make(map[string]bool, len(cfg.AllowedOrigins))
		for _, o := range cfg.AllowedOrigins {
			h.origins[o] = true
		}
	}
	h.upgrade = websocket.New(h.serve, websocket.Config{
		// Origins are checked before the upgrade (a JSON 403); the library checks none.
		// An idle session's buffers are what it costs most: the read buffer is small
		// (a frame larger than it is read straight into the message), and the library's
		// write buffers are pooled, held only while it writes a control frame (data
		// frames go out in batches, see session.write).
		ReadBufferSize:  256,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  h.recoverSession,
	})
	d.Channels.OnDeleted(h.channelDeleted)
	d.Channels.OnAccessChanged(h.accessChanged)
	go h.wheel()
	for range recheckWorkers {
		go h.rechecker()
	}
	return h, nil
}

// Re-check workers and their queue: a re-check is a few cached lookups, rarely a call
// to a service; a handful of workers keeps a burst (an event about a big tenant, a NATS
// reconnect) from becoming thousands of goroutines.
const (
	recheckWorkers = 4
	recheckQueue   = 4096
)

// wheel drives every session's periodic work from one goroutine: token expiry, server
// pings and credential re-checks. Per-session timers would cost each idle session three
// runtime timers; this costs a pass over the sessions per tick. After a NATS reconnect
// (cache hints may have been missed meanwhile) every session is re-checked.
func (h *Hub) wheel() {
	cfg := &h.cfg
	tick := min(time.Second, cfg.PingEvery/4, cfg.RecheckEvery/4)
	t := time.NewTicker(max(tick, time.Millisecond))
	defer t.Stop()
	reconnects := h.nc.Stats().Reconnects
	var all []*session
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			r := h.nc.Stats().Reconnects
			recheckAll := r != reconnects
			reconnects = r
			all = h.snapshot(all[:0])
			for _, s := range all {
				s.due(now, recheckAll)
			}
			clear(all)
		}
	}
}

// snapshot appends every live session to buf.
func (h *Hub) snapshot(buf []*session) []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.tenants {
		t.mu.RLock()
		for s := range t.sessions {
			buf = append(buf, s)
		}
		t.mu.RUnlock()
	}
	return buf
}

func (h *Hub) rechecker() {
	for {
		select {
		case <-h.stop:
			return
		case s := <-h.rechecks:
			s.recheckPending.Store(false)
			s.recheckCredentials()
		}
	}
}

// Admission is an upgrade request that passed authentication and tenant resolution.
type Admission struct {
	Principal auth.Principal
	Access    auth.Access
	// The credential as presented, kept to check it again while the session lives.
	Authorization, APIKey string
	RequestID, ClientIP   string
}

// localTicket is the Fiber local that carries an admitted request into its session.
const localTicket = "realtime.ticket"

// ticket is a reserved connection slot of a tenant, handed from the upgrade request to
// its session; released exactly once, by the session's end or by a failed upgrade.
type ticket struct {
	adm    Admission
	tenant *tenantHub
	once   sync.Once
	lease  *time.Timer
}

// ticketLease bounds how long a reservation waits for its session: fasthttp does not
// start the connection handler when writing the 101 response fails, and the slot must
// not leak then.
const ticketLease = 30 * time.Second

// Serve upgrades an authorized request (the httpapi route calls it after its policy):
// Origin, shutdown and the tenant's connection cap are checked first, so a refusal is
// an HTTP error with the JSON body, never a WebSocket close.
func (h *Hub) Serve(c *fiber.Ctx, adm Admission) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return natsrpc.NewError(http.StatusUpgradeRequired, "upgrade_required", "this endpoint speaks WebSocket only: send a WebSocket upgrade request")
	}
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && h.origins != nil && !h.origins[origin] {
		return natsrpc.Forbidden("this Origin may not open WebSocket sessions")
	}
	t, err := h.admit(adm.Access)
	if err != nil {
		return err
	}
	if h.gate != nil {
		// Across gateways: a network round trip, outside the hub's locks.
		if err := h.gate.Acquire(c.UserContext(), adm.Access.TenantID, int64(connectionLimit(adm.Access.TenantTier))); err != nil {
			h.unreserve(t)
			return err
		}
	}
	tk := &ticket{adm: adm, tenant: t}
	c.Locals(localTicket, tk)
	if err := h.upgrade(c); err != nil {
		h.release(tk)
		return natsrpc.BadRequest(natsrpc.CodeBadRequest, "malformed WebSocket upgrade request")
	}
	tk.lease = time.AfterFunc(ticketLease, func() { h.release(tk) })
	return nil
}

// admit reserves a connection slot in the tenant (SPEC §6: 429 connection_limit_exceeded
// with Retry-After). The cap holds here per gateway; the ConnectionGate holds it across
// gateways.
func (h *Hub) admit(acc auth.Access) (*tenantHub, error) {
	limit := connectionLimit(acc.TenantTier)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return nil, natsrpc.Unavailable("the gateway is shutting down; connect again")
	}
	t := h.tenants[acc.TenantID]
	if t == nil {
		t = newTenantHub(h, acc.TenantID)
		h.tenants[acc.TenantID] = t
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if limit > 0 && len(t.sessions)+t.reserved >= limit {
		e := natsrpc.NewError(http.StatusTooManyRequests, natsrpc.CodeConnectionLimit,
			"the tenant has reached its plan's limit of "+strconv.Itoa(limit)+" concurrent connections")
		e.RetryAfter = 5
		if len(t.sessions)+t.reserved == 0 {
			delete(h.tenants, acc.TenantID)
		}
		return nil, e
	}
	t.reserved++
	return t, nil
}

// connectionLimit is the plan's max_concurrent_connections (0 = unlimited).
func connectionLimit(tier string) int {
	p, ok := plans.Get(tier)
	if !ok {
		p, _ = plans.Get(plans.DefaultTier)
	}
	if v := p.Limits.MaxConcurrentConnection; v != nil && *v > 0 {
		return int(*v)
	}
	return 0
}

// release gives back an unused reservation.
func (h *Hub) release(tk *ticket) {
	tk.once.Do(func() {
		h.unreserve(tk.tenant)
		h.ungate(tk.tenant.id)
	})
}

// unreserve gives back a reservation of t.
func (h *Hub) unreserve(t *tenantHub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t.mu.Lock()
	t.reserved--
	t.mu.Unlock()
	h.dropIfEmpty(t)
}

// ungate ends a session (or a reservation) of tenant across gateways.
func (h *Hub) ungate(tenantID string) {
	if h.gate != nil {
		h.gate.Release(tenantID)
	}
}

// dropIfEmpty forgets a tenant with no session, reservation or NATS interest (h.mu held).
func (h *Hub) dropIfEmpty(t *tenantHub) {
	t.mu.Lock()
	empty := len(t.sessions) == 0 && t.reserved == 0
	t.mu.Unlock()
	if empty && h.tenants[t.id] == t {
		delete(h.tenants, t.id)
	}
	if h.stopping && len(h.tenants) == 0 && h.idle != nil {
		select {
		case <-h.idle:
		default:
			close(h.idle)
		}
	}
}

// serve runs on the connection's goroutine once the upgrade succeeded.
func (h *Hub) serve(c *websocket.Conn) {
	tk, _ := c.Locals(localTicket).(*ticket)
	if tk == nil { // cannot happen: Serve sets it
		_ = c.WriteControl(fws.CloseMessage, fws.FormatCloseMessage(fws.CloseInternalServerErr, ""), time.Now().Add(time.Second))
		return
	}
	c.Locals(localTicket, nil) // the session keeps what it needs; the ticket can go
	s := newSession(h, tk, c.Conn)
	if !h.start(s, tk) {
		s.closeNow(realtimev1.CloseGoingAway, realtimev1.ReasonShuttingDown)
		return
	}
	defer h.finish(s)
	s.run()
}

// start turns the ticket's reservation into a live session.
func (h *Hub) start(s *session, tk *ticket) bool {
	if tk.lease != nil {
		tk.lease.Stop()
	}
	ok, ran := false, false
	tk.once.Do(func() {
		ran = true
		h.mu.Lock()
		defer h.mu.Unlock()
		t := tk.tenant
		t.mu.Lock()
		t.reserved--
		if !h.stopping {
			t.sessions[s] = struct{}{}
			ok = true
		}
		t.mu.Unlock()
		if !ok {
			h.dropIfEmpty(t)
		}
	})
	if ran && !ok { // (not ran: release already gave the slot back)
		h.ungate(tk.tenant.id)
	}
	return ok
}

// finish forgets a session that has ended.
func (h *Hub) finish(s *session) {
	t := s.tenant
	t.removeSession(s)
	h.ungate(t.id)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropIfEmpty(t)
}

func (h *Hub) recoverSession(c *websocket.Conn) {
	if p := recover(); p != nil {
		h.log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("websocket session panicked")
	}
}

// Shutdown closes every session with 1001 (after the frames already queued) and waits
// for them to end, or for ctx; new upgrades get 503 from then on.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.stopping = true
	h.idle = make(chan struct{})
	var all []*session
	for _, t := range h.tenants {
		all = append(all, t.sessionList()...)
	}
	if len(h.tenants) == 0 {
		close(h.idle)
	}
	idle := h.idle
	h.mu.Unlock()

	defer h.stopOnce.Do(func() { close(h.stop) })
	for _, s := range all {
		s.close(realtimev1.CloseGoingAway, realtimev1.ReasonShuttingDown, true)
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	// Out of time: cut what is left.
	h.mu.Lock()
	all = all[:0]
	for _, t := range h.tenants {
		all = append(all, t.sessionList()...)
	}
	h.mu.Unlock()
	for _, s := range all {
		s.abort()
	}
	return ctx.Err()
}

// Sessions is the number of live sessions (metrics, tests).
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, t := range h.tenants {
		t.mu.RLock()
		n += len(t.sessions)
		t.mu.RUnlock()
	}
	return n
}

// tenantOf returns the tenant's hub when this gateway has sessions of it.
func (h *Hub) tenantOf(tenantID string) *tenantHub {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tenants[tenantID]
}

// channelDeleted runs on the channel-event goroutine: drop the channel from every
// session of the tenant with unsubscribed {reason: channel_deleted}. Nothing here blocks.
func (h *Hub) channelDeleted(tenantID, channelID string) {
	if t := h.tenantOf(tenantID); t != nil {
		t.channelDeleted(channelID)
	}
}

// accessChanged runs on the channel-event goroutine: agentID's subscription record in
// the channel was removed, or (agentID "") the channel became private. The agent
// sessions subscribed to it are checked again (the cache has forgotten the old answer)
// off this goroutine; those that may no longer read it get unsubscribed {reason:
// access_revoked}. Users and API keys need no record, so they are never touched.
func (h *Hub) accessChanged(tenantID, channelID, agentID string) {
	if t := h.tenantOf(tenantID); t != nil {
		t.accessChanged(channelID, agentID)
	}
}

// messages is the MESSAGES stream handle, bound on first use (the channel service
// creates the stream, possibly after the gateway started).
func (h *Hub) messages(ctx context.Context) (jetstream.Stream, error) {
	h.js1.Lock()
	defer h.js1.Unlock()
	if h.stream != nil {
		return h.stream, nil
	}
	s, err := h.js.Stream(ctx, messagev1.Stream)
	if err != nil {
		return nil, err
	}
	h.stream = s
	return s, nil
}

// presenceKV is the presence bucket, created on first use if the agent service has not
// created it yet (the same config: idempotent).
func (h *Hub) presenceKV(ctx context.Context) (jetstream.KeyValue, error) {
	h.js1.Lock()
	defer h.js1.Unlock()
	if h.presence != nil {
		return h.presence, nil
	}
	kv, err := h.js.CreateKeyValue(ctx, presencev1.BucketConfig(h.cfg.PresenceReplicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = h.js.KeyValue(ctx, presencev1.Bucket)
	}
	if err != nil {
		return nil, err
	}
	h.presence = kv
	return kv, nil
}

// ---- revocation (SPEC §13): the gateway's cache hints call these after the caches ----

// TenantChanged re-checks (or, for a deleted tenant, closes) the tenant's sessions.
func (h *Hub) TenantChanged(ev tenantv1.TenantChanged) {
	t := h.tenantOf(ev.TenantID)
	if t == nil {
		return
	}
	for _, s := range t.sessionList() {
		switch ev.Change {
		case tenantv1.ChangeDeleted:
			s.close(realtimev1.CloseRevoked, realtimev1.ReasonTenantDeleted, false)
		case tenantv1.ChangeMembers:
			if s.principal.Kind == natsrpc.KindUser {
				h.recheckSoon(s)
			}
		case tenantv1.ChangeAPIKey:
			if s.principal.Kind == natsrpc.KindAPIKey {
				h.recheckSoon(s)
			}
		default: // status, plan, or a change this gateway does not know yet
			h.recheckSoon(s)
		}
	}
}

// AgentChanged closes a deleted agent's sessions.
func (h *Hub) AgentChanged(ev agentv1.AgentChanged) {
	t := h.tenantOf(ev.TenantID)
	if t == nil {
		return
	}
	agent, _ := agentv1.NormalizeID(ev.AgentID)
	for _, s := range t.sessionList() {
		if s.principal.Kind == natsrpc.KindAgent && s.principal.AgentID == agent {
			if ev.Change == agentv1.ChangeDeleted {
				s.close(realtimev1.CloseRevoked, realtimev1.ReasonAgentDeleted, false)
			} else {
				h.recheckSoon(s)
			}
		}
	}
}

// KeyChanged closes the sessions of agent tokens minted with a revoked or deleted key.
func (h *Hub) KeyChanged(ev sshkeyv1.KeyChanged) {
	t := h.tenantOf(ev.TenantID)
	if t == nil {
		return
	}
	key, _ := agentv1.NormalizeID(ev.KeyID)
	for _, s := range t.sessionList() {
		if s.principal.Kind == natsrpc.KindAgent && s.principal.KeyID == key {
			if ev.Change == sshkeyv1.ChangeRevoked || ev.Change == sshkeyv1.ChangeDeleted {
				s.close(realtimev1.CloseRevoked, realtimev1.ReasonTokenRevoked, false)
			} else {
				h.recheckSoon(s)
			}
		}
	}
}

// recheckSoon queues a session's credentials to be checked again by the workers (the
// callers are NATS callbacks and the wheel: they never wait). When the queue is full
// the wheel retries at its next tick.
func (h *Hub) recheckSoon(s *session) {
	if !s.recheckPending.CompareAndSwap(false, true) {
		return
	}
	select {
	case h.rechecks <- s:
	default:
		s.recheckPending.Store(false)
		s.nextRecheck.Store(0)
	}
}
