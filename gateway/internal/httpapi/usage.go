package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/limits"
)

// RateLimiter decides each API call against the tenant's per-minute limit
// (limits.Limits, shared by every gateway).
type RateLimiter interface {
	APICall(ctx context.Context, tenantID, tier string) limits.Decision
}

// UsageRecorder counts API calls with their body sizes (metering.Meter).
type UsageRecorder interface {
	APICall(tenantID string, bytesIn, bytesOut int)
}

// Response headers of the per-minute limit (IETF draft "RateLimit header fields").
const (
	headerRateLimit     = "RateLimit-Limit"
	headerRateRemaining = "RateLimit-Remaining"
	headerRateReset     = "RateLimit-Reset"
)

// rateLimitDescription is the API-wide rule, in the document's description.
const rateLimitDescription = "**Rate limits.** Every call resolved to a tenant counts toward the plan's API calls per minute (fixed UTC minutes), shared by every gateway replica (within 10 %): " +
	"tenant-scoped responses carry `RateLimit-Limit`, `RateLimit-Remaining` (an estimate across replicas) and `RateLimit-Reset` (seconds to the next minute); over the limit the answer is 429 `rate_limited` with `Retry-After`. " +
	"`/auth/*`, unauthenticated calls, 429s and WebSocket frames do not count; plans without a limit (enterprise) get no such headers. " +
	"The shared counters live in NATS JetStream counter streams; when those are unreachable the limits fail open (calls are allowed, the gateway logs a warning and counts `artcafe_limits_fail_open_total`)."

// Usage and billing replies.
type (
	// UsageMetrics is GET /usage-metrics.
	UsageMetrics struct {
		usagev1.MetricsResponse
		Success bool `json:"success"`
	}
	// Billing is GET /billing.
	Billing struct {
		tenantv1.BillingResponse
		Success bool `json:"success"`
	}
	// PlanList is GET /billing/plans.
	PlanList struct {
		Plans   []plans.Plan `json:"plans" nullable:"false"`
		Success bool         `json:"success"`
	}
)

const tagUsage = "usage"

// usageRoutes are SPEC §4.7. Agents may not read usage or billing (§13); a suspended
// tenant still may.
func (a *api) usageRoutes() []route {
	read := tenantPolicy(users|apiKeys, natsrpc.RoleViewer).withSuspended()
	billingDesc := "Viewers and up, and the API key (also while the tenant is suspended). The plan, its monthly price (`amount`, USD), the payment status and the next billing date."
	return []route{
		{method: http.MethodGet, path: "/api/v1/usage-metrics", op: "get-usage-metrics", tag: tagUsage, summary: "Daily usage of the tenant",
			desc: "Viewers and up, and the API key (also while the tenant is suspended). One row per UTC day from `start_date` to `end_date` (inclusive; default: the last 7 days ending today), zeros included, oldest first; `totals` sums the counters (`messages` = published + delivered); `limits` are the plan's. " +
				"End before start, or more than 92 days → 422. API calls count every call resolved to the tenant (4xx included; not `/auth/*`, 429s or WebSocket frames); bytes are request and response bodies plus WebSocket frames; counts are exact and reach the rows within seconds.",
			resp: UsageMetrics{}, status: http.StatusOK, policy: read, query: usageQuery, handle: a.usageMetrics},
		{method: http.MethodGet, path: "/api/v1/usage-metrics/billing", op: "get-usage-billing", tag: tagUsage, summary: "Billing of the tenant",
			desc: billingDesc + " The same as `GET /api/v1/billing`.", resp: Billing{}, status: http.StatusOK, policy: read, handle: a.billing},
		{method: http.MethodGet, path: "/api/v1/billing", op: "get-billing", tag: tagUsage, summary: "Billing of the tenant",
			desc: billingDesc, resp: Billing{}, status: http.StatusOK, policy: read, handle: a.billing},
		{method: http.MethodGet, path: "/api/v1/billing/plans", op: "list-plans", tag: tagUsage, summary: "The plans and their limits",
			desc: "Any authenticated caller. Unlimited is `null`.", resp: PlanList{}, status: http.StatusOK, policy: anyCaller(), handle: a.listPlans},
	}
}

var usageQuery = []queryParam{
	{name: "start_date", desc: "First day (YYYY-MM-DD, UTC), inclusive; default: 6 days before end_date."},
	{name: "end_date", desc: "Last day (YYYY-MM-DD, UTC), inclusive; default: today."},
}

func (a *api) usageMetrics(r *request) error {
	req := usagev1.MetricsRequest{StartDate: query(r, "start_date"), EndDate: query(r, "end_date")}
	// Checked here too: a bad range is the caller's mistake whether or not the usage
	// service is up.
	if _, _, err := req.Range(time.Now()); err != nil {
		return err
	}
	return r.relay(http.StatusOK, usagev1.Subject(usagev1.OpMetrics), req)
}

func (a *api) billing(r *request) error {
	return r.relay(http.StatusOK, tenantv1.Subject(tenantv1.OpBilling), tenantv1.BillingRequest{})
}

func (a *api) listPlans(r *request) error {
	return r.reply(http.StatusOK, PlanList{Plans: plans.All(), Success: true})
}

// limitCall applies the per-minute limit to a call resolved to a tenant: an insider's
// call counts (info.metered) and gets the RateLimit-* headers, or the 429.
func (a *api) limitCall(c *fiber.Ctx, ctx context.Context, pr auth.Principal, acc auth.Access, info *reqInfo) error {
	if !insider(pr, acc) {
		return nil
	}
	info.metered = true
	if a.rate == nil {
		return nil
	}
	d := a.rate.APICall(ctx, acc.TenantID, acc.TenantTier)
	if !d.Limited {
		return nil
	}
	h := &c.Response().Header
	h.Set(headerRateLimit, strconv.FormatInt(d.Limit, 10))
	h.Set(headerRateRemaining, strconv.FormatInt(d.Remaining, 10))
	h.Set(headerRateReset, strconv.Itoa(d.Reset))
	if d.Allowed {
		return nil
	}
	e := natsrpc.NewError(http.StatusTooManyRequests, natsrpc.CodeRateLimited,
		"the tenant has used its plan's "+strconv.FormatInt(d.Limit, 10)+" API calls for this minute; try again in "+strconv.Itoa(d.Reset)+" s")
	e.RetryAfter = d.Reset
	return e
}

// insider reports whether the principal acts from inside the tenant: its usage may be
// charged to it (a platform admin who is not a member reads the tenant for free).
func insider(pr auth.Principal, acc auth.Access) bool {
	switch pr.Kind {
	case natsrpc.KindAgent, natsrpc.KindAPIKey:
		return acc.TenantID != ""
	case natsrpc.KindUser:
		return acc.TenantID != "" && acc.Role != ""
	}
	return false
}

// meter counts a finished API call (SPEC §6: every /api/v1 call resolved to a tenant by
// an insider, 4xx included; 429s not).
func (a *api) meter(status int, info *reqInfo, bytesIn, bytesOut int) {
	if a.usage == nil || !info.metered || status == http.StatusTooManyRequests {
		return
	}
	a.usage.APICall(info.tenantID, bytesIn, bytesOut)
}
