package limits

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/limitsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
)

// The buckets of the shared counters (names and configs: contracts/limitsv1). Only
// gateways use them (NATS permissions: contracts/natsperm.GatewayBuckets).

// Lease sizes. API calls: a twentieth of the per-minute limit, so two replicas stay
// within 10 % of it. Messages: a five-hundredth of the daily quota, so the undershoot of
// a few replicas stays under max(1 %, 100 messages) (SPEC §6).
const (
	rateLeaseDivisor  = 20
	quotaLeaseDivisor = 500
)

// DefaultTimeout bounds one KV round trip of a lease.
const DefaultTimeout = time.Second

// Config configures Limits; the zero value works.
type Config struct {
	Timeout time.Duration // one KV round trip (default 1 s); slower counts as down
	// Replicas of the buckets when this gateway creates them (NATS_JS_REPLICAS;
	// default 1, never lowering an existing bucket's).
	Replicas int
	Log      zerolog.Logger
	Metrics  *Metrics // nil: fresh, unregistered
}

// Limits enforces API calls per minute and messages per day (messaging.MessageQuota).
// It is safe for concurrent use.
type Limits struct {
	rate, quota *Leases
	metrics     *Metrics
	// tiers holds each plan's limits, read once: plans.Get copies a plan on every call.
	tiers map[string]plans.Limits
	now   func() time.Time
}

// New builds Limits over js; the buckets are created on first use (and again after a
// failure), so a gateway starts even while JetStream is not ready.
func New(js jetstream.JetStream, cfg Config) (*Limits, error) {
	if js == nil {
		return nil, errors.New("limits: JetStream is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Metrics == nil {
		m, err := NewMetrics(nil)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	return &Limits{
		rate:    newLeases(&counter{js: js, cfg: limitsv1.RateStreamConfig(cfg.Replicas)}, cfg.Timeout, cfg.Metrics, cfg.Log),
		quota:   newLeases(&counter{js: js, cfg: limitsv1.QuotaStreamConfig(cfg.Replicas)}, cfg.Timeout, cfg.Metrics, cfg.Log),
		metrics: cfg.Metrics,
		tiers:   tierLimits(),
		now:     time.Now,
	}, nil
}

// Decision is the answer for one API call.
type Decision struct {
	// Limited: the plan has a per-minute limit (the other fields mean something).
	Limited   bool
	Allowed   bool
	Limit     int64
	Remaining int64
	Reset     int // seconds until the window ends (the next UTC minute)
}

// tierLimits maps every plan's id to its limits.
func tierLimits() map[string]plans.Limits {
	m := map[string]plans.Limits{}
	for _, p := range plans.All() {
		m[p.ID] = p.Limits
	}
	return m
}

// limitsOf are the limits of tier (a tier not in the table gets the default plan's).
func (l *Limits) limitsOf(tier string) plans.Limits {
	if lim, ok := l.tiers[tier]; ok {
		return lim
	}
	return l.tiers[plans.DefaultTier]
}

// APICall counts one API call of tenant on plan tier against the per-minute limit.
func (l *Limits) APICall(ctx context.Context, tenant, tier string) Decision {
	lim := l.limitsOf(tier).MaxAPICallsPerMinute
	if lim == nil || *lim <= 0 {
		return Decision{Allowed: true}
	}
	now := l.now()
	minute := now.Unix() / 60
	end := time.Unix((minute+1)*60, 0)
	reset := int((minute+1)*60 - now.Unix())
	key := limitsv1.RateSubject(tenant, minute)
	g := l.rate.Take(ctx, key, end, *lim, max(1, *lim/rateLeaseDivisor), 1)
	if !g.Allowed {
		l.metrics.refused.WithLabelValues("api_calls_per_minute").Inc()
	}
	return Decision{Limited: true, Allowed: g.Allowed, Limit: *lim, Remaining: g.Remaining, Reset: reset}
}

// Allow implements messaging.MessageQuota: n messages of tenant today against the plan's
// daily quota; a refusal is 429 message_quota_exceeded until the next UTC midnight.
func (l *Limits) Allow(ctx context.Context, tenant, tier string, n int) error {
	lim := l.limitsOf(tier).MaxMessagesPerDay
	if lim == nil || *lim <= 0 {
		return nil
	}
	key, end := l.quotaKey(tenant)
	g := l.quota.Take(ctx, key, end, *lim, max(1, *lim/quotaLeaseDivisor), int64(n))
	if g.Allowed {
		return nil
	}
	l.metrics.refused.WithLabelValues("messages_per_day").Inc()
	retry := max(1, int(end.Sub(l.now()).Seconds()+0.999))
	return &natsrpc.Error{Status: http.StatusTooManyRequests, Code: natsrpc.CodeMessageQuota, RetryAfter: retry,
		Detail: "the tenant has used its plan's " + strconv.FormatInt(*lim, 10) + " messages for today (UTC); the quota resets at midnight UTC"}
}

// Refund implements messaging.MessageQuota: n messages allowed today that were not
// stored (a failed publish, an idempotent replay) go back to this gateway's lease.
func (l *Limits) Refund(tenant, tier string, n int) {
	if lim := l.limitsOf(tier).MaxMessagesPerDay; lim == nil || *lim <= 0 {
		return
	}
	key, _ := l.quotaKey(tenant)
	l.quota.Return(key, int64(n))
}

// quotaKey is tenant's key today and when today ends.
func (l *Limits) quotaKey(tenant string) (string, time.Time) {
	now := l.now().UTC()
	day := now.Truncate(24 * time.Hour)
	return limitsv1.QuotaSubject(tenant, day), day.Add(24 * time.Hour)
}
