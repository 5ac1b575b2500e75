package limits

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/limitsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/replication"
)

// The bucket (contracts/limitsv1.ConnBucket) holds each gateway's session count per
// tenant: key <tenant>.<gateway>, value the count, a per-key TTL refreshed while the
// gateway lives (a gateway that dies stops counting after ConnTTL).

// Connection count timings.
const (
	ConnTTL     = 90 * time.Second
	ConnRefresh = 30 * time.Second
)

// ConnectionsConfig configures Connections.
type ConnectionsConfig struct {
	// Source names this gateway in the keys (a ULID; the metering source).
	Source  string
	Timeout time.Duration // the admit's publish and wait for its echo (default 1 s)
	TTL     time.Duration // default ConnTTL
	Refresh time.Duration // default ConnRefresh
	// Peak, when set, hears the tenant's cluster-wide count at every admit and refresh
	// (the meter's peak connections).
	Peak    func(tenant string, n int64)
	Log     zerolog.Logger
	Metrics *Metrics
	// Replicas of the bucket when this gateway creates it (NATS_JS_REPLICAS; default 1,
	// never lowering an existing bucket's).
	Replicas int
}

// Connections caps a tenant's WebSocket sessions across gateways. Each gateway publishes
// its own count per tenant and watches everyone's. An admit is serialised per tenant on
// this gateway, publishes the new count, waits until its own watcher has seen that
// publish (so it has seen every earlier publish of the other gateways too, the stream
// being ordered), and then admits only if the sum is within the limit, else takes the
// count back. Of two admits racing on different gateways the later one sees the earlier,
// so the cap holds; an admit that was then refused may keep a third one out for a
// moment (conservative, never over).
type Connections struct {
	js  jetstream.JetStream
	cfg ConnectionsConfig
	bkt *bucket

	mu      sync.Mutex
	tenants map[string]*connTenant
	seen    uint64        // the last revision the watcher delivered
	changed chan struct{} // closed (and replaced) at each delivery
	watchOK bool          // the watcher has delivered the bucket's initial state

	stop chan struct{}
	done chan struct{}
}

type connTenant struct {
	admit  sync.Mutex       // serialises this gateway's admits and publishes for the tenant
	local  int64            // this gateway's sessions (connTenant.admit held to change)
	others map[string]int64 // other gateways' counts (Connections.mu)
}

