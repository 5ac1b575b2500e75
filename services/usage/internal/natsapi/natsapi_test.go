package natsapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/usage/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/usage/internal/repo"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

const (
	tenantX = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantY = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	agent1  = "01HZY3K9W8X7V6T5S4R3Q2P1N0"
	agent2  = "01hzy3k9w8x7v6t5s4r3q2p1n1" // any case on the wire
)

// now is the service's clock: "today" is 2026-03-10.
var now = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

type fixture struct {
	client *natsrpc.Client
	svc    *usage.Service
	table  store.Table
	source string
	batch  uint64
	last   map[string]uint64
}

func start(t *testing.T) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	table := storetest.NewTable(t, repo.Table)
	svc := usage.NewService(repo.New(table), usage.WithClock(func() time.Time { return now }))
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: usagev1.Service, Description: "test", ContractVersion: usagev1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	if err := natsapi.Register(ms, srv, svc); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &fixture{client: natsrpc.NewClient(natsrpctest.Connect(t, ns)), svc: svc, table: table, source: "01SOURCE000000000000000000", last: map[string]uint64{}}
}

// add applies one flush with one entry (the applier's path without the stream).
func (f *fixture) add(t *testing.T, tenantID, date string, c usagev1.Counts, peak int64, agents ...string) {
	t.Helper()
	f.batch++
	k := tenantID + date
	ev := usagev1.CountsEvent{Source: f.source, Batch: f.batch, Entries: []usagev1.CountsEntry{{
		TenantID: tenantID, Date: date, Prev: f.last[k], Counts: c, PeakConnections: peak, ActiveAgents: agents,
	}}}
	f.last[k] = f.batch
	res, err := f.svc.ApplyCounts(context.Background(), ev)
	if err != nil || res[usage.Applied] != 1 {
		t.Fatalf("apply: %v %v", res, err)
	}
}

func (f *fixture) gauge(t *testing.T, tenantID, kind string, v int64, at time.Time) {
	t.Helper()
	if _, err := f.svc.ApplyGauge(context.Background(), usagev1.GaugeEvent{TenantID: tenantID, Kind: kind, Value: v, At: at}); err != nil {
		t.Fatal(err)
	}
}

func as(tenantID string, kind natsrpc.PrincipalKind, role, plan string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		RequestID: "req-u", TenantID: tenantID, Kind: kind, PrincipalID: "p", Role: role, Plan: plan,
	})
}

func viewer(tenantID string) context.Context {
	return as(tenantID, natsrpc.KindUser, natsrpc.RoleViewer, plans.Free)
}

func (f *fixture) metrics(t *testing.T, ctx context.Context, req usagev1.MetricsRequest) usagev1.MetricsResponse {
	t.Helper()
	var out usagev1.MetricsResponse
	if err := f.client.Call(ctx, usagev1.Subject(usagev1.OpMetrics), req, &out); err != nil {
		t.Fatalf("metrics %+v: %v", req, err)
	}
	return out
}

func day(d int) string { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly) }

func at(d, hour int) time.Time { return time.Date(2026, 3, d, hour, 0, 0, 0, time.UTC) }

