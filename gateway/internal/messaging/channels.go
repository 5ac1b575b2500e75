package messaging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Bounds and defaults of the channel cache (issue 4 design, SPEC §1: a 404 is cached ≤ 1 s).
const (
	MaxTTL               = 5 * time.Second
	MaxNotFoundTTL       = time.Second
	DefaultLookupTimeout = 5 * time.Second
	DefaultCacheSize     = 100_000
)

// ChannelInfo is what publishing to or subscribing to a channel needs to know about it.
type ChannelInfo struct {
	ChannelID     string // upper-case ULID
	Type          string // channelv1.TypePublic | channelv1.TypePrivate
	MaxAgeSeconds int64  // history.max_age_seconds: the Nats-TTL of its messages; 0 = unlimited
}

// Private reports whether agents need a subscription record in the channel.
func (i ChannelInfo) Private() bool { return i.Type == channelv1.TypePrivate }

// Source answers the cache's misses. RPCSource asks the channel service
// (svc.channel.v1.lookup); errors are *natsrpc.Error, 404 for an unknown or deleted channel.
type Source interface {
	Lookup(ctx context.Context, req channelv1.LookupRequest) (channelv1.Lookup, error)
}

// RPCSource is the Source of a running gateway: one natsrpc call per miss.
func RPCSource(rpc *natsrpc.Client) Source { return rpcSource{rpc: rpc} }

type rpcSource struct{ rpc *natsrpc.Client }

func (s rpcSource) Lookup(ctx context.Context, req channelv1.LookupRequest) (channelv1.Lookup, error) {
	var out channelv1.Lookup
	err := s.rpc.Call(ctx, channelv1.Subject(channelv1.OpLookup), &req, &out)
	return out, err
}

// ChannelsConfig configures Channels; the zero value works.
type ChannelsConfig struct {
	// TTL bounds how long channel facts and agent roles are cached (≤ 5 s, default 5 s):
	// what the event feed misses is stale at most this long.
	TTL time.Duration
	// NotFoundTTL bounds how long "no such channel" is cached (≤ 1 s, default 1 s), so a
	// channel created right after a failed publish works within a second even if its
	// created event is lost.
	NotFoundTTL time.Duration
	// LookupTimeout bounds one lookup (default 5 s). A lookup is shared by every caller
	// waiting for the same answer, so it is not tied to one caller's context.
	LookupTimeout time.Duration
	// CacheSize bounds the number of channels cached (default 100,000).
	CacheSize int
	Log       zerolog.Logger
	// Applied, when set, is called after each channel event has reached the cache (tests
	// wait on it instead of on time).
	Applied func(subject string)
}

// Channels is the gateway's channel cache: channel facts (exists, type, history age)
// and agents' subscription roles, filled on a miss from the channel service and kept
// fresh by the channel events of every tenant (Subscribe). It is the only thing a
// publish needs besides authentication, so a warm publish calls no service.
// It is safe for concurrent use.
type Channels struct {
	src   Source
	cfg   ChannelsConfig
	cache *channelCache

	flights singleflight.Group
	// gen changes on every forget; a lookup that overlapped one does not store its
	// answer, so an answer read before a change never outlives the event announcing it.
	gen atomic.Uint64
	// mu makes "check gen, then store" atomic with respect to forgetting.
	mu sync.RWMutex

	cbMu      sync.RWMutex
	onDeleted []func(tenantID, channelID string)
	onAccess  []func(tenantID, channelID, agentID string)
}