// NewConnections builds the counter; Start runs its watcher and refresher.
func NewConnections(js jetstream.JetStream, cfg ConnectionsConfig) (*Connections, error) {
	if js == nil || cfg.Source == "" {
		return nil, errors.New("limits: JetStream and a Source are required")
	}
	if strings.ContainsAny(cfg.Source, ".*> ") {
		return nil, errors.New("limits: the Source must be a plain token")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TTL <= 0 {
		cfg.TTL = ConnTTL
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = ConnRefresh
	}
	if cfg.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	return &Connections{js: js, cfg: cfg, bkt: &bucket{js: js, cfg: limitsv1.ConnBucketConfig(cfg.Replicas)},
		tenants: map[string]*connTenant{}, changed: make(chan struct{}),
		stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Start runs the watcher (restarted after failures) and the refresher until Close.
func (c *Connections) Start() {
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.Refresh)
		defer t.Stop()
		for {
			ctx, cancel := context.WithCancel(context.Background())
			ended := make(chan struct{})
			go func() { defer close(ended); c.watch(ctx) }()
			for running := true; running; {
				select {
				case <-c.stop:
					cancel()
					<-ended
					return
				case <-ended:
					running = false
				case <-t.C:
					c.refresh()
				}
			}
			cancel()
			select { // back off before watching again
			case <-c.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

// Close stops the watcher and refresher; this gateway's keys expire after their TTL
// (or are published as 0 when its sessions end before that).
func (c *Connections) Close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
		<-c.done
	}
}

// watch follows every key of the bucket until ctx ends or the watch fails.
func (c *Connections) watch(ctx context.Context) {
	kctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	kv, err := c.bkt.get(kctx)
	cancel()
	if err != nil {
		c.cfg.Log.Warn().Err(err).Msg("connections bucket unavailable; the connection cap holds per gateway meanwhile")
		return
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		c.cfg.Log.Warn().Err(err).Msg("connections watch failed")
		return
	}
	defer func() { _ = w.Stop() }()
	// Others' counts are rebuilt from the watch's initial state.
	c.mu.Lock()
	for _, t := range c.tenants {
		clear(t.others)
	}
	c.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			c.apply(e)
		}
	}
}

// apply takes one watch delivery (nil: the initial state is complete).
func (c *Connections) apply(e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e == nil {
		c.watchOK = true
	} else {
		if e.Revision() > c.seen {
			c.seen = e.Revision()
		}
		if tenant, source, ok := strings.Cut(e.Key(), "."); ok && source != c.cfg.Source {
			t := c.tenantLocked(tenant)
			n, err := strconv.ParseInt(string(e.Value()), 10, 64)
			if e.Operation() != jetstream.KeyValuePut || err != nil || n <= 0 {
				delete(t.others, source)
			} else {
				t.others[source] = n
			}
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Connections) tenantLocked(id string) *connTenant {
	t := c.tenants[id]
	if t == nil {
		t = &connTenant{others: map[string]int64{}}
		c.tenants[id] = t
	}
	return t
}

func (c *Connections) tenant(id string) *connTenant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenantLocked(id)
}

// othersOf sums the other gateways' counts of t.
func (c *Connections) othersOf(t *connTenant) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, v := range t.others {
		n += v
	}
	return n
}

// Acquire admits one more session of tenant when the cluster-wide count stays within
// limit (≤ 0: unlimited), or returns 429 connection_limit_exceeded. When the shared
// state is unreachable the cap holds per gateway only (fail open across gateways).
func (c *Connections) Acquire(ctx context.Context, tenant string, limit int64) error {
	t := c.tenant(tenant)
	t.admit.Lock()
	defer t.admit.Unlock()
	t.local++
	if limit <= 0 {
		c.publishAsync(tenant, t.local)
		c.peak(tenant, t.local+c.othersOf(t))
		return nil
	}
	if t.local > limit { // this gateway alone is at the cap: no need to ask
		t.local--
		return c.refuse(limit)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	rev, err := c.publish(ctx, tenant, t.local)
	if err == nil {
		err = c.waitSeen(ctx, rev)
	}
	if err != nil {
		// Shared state unreachable: the local count within the limit is all we know.
		c.cfg.Metrics.failOpen.Inc()
		c.cfg.Log.Warn().Err(err).Str("tenant_id", tenant).Msg("connection count not shared; admitting within this gateway's cap (fail open)")
		c.peak(tenant, t.local+c.othersOf(t))
		return nil
	}
	total := t.local + c.othersOf(t)
	if total > limit {
		t.local--
		c.publishAsync(tenant, t.local)
		return c.refuse(limit)
	}
	c.peak(tenant, total)
	return nil
}

// Release ends one session of tenant.
func (c *Connections) Release(tenant string) {
	t := c.tenant(tenant)
	t.admit.Lock()
	defer t.admit.Unlock()
	if t.local > 0 {
		t.local--
	}
	c.publishAsync(tenant, t.local)
}

// Count is the tenant's sessions across gateways as this gateway sees them.
func (c *Connections) Count(tenant string) int64 {
	t := c.tenant(tenant)
	t.admit.Lock()
	defer t.admit.Unlock()
	return t.local + c.othersOf(t)
}

func (c *Connections) refuse(limit int64) error {
	c.cfg.Metrics.refused.WithLabelValues("concurrent_connections").Inc()
	e := natsrpc.NewError(http.StatusTooManyRequests, natsrpc.CodeConnectionLimit,
		"the tenant has reached its plan's limit of "+strconv.FormatInt(limit, 10)+" concurrent connections")
	e.RetryAfter = 5
	return e
}

func (c *Connections) peak(tenant string, n int64) {
	if c.cfg.Peak != nil && n > 0 {
		c.cfg.Peak(tenant, n)
	}
}

// refresh republishes this gateway's non-zero counts (their TTL starts again) and feeds
// the peak, so a long-lived session counts on every day it spans.
func (c *Connections) refresh() {
	c.mu.Lock()
	ids := make([]string, 0, len(c.tenants))
	for id := range c.tenants {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		t := c.tenant(id)
		t.admit.Lock()
		if t.local > 0 {
			c.publishAsync(id, t.local)
		}
		c.peak(id, t.local+c.othersOf(t))
		t.admit.Unlock()
	}
}

// msg is the publish of tenant's count: straight to the bucket's subject with a TTL
// (kv.Put would make the key permanent).
func (c *Connections) msg(tenant string, n int64) *nats.Msg {
	return &nats.Msg{Subject: "$KV." + limitsv1.ConnBucket + "." + limitsv1.ConnKey(tenant, c.cfg.Source), Data: strconv.AppendInt(nil, n, 10)}
}

// publish sends the count and returns its revision.
func (c *Connections) publish(ctx context.Context, tenant string, n int64) (uint64, error) {
	if _, err := c.bkt.get(ctx); err != nil {
		return 0, err
	}
	ack, err := c.js.PublishMsg(ctx, c.msg(tenant, n), jetstream.WithMsgTTL(c.cfg.TTL))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// publishAsync sends the count without waiting (releases, refreshes): the publishes of
// one connection keep their order, so the bucket ends with the latest count.
func (c *Connections) publishAsync(tenant string, n int64) {
	if _, err := c.js.PublishMsgAsync(c.msg(tenant, n), jetstream.WithMsgTTL(c.cfg.TTL)); err != nil {
		c.cfg.Log.Debug().Err(err).Msg("connection count not published")
	}
}

// waitSeen waits until the watcher has delivered revision rev.
func (c *Connections) waitSeen(ctx context.Context, rev uint64) error {
	for {
		c.mu.Lock()
		ok, ch := c.watchOK && c.seen >= rev, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// bucket is a KV bucket created (or bound) on first use, and again after a failure.
type bucket struct {
	js  jetstream.JetStream
	cfg jetstream.KeyValueConfig

	mu sync.Mutex
	kv jetstream.KeyValue
}

func (b *bucket) get(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil {
		return b.kv, nil
	}
	kv, err := replication.KeyValue(ctx, b.js, b.cfg)
	if err != nil {
		return nil, err
	}
	b.kv = kv
	return kv, nil
}