func TestDefaultRangeZerosAndTotals(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.add(t, tenantX, day(5), usagev1.Counts{APICalls: 10, MessagesPublished: 4, MessagesDelivered: 8, BytesIn: 100, BytesOut: 200}, 3, agent1, agent2)
	f.add(t, tenantX, day(5), usagev1.Counts{APICalls: 1, MessagesPublished: 1}, 2, agent1)
	f.add(t, tenantX, day(10), usagev1.Counts{APICalls: 5, MessagesDelivered: 2}, 7, agent2)
	f.add(t, tenantX, day(2), usagev1.Counts{APICalls: 1000}, 50) // before the range
	f.add(t, tenantY, day(5), usagev1.Counts{APICalls: 999, MessagesPublished: 999}, 99, agent1)

	got := f.metrics(t, viewer(tenantX), usagev1.MetricsRequest{})
	if len(got.Metrics) != usagev1.DefaultRangeDays {
		t.Fatalf("%d rows, want %d", len(got.Metrics), usagev1.DefaultRangeDays)
	}
	for i, r := range got.Metrics {
		if want := day(4 + i); r.Date != want || r.TenantID != tenantX {
			t.Fatalf("row %d = %s of %s, want %s of X (oldest first)", i, r.Date, r.TenantID, want)
		}
	}
	d5, d10 := got.Metrics[1], got.Metrics[6]
	if d5.APICalls != 11 || d5.MessagesPublished != 5 || d5.MessagesDelivered != 8 || d5.BytesIn != 100 || d5.BytesOut != 200 ||
		d5.PeakConnections != 3 || d5.ActiveAgents != 2 {
		t.Fatalf("day 5 = %+v", d5)
	}
	if d10.APICalls != 5 || d10.MessagesDelivered != 2 || d10.PeakConnections != 7 || d10.ActiveAgents != 1 {
		t.Fatalf("day 10 = %+v", d10)
	}
	for _, i := range []int{0, 2, 3, 4, 5} {
		if r := got.Metrics[i]; r.Counts != (usagev1.Counts{}) || r.PeakConnections != 0 || r.ActiveAgents != 0 {
			t.Fatalf("day %s = %+v, want zeros", r.Date, r)
		}
	}
	tot := got.Totals
	if tot.APICalls != 16 || tot.MessagesPublished != 5 || tot.MessagesDelivered != 10 || tot.Messages != 15 || tot.BytesIn != 100 || tot.BytesOut != 200 {
		t.Fatalf("totals = %+v", tot)
	}
	if got.Limits.MaxAgents == nil || *got.Limits.MaxAgents != 3 || *got.Limits.MaxAPICallsPerMinute != 100 {
		t.Fatalf("limits = %+v, want the free plan's", got.Limits)
	}

	// Tenant Y's usage is its own; the identity decides whose rows are read.
	gotY := f.metrics(t, as(tenantY, natsrpc.KindAPIKey, natsrpc.RoleAdmin, plans.Enterprise), usagev1.MetricsRequest{})
	if gotY.Totals.APICalls != 999 || gotY.Metrics[1].ActiveAgents != 1 || gotY.Metrics[1].TenantID != tenantY || gotY.Limits.MaxAgents != nil {
		t.Fatalf("Y = %+v", gotY)
	}
}

func TestGaugesCarryForward(t *testing.T) {
	t.Parallel()
	f := start(t)
	f.gauge(t, tenantX, usagev1.GaugeAgents, 3, at(1, 9))    // long before the range
	f.gauge(t, tenantX, usagev1.GaugeSSHKeys, 1, at(2, 9))   // before the range
	f.gauge(t, tenantX, usagev1.GaugeSSHKeys, 2, at(2, 10))  // its last value that day
	f.gauge(t, tenantX, usagev1.GaugeChannels, 2, at(6, 12)) // in the range
	f.gauge(t, tenantX, usagev1.GaugeChannels, 6, at(8, 8))
	f.gauge(t, tenantX, usagev1.GaugeChannels, 5, at(8, 20)) // the day's end value
	f.gauge(t, tenantX, usagev1.GaugeAgents, 4, at(10, 14))  // today: latest wins, in any arrival order
	f.gauge(t, tenantX, usagev1.GaugeAgents, 7, at(10, 11))
	f.gauge(t, tenantY, usagev1.GaugeChannels, 40, at(7, 1))

	got := f.metrics(t, viewer(tenantX), usagev1.MetricsRequest{StartDate: day(5), EndDate: day(12)})
	type g struct{ agents, channels, keys int64 }
	want := map[string]g{
		day(5): {3, 0, 2}, day(6): {3, 2, 2}, day(7): {3, 2, 2}, day(8): {3, 5, 2}, day(9): {3, 5, 2},
		day(10): {4, 5, 2}, day(11): {0, 0, 0}, day(12): {0, 0, 0}, // after today: nothing yet
	}
	if len(got.Metrics) != len(want) {
		t.Fatalf("%d rows", len(got.Metrics))
	}
	for _, r := range got.Metrics {
		if w := want[r.Date]; (g{r.Agents, r.Channels, r.SSHKeys}) != w {
			t.Errorf("%s: agents %d channels %d keys %d, want %+v", r.Date, r.Agents, r.Channels, r.SSHKeys, w)
		}
	}
}