// NewChannels checks cfg and builds the cache over src.
func NewChannels(src Source, cfg ChannelsConfig) (*Channels, error) {
	if src == nil {
		return nil, errors.New("messaging: a channel Source is required")
	}
	switch {
	case cfg.TTL == 0:
		cfg.TTL = MaxTTL
	case cfg.TTL < 0 || cfg.TTL > MaxTTL:
		return nil, fmt.Errorf("messaging: TTL must be in (0, %s]", MaxTTL)
	}
	switch {
	case cfg.NotFoundTTL == 0:
		cfg.NotFoundTTL = MaxNotFoundTTL
	case cfg.NotFoundTTL < 0 || cfg.NotFoundTTL > MaxNotFoundTTL:
		return nil, fmt.Errorf("messaging: NotFoundTTL must be in (0, %s]", MaxNotFoundTTL)
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	return &Channels{src: src, cfg: cfg, cache: newChannelCache(cfg.CacheSize, time.Now)}, nil
}

// errChannelNotFound is the one answer for a channel the caller cannot see: unknown,
// deleted, malformed id, or another tenant's (which must not be told apart).
func errChannelNotFound() error { return natsrpc.NotFound("channel not found") }

// key checks the ids (they become a NATS subject later) and builds the cache key.
func key(tenantID, channelID string) (chanKey, bool) {
	id, ok := channelv1.NormalizeID(channelID)
	if !ok || !validation.IsUUID(tenantID) {
		return chanKey{}, false
	}
	return chanKey{tenant: tenantID, channel: id}, true
}

// Lookup returns the facts of a live channel of tenantID. An unknown, deleted or
// malformed channel id is a *natsrpc.Error 404; 503/504 when the channel service cannot
// answer a miss. channelID may be in any case.
func (c *Channels) Lookup(ctx context.Context, tenantID, channelID string) (ChannelInfo, error) {
	k, ok := key(tenantID, channelID)
	if !ok {
		return ChannelInfo{}, errChannelNotFound()
	}
	if f, ok := c.cache.facts(k); ok {
		if !f.found {
			return ChannelInfo{}, errChannelNotFound()
		}
		return f.info, nil
	}
	info, _, err := c.fetch(ctx, k, "")
	return info, err
}

// AgentRole returns agentID's subscription role in the channel (channelv1.Role*; "" =
// no subscription record), cached like Lookup. Errors are Lookup's: 404 for a channel
// the tenant does not have.
func (c *Channels) AgentRole(ctx context.Context, tenantID, channelID, agentID string) (string, error) {
	k, ok := key(tenantID, channelID)
	if !ok {
		return "", errChannelNotFound()
	}
	agent, ok := channelv1.NormalizeID(agentID)
	if !ok {
		// Not an agent id at all: it cannot hold a subscription, but the channel must
		// still exist for the answer to be "no role" rather than 404.
		if _, err := c.Lookup(ctx, tenantID, channelID); err != nil {
			return "", err
		}
		return "", nil
	}
	if f, role, ok := c.cache.role(k, agent); ok {
		if !f.found {
			return "", errChannelNotFound()
		}
		return role, nil
	}
	_, role, err := c.fetch(ctx, k, agent)
	return role, err
}

// fetch asks the source once for every concurrent caller with the same question and
// caches the answer (a 404 for NotFoundTTL) unless a forget overlapped the lookup.
func (c *Channels) fetch(ctx context.Context, k chanKey, agent string) (ChannelInfo, string, error) {
	gen := c.gen.Load()
	flight := k.tenant + "\x00" + k.channel + "\x00" + agent + "\x00" + strconv.FormatUint(gen, 10)
	ch := c.flights.DoChan(flight, func() (any, error) {
		// The lookup runs on its own deadline, not the first caller's; the identity of
		// the first caller (request id) still travels for the logs.
		id := natsrpc.IdentityFrom(ctx)
		lctx := natsrpc.WithIdentity(context.WithoutCancel(ctx), natsrpc.Identity{RequestID: id.RequestID, Kind: natsrpc.KindSystem})
		lctx, cancel := context.WithTimeout(lctx, c.cfg.LookupTimeout)
		defer cancel()
		res, err := c.src.Lookup(lctx, channelv1.LookupRequest{TenantID: k.tenant, ChannelID: k.channel, AgentID: agent})
		if err != nil {
			if e, ok := natsrpc.AsError(err); ok && e.Status == http.StatusNotFound {
				c.store(gen, func() { c.cache.setFacts(k, ChannelInfo{}, false, c.cfg.NotFoundTTL) })
				return nil, errChannelNotFound()
			}
			return nil, err
		}
		info := ChannelInfo{ChannelID: k.channel, Type: res.Type, MaxAgeSeconds: max(res.MaxAgeSeconds, 0)}
		c.store(gen, func() {
			c.cache.setFacts(k, info, true, c.cfg.TTL)
			if agent != "" {
				c.cache.setRole(k, agent, res.AgentRole, c.cfg.TTL)
			}
		})
		return lookupResult{info: info, role: res.AgentRole}, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return ChannelInfo{}, "", r.Err
		}
		res := r.Val.(lookupResult)
		return res.info, res.role, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ChannelInfo{}, "", natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "the channel service did not answer in time")
		}
		return ChannelInfo{}, "", natsrpc.Unavailable("request cancelled")
	}
}

type lookupResult struct {
	info ChannelInfo
	role string
}

// store runs set only if no forget happened since the lookup of generation gen began.
func (c *Channels) store(gen uint64, set func()) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.gen.Load() == gen {
		set()
	}
}

// forget runs drop as one step with moving to a new generation.
func (c *Channels) forget(drop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	drop()
}

// Forget drops what the cache knows about a channel (its facts and every agent role
// in it). The event feed calls it; so does the gateway after it changed a channel.
func (c *Channels) Forget(tenantID, channelID string) {
	if k, ok := key(tenantID, channelID); ok {
		c.forget(func() { c.cache.forget(k) })
	}
}

// ForgetRole drops an agent's cached role in a channel: the gateway calls it after it
// added or removed that agent's subscription (other gateways hear of it from the
// subscriptions events, or see it within TTL).
func (c *Channels) ForgetRole(tenantID, channelID, agentID string) {
	k, ok := key(tenantID, channelID)
	agent, aok := channelv1.NormalizeID(agentID)
	if ok && aok {
		c.forget(func() { c.cache.forgetRole(k, agent) })
	}
}

