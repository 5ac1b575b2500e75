package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/limits"
	"github.com/artcafe-ai/pubsub/gateway/internal/metering"
)

// calls is a UsageRecorder that counts what the gateway meters, per tenant.
type calls struct {
	mu sync.Mutex
	n  map[string]int
	in map[string]int
}

func (c *calls) APICall(tenant string, bytesIn, _ int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[tenant]++
	c.in[tenant] += bytesIn
}

func (c *calls) count(tenant string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[tenant]
}

// withLimits puts the real shared limits (JetStream KV of the test server) and a call
// counter in front of the routes.
func withLimits(rec *calls) envOption {
	return func(e *env, d *Deps) {
		js, err := jetstream.New(e.nc)
		if err != nil {
			e.t.Fatal(err)
		}
		l, err := limits.New(js, limits.Config{Log: zerolog.Nop()})
		if err != nil {
			e.t.Fatal(err)
		}
		d.RateLimits, d.Usage = l, rec
	}
}

// withMetering wires what main wires: the shared limits (also as the message quota) and
// a real meter flushing to the test server's JetStream.
func withMetering() envOption {
	return func(e *env, d *Deps) {
		js, err := jetstream.New(e.nc)
		if err != nil {
			e.t.Fatal(err)
		}
		l, err := limits.New(js, limits.Config{Log: zerolog.Nop()})
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := metering.New(js, e.nc, metering.Config{Log: zerolog.Nop()})
		if err != nil {
			e.t.Fatal(err)
		}
		m.Start()
		e.t.Cleanup(func() { _ = m.Close(context.Background()) })
		d.RateLimits, d.Usage, e.quota = l, m, l
	}
}

// The free plan's 100 calls a minute: every tenant response carries RateLimit-*; the
// 101st call is 429 rate_limited with Retry-After; 429s are not counted, 4xx are.
func TestRateLimitAndMetering(t *testing.T) {
	rec := &calls{n: map[string]int{}, in: map[string]int{}}
	e := newEnv(t, withLimits(rec))
	tenantID, _ := e.seedTenant("alice")
	e.setTier(tenantID, plans.Free)
	e.setRole(tenantID, "vera", natsrpc.RoleViewer)
	alice := map[string]string{"Authorization": "Bearer " + e.userToken("alice"), "X-Tenant-Id": tenantID}
	vera := map[string]string{"Authorization": "Bearer " + e.userToken("vera"), "X-Tenant-Id": tenantID}

	last := 101
	for i := range 100 {
		var r resp
		if i%10 == 9 { // a viewer creating an agent: 403, still a call
			r = e.do(http.MethodPost, "/api/v1/agents", map[string]any{"name": "x"}, vera)
			e.expect(r, http.StatusForbidden, natsrpc.CodeForbidden)
		} else {
			r = e.do(http.MethodGet, "/api/v1/agents", nil, alice)
			if r.status != http.StatusOK {
				t.Fatalf("call %d: %d %s", i, r.status, r.body)
			}
		}
		if r.header.Get("RateLimit-Limit") != "100" {
			t.Fatalf("call %d: RateLimit-Limit %q", i, r.header.Get("RateLimit-Limit"))
		}
		rem, err := strconv.Atoi(r.header.Get("RateLimit-Remaining"))
		if err != nil || rem >= last {
			t.Fatalf("call %d: RateLimit-Remaining %q after %d", i, r.header.Get("RateLimit-Remaining"), last)
		}
		last = rem
		if reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 60 {
			t.Fatalf("call %d: RateLimit-Reset %q", i, r.header.Get("RateLimit-Reset"))
		}
	}
	r := e.do(http.MethodGet, "/api/v1/agents", nil, alice)
	e.expect(r, http.StatusTooManyRequests, natsrpc.CodeRateLimited)
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Limit") != "100" {
		t.Fatalf("429 headers: %v", r.header)
	}
	// Calls that do not count: unauthenticated, /auth/*, a tenant the caller is not in.
	e.do(http.MethodGet, "/api/v1/agents", nil, map[string]string{"X-Tenant-Id": tenantID})
	e.do(http.MethodPost, "/api/v1/auth/challenge", map[string]any{"tenant_id": tenantID, "key_id": "01JBKEY0000000000000000001"}, nil)
	other, _ := e.seedTenant("bob")
	r = e.do(http.MethodGet, "/api/v1/agents", nil, map[string]string{"Authorization": "Bearer " + e.userToken("bob"), "X-Tenant-Id": tenantID})
	if r.status != http.StatusForbidden || r.header.Get("RateLimit-Limit") != "" {
		t.Fatalf("an outsider: %d with RateLimit-Limit %q", r.status, r.header.Get("RateLimit-Limit"))
	}
	if got := rec.count(tenantID); got != 100 {
		t.Fatalf("metered %d calls of the tenant, want 100 (429s and outsiders not)", got)
	}
	if rec.count(other) != 0 {
		t.Fatalf("bob's tenant was charged")
	}
	if rec.in[tenantID] == 0 {
		t.Fatal("request bytes not metered")
	}

	// An enterprise tenant has no per-minute limit and no headers, and is still metered.
	ent, _ := e.seedTenant("carol")
	e.setTier(ent, plans.Enterprise)
	r = e.do(http.MethodGet, "/api/v1/agents", nil, map[string]string{"Authorization": "Bearer " + e.userToken("carol"), "X-Tenant-Id": ent})
	if r.status != http.StatusOK || r.header.Get("RateLimit-Limit") != "" || rec.count(ent) != 1 {
		t.Fatalf("enterprise: %d %q counted %d", r.status, r.header.Get("RateLimit-Limit"), rec.count(ent))
	}
}