func TestRangeRulesAndAccess(t *testing.T) {
	t.Parallel()
	f := start(t)
	invalid := func(req usagev1.MetricsRequest, field string) {
		t.Helper()
		err := f.client.Call(viewer(tenantX), usagev1.Subject(usagev1.OpMetrics), req, nil)
		e, ok := natsrpc.AsError(err)
		if !ok || e.Status != http.StatusUnprocessableEntity || e.Code != natsrpc.CodeValidationFailed || len(e.Errors) == 0 || e.Errors[0].Field != field {
			t.Fatalf("%+v: %v, want 422 on %s", req, err, field)
		}
	}
	invalid(usagev1.MetricsRequest{StartDate: day(9), EndDate: day(8)}, "end_date")
	invalid(usagev1.MetricsRequest{StartDate: "2026-02-30"}, "start_date")
	invalid(usagev1.MetricsRequest{EndDate: "10/03/2026"}, "end_date")
	invalid(usagev1.MetricsRequest{StartDate: "2025-12-08", EndDate: day(10)}, "start_date") // 93 days

	long := f.metrics(t, viewer(tenantX), usagev1.MetricsRequest{StartDate: "2025-12-09", EndDate: day(10)})
	if len(long.Metrics) != usagev1.MaxRangeDays || long.Metrics[0].Date != "2025-12-09" || long.Metrics[91].Date != day(10) {
		t.Fatalf("92-day range: %d rows from %s", len(long.Metrics), long.Metrics[0].Date)
	}
	one := f.metrics(t, viewer(tenantX), usagev1.MetricsRequest{StartDate: day(3), EndDate: day(3)})
	if len(one.Metrics) != 1 || one.Metrics[0].Date != day(3) {
		t.Fatalf("one day: %+v", one.Metrics)
	}
	onlyStart := f.metrics(t, viewer(tenantX), usagev1.MetricsRequest{StartDate: day(1)})
	if len(onlyStart.Metrics) != 10 || onlyStart.Metrics[9].Date != day(10) {
		t.Fatalf("start only: %d rows", len(onlyStart.Metrics))
	}

	err := f.client.Call(as(tenantX, natsrpc.KindAgent, "", plans.Free), usagev1.Subject(usagev1.OpMetrics), usagev1.MetricsRequest{}, nil)
	if e, ok := natsrpc.AsError(err); !ok || e.Status != http.StatusForbidden || e.Code != natsrpc.CodeForbidden {
		t.Fatalf("agent token: %v, want 403", err)
	}
	err = f.client.Call(as(tenantX, natsrpc.KindUser, "", plans.Free), usagev1.Subject(usagev1.OpMetrics), usagev1.MetricsRequest{}, nil)
	if e, ok := natsrpc.AsError(err); !ok || e.Status != http.StatusForbidden {
		t.Fatalf("user without a role: %v, want 403", err)
	}
	for _, role := range []string{natsrpc.RoleViewer, natsrpc.RoleMember, natsrpc.RoleAdmin, natsrpc.RoleOwner} {
		f.metrics(t, as(tenantX, natsrpc.KindUser, role, plans.Pro), usagev1.MetricsRequest{})
	}
}

// The tenant cascade deletes every item of the tenant (its tombstone stays) and nothing
// of another.
func TestPurge(t *testing.T) {
	t.Parallel()
	f := start(t)
	for d := 1; d <= 10; d++ {
		f.add(t, tenantX, day(d), usagev1.Counts{APICalls: 1}, 1, agent1)
		f.gauge(t, tenantX, usagev1.GaugeAgents, 1, at(d, 1))
	}
	f.add(t, tenantY, day(9), usagev1.Counts{APICalls: 2}, 1, agent1)
	if err := f.svc.Purge(context.Background(), tenantX); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Purge(context.Background(), tenantX); err != nil { // idempotent
		t.Fatal(err)
	}
	page, err := f.table.Query(context.Background(), repo.Partition(tenantX), store.QueryOptions{})
	if err != nil || len(page.Items) != 1 || page.Items[0].Key != repo.TombstoneKey(tenantX) {
		t.Fatalf("X after the purge: %+v, %v (want only the tombstone)", page.Items, err)
	}
	y := f.metrics(t, viewer(tenantY), usagev1.MetricsRequest{})
	if y.Totals.APICalls != 2 || y.Metrics[5].ActiveAgents != 1 {
		t.Fatalf("Y after X's purge: %+v", y.Totals)
	}
}