// deleted records that a channel is gone. Channel ids are never reused, so the absence
// is cached for the full TTL.
func (c *Channels) deleted(k chanKey) {
	c.forget(func() {
		c.cache.forget(k)
		c.cache.setFacts(k, ChannelInfo{}, false, c.cfg.TTL)
	})
}

// OnDeleted registers fn to be called for every channel deletion seen on the event feed
// (after the cache has dropped the channel). fn runs on the event subscription's
// goroutine: it must not block (hand the work to another goroutine).
func (c *Channels) OnDeleted(fn func(tenantID, channelID string)) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.onDeleted = append(c.onDeleted, fn)
}

// OnAccessChanged registers fn to be called when agents may have lost the right to read
// a channel: agentID's subscription record was removed, or (agentID "") the channel
// became private, so every agent without a record lost it. The cache has already
// dropped what it knew, so a check made by fn reads the truth. fn runs on the event
// subscription's goroutine: it must not block.
func (c *Channels) OnAccessChanged(fn func(tenantID, channelID, agentID string)) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.onAccess = append(c.onAccess, fn)
}

// Subscribe feeds the cache with the channel and subscription events of every tenant
// (eventsv1.AllChannelEvents, eventsv1.AllSubscriptionEvents) on nc. The returned stop
// unsubscribes. Events are hints: a lost one costs at most TTL of staleness.
func (c *Channels) Subscribe(nc *nats.Conn) (stop func(), err error) {
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, subject := range []string{eventsv1.AllChannelEvents, eventsv1.AllSubscriptionEvents} {
		sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if !c.apply(m.Subject, m.Data) {
				c.cfg.Log.Warn().Str("subject", m.Subject).Msg("ignoring malformed channel event")
			}
			if c.cfg.Applied != nil {
				c.cfg.Applied(m.Subject)
			}
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	// One round trip so the server has the interest before the caller goes on. A failure
	// is not fatal: the subscriptions stand and are renewed on reconnect.
	if err := nc.Flush(); err != nil {
		c.cfg.Log.Warn().Err(err).Msg("channel events: subscription not confirmed by the server yet")
	}
	return stop, nil
}

// apply handles one event of tenant.<t>.events.channels.<action> or
// tenant.<t>.events.subscriptions.<action>. The tenant comes from the subject (only
// services publish under tenant.*.events), the channel (and agent) from the data.
func (c *Channels) apply(subject string, data []byte) bool {
	p := strings.Split(subject, ".")
	if len(p) != 5 || p[0] != "tenant" || p[2] != "events" {
		return false
	}
	tenant, entity, action := p[1], p[3], p[4]
	var ev eventsv1.Event
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	switch entity {
	case eventsv1.EntityChannels:
		return c.applyChannel(tenant, action, ev.Data)
	case eventsv1.EntitySubscriptions:
		return c.applySubscription(tenant, action, ev.Data)
	}
	return false
}

// applySubscription forgets the agent's cached role; after a removal it tells
// OnAccessChanged.
func (c *Channels) applySubscription(tenant, action string, data []byte) bool {
	var ref eventsv1.SubscriptionRef
	if json.Unmarshal(data, &ref) != nil {
		return false
	}
	k, ok := key(tenant, ref.ChannelID)
	agent, aok := channelv1.NormalizeID(ref.AgentID)
	if !ok || !aok {
		return false
	}
	switch action {
	case eventsv1.ActionAdded:
		c.forget(func() { c.cache.forgetRole(k, agent) })
	case eventsv1.ActionRemoved:
		c.forget(func() { c.cache.forgetRole(k, agent) })
		c.accessChanged(k, agent)
	default:
		return false
	}
	return true
}

func (c *Channels) accessChanged(k chanKey, agent string) {
	c.cbMu.RLock()
	fns := c.onAccess
	c.cbMu.RUnlock()
	for _, fn := range fns {
		fn(k.tenant, k.channel, agent)
	}
}

func (c *Channels) applyChannel(tenant, action string, data []byte) bool {
	var ref eventsv1.ChannelRef
	if json.Unmarshal(data, &ref) != nil {
		return false
	}
	k, ok := key(tenant, ref.ChannelID)
	if !ok {
		return false
	}
	switch action {
	case eventsv1.ActionCreated:
		// Forget rather than trust the event's copy: the next use reads the truth once.
		c.forget(func() { c.cache.forget(k) })
	case eventsv1.ActionUpdated:
		c.forget(func() { c.cache.forget(k) })
		// Public → private takes the channel from every agent without a record. The
		// event names the new type; an older publisher's event without one is checked.
		if ref.Type != channelv1.TypePublic {
			c.accessChanged(k, "")
		}
	case eventsv1.ActionDeleted:
		c.deleted(k)
		c.cbMu.RLock()
		fns := c.onDeleted
		c.cbMu.RUnlock()
		for _, fn := range fns {
			fn(k.tenant, k.channel)
		}
	default:
		return false
	}
	return true
}