// fakeUsage answers svc.usage.v1.metrics and svc.tenant.v1.billing for the identity's
// tenant, as the real services do.
func startFakeUsage(t *testing.T, e *env) {
	t.Helper()
	nc := natsrpctest.Connect(t, e.ns)
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	svc, err := micro.AddService(nc, micro.Config{Name: usagev1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	metrics := func(ctx context.Context, r *usagev1.MetricsRequest) (*usagev1.MetricsResponse, error) {
		id := natsrpc.IdentityFrom(ctx)
		p, _ := plans.Get(plans.Free)
		return &usagev1.MetricsResponse{Metrics: []usagev1.DailyRow{{TenantID: id.TenantID, Date: r.EndDate}},
			Totals: usagev1.Totals{Messages: 3}, Limits: p.Limits}, nil
	}
	if err := svc.AddGroup(usagev1.Group).AddEndpoint(usagev1.OpMetrics, natsrpc.Handle(srv, usagev1.OpMetrics, metrics)); err != nil {
		t.Fatal(err)
	}
	billing := func(ctx context.Context, _ *tenantv1.BillingRequest) (*tenantv1.BillingResponse, error) {
		id := natsrpc.IdentityFrom(ctx)
		return &tenantv1.BillingResponse{TenantID: id.TenantID, Plan: id.Plan, BillingCycle: "monthly", NextBillingDate: "2030-02-01",
			Amount: 9, Currency: "USD", Status: "active"}, nil
	}
	bsvc, err := micro.AddService(nc, micro.Config{Name: "tenant-billing", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bsvc.AddGroup(tenantv1.Group).AddEndpoint(tenantv1.OpBilling, natsrpc.Handle(srv, tenantv1.OpBilling, billing)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(); _ = bsvc.Stop() })
}

// Usage and billing: viewers and API keys read (also while suspended), agents 403, a bad
// range 422; the plans for anyone authenticated.
func TestUsageAndBillingRoutes(t *testing.T) {
	e := newEnv(t)
	startFakeUsage(t, e)
	tenantID, key := e.seedTenant("alice")
	e.setRole(tenantID, "vera", natsrpc.RoleViewer)
	vera := map[string]string{"Authorization": "Bearer " + e.userToken("vera"), "X-Tenant-Id": tenantID}

	r := e.do(http.MethodGet, "/api/v1/usage-metrics?start_date=2030-01-01&end_date=2030-01-07", nil, vera)
	m := r.json(t)
	if r.status != http.StatusOK || m["success"] != true || m["totals"].(map[string]any)["messages"] != float64(3) {
		t.Fatalf("usage: %d %s", r.status, r.body)
	}
	if row := m["metrics"].([]any)[0].(map[string]any); row["tenant_id"] != tenantID || row["date"] != "2030-01-07" {
		t.Fatalf("row %v", row)
	}
	e.expect(e.do(http.MethodGet, "/api/v1/usage-metrics?start_date=2030-01-08&end_date=2030-01-07", nil, vera), http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	e.expect(e.do(http.MethodGet, "/api/v1/usage-metrics?start_date=yesterday", nil, vera), http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	e.expect(e.do(http.MethodGet, "/api/v1/usage-metrics?start_date=2029-01-01&end_date=2030-01-07", nil, vera), http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)

	for _, path := range []string{"/api/v1/billing", "/api/v1/usage-metrics/billing"} {
		r = e.do(http.MethodGet, path, nil, apiKey(key))
		if b := r.json(t); r.status != http.StatusOK || b["tenant_id"] != tenantID || b["success"] != true || b["amount"] != float64(9) {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}

	agent := bearer(e.agentToken(tenantID, "01JBAGENT00000000000000001"))
	for _, path := range []string{"/api/v1/usage-metrics", "/api/v1/billing", "/api/v1/usage-metrics/billing"} {
		e.expect(e.do(http.MethodGet, path, nil, agent), http.StatusForbidden, natsrpc.CodeForbidden)
	}
	e.expect(e.do(http.MethodGet, "/api/v1/billing", nil, nil), http.StatusUnauthorized, natsrpc.CodeUnauthorized)

	e.setStatus(tenantID, tenantv1.StatusSuspended)
	if r := e.do(http.MethodGet, "/api/v1/billing", nil, vera); r.status != http.StatusOK {
		t.Fatalf("suspended tenant's billing: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, "/api/v1/usage-metrics", nil, vera); r.status != http.StatusOK {
		t.Fatalf("suspended tenant's usage: %d %s", r.status, r.body)
	}

	// Plans: any authenticated caller, agents included.
	for _, h := range []map[string]string{agent, bearer(e.userToken("nobody"))} {
		r = e.do(http.MethodGet, "/api/v1/billing/plans", nil, h)
		ps, _ := r.json(t)["plans"].([]any)
		if r.status != http.StatusOK || len(ps) != len(plans.All()) {
			t.Fatalf("plans: %d %s", r.status, r.body)
		}
	}
	e.expect(e.do(http.MethodGet, "/api/v1/billing/plans", nil, nil), http.StatusUnauthorized, natsrpc.CodeUnauthorized)
}
