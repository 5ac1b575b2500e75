package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/limitsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// TestUsage is issue 5 end to end on real processes: a tenant's known API calls,
// publishes (REST and WebSocket, idempotent replays included) and deliveries to two
// WebSocket subscribers, with the usage service killed (SIGKILL) and started again in
// the middle and the gateway stopped gracefully (SIGTERM) right after the last calls,
// end up exactly in its daily row; another tenant's row shows none of it; a free tenant
// gets 429 rate_limited at its 101st call of a minute and 429 message_quota_exceeded at
// its daily quota; billing and plans have their SPEC §4.7 shapes.
func TestUsage(t *testing.T) {
	onBothBackends(t, func(t *testing.T, env stackEnv) {
		// The usage service needs a metrics port of its own: 7 processes.
		env.MetricsBase = testkit.FreePortRange(t, 7)
		env.Secret = testkit.RandomHex(t, 32)
		f := startStackFleet(t, env)
		c := newClient(env.baseURL())
		var free freeTenant
		step(t, "free plan: 429 at the 101st call of a minute", func(t *testing.T) { free = runRateLimit(t, env, c) })
		var quota freeTenant
		step(t, "free plan: 429 at the daily message quota", func(t *testing.T) { quota = runMessageQuota(t, env, c) })
		step(t, "exact usage across restarts", func(t *testing.T) { runUsageExact(t, env, f, c) })
		step(t, "free tenants' rows: 429s are not API calls", func(t *testing.T) {
			// The reads below would be refused in the minute of the burst.
			if time.Now().Unix()/60 == free.burstMinute {
				time.Sleep(time.Until(time.Unix((free.burstMinute+1)*60, 0).Add(500 * time.Millisecond)))
			}
			waitUsage(t, free.c, free.calls, free.id, free.auth, "the rate-limited free tenant", func(u usageReply, calls int64) string {
				return same(u.Totals.MessagesPublished, 0, "messages_published")
			})
			waitUsage(t, quota.c, quota.calls, quota.id, quota.auth, "the quota-limited free tenant", func(u usageReply, calls int64) string {
				return same(u.Totals.MessagesPublished, 1, "messages_published")
			})
		})
	})
}

// Start order of the stack's processes, one by one (the launcher would stop the whole
// stack when one child dies), each with its place in the launcher's metrics ports.
var (
	usageOrder = []string{"nats", "tenant", "agent", "sshkey", "channel", "usage", "gateway"}
	usageProcs = map[string]stackProc{
		"nats":    {bin: "launcher", args: []string{"nats"}, stage: 0, metrics: 6},
		"tenant":  {bin: "tenant", stage: 1, metrics: 1},
		"agent":   {bin: "agent", stage: 1, metrics: 2},
		"sshkey":  {bin: "sshkey", stage: 1, metrics: 3},
		"channel": {bin: "channel", stage: 1, metrics: 4},
		"usage":   {bin: "usage", stage: 1, metrics: 5},
		"gateway": {bin: "gateway", stage: 2, metrics: 0},
	}
)

// stackFleet is the whole stack started process by process, so one process can be
// killed, stopped or started again on its own.
type stackFleet struct {
	env  stackEnv
	sup  *fleet.Supervisor
	pids map[string]int
}

func startStackFleet(t *testing.T, env stackEnv) *stackFleet {
	out := &testkit.SyncBuffer{}
	f := &stackFleet{env: env, sup: fleet.New(fleet.NewOutput(out, false, usageOrder...), 15*time.Second), pids: map[string]int{}}
	t.Cleanup(func() {
		f.sup.Stop(context.Background())
		if t.Failed() {
			t.Logf("process output:\n%s", testkit.Tail(out.String(), 40000))
		}
	})
	for _, name := range usageOrder {
		f.start(t, name)
	}
	waitHealthy(t, newClient(env.baseURL()), 60*time.Second, "tenant", "agent", "sshkey", "channel", "usage")
	return f
}

func (f *stackFleet) start(t *testing.T, name string) {
	t.Helper()
	p := usageProcs[name]
	pid, err := f.sup.Start(fleet.Process{Name: name, Path: filepath.Join(binDir, p.bin), Args: p.args, Stage: p.stage,
		Env: f.env.environ("METRICS_ADDR=127.0.0.1:"+strconv.Itoa(f.env.MetricsBase+p.metrics), f.env.creds(t, name))})
	if err != nil {
		t.Fatal(err)
	}
	f.pids[name] = pid
}

// signal sends sig to name and waits for the supervisor to report its exit; clean
// requires exit code 0 (a graceful stop).
func (f *stackFleet) signal(t *testing.T, name string, sig syscall.Signal, clean bool) {
	t.Helper()
	if err := syscall.Kill(f.pids[name], sig); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-f.sup.Failed():
		if ex.Name != name {
			t.Fatalf("unexpected exit: %s", ex)
		}
		if clean && !ex.Clean() {
			t.Fatalf("%s did not stop cleanly on %s: %s", name, sig, ex)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the exit of %s after %s was not reported", name, sig)
	}
}

// callCounter counts the API calls (SPEC §6) a client makes: every /api/v1 request
// except /api/v1/auth/*, whose reply is not a 429. A counted client is used only for
// calls of insiders of one tenant that get past tenant resolution (4xx included), so
// this is the number the tenant's row must show. WebSocket upgrades are dialled outside
// the client and added by hand.
type callCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int64
}

func (c *callCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil && strings.HasPrefix(r.URL.Path, "/api/v1/") && !strings.HasPrefix(r.URL.Path, "/api/v1/auth/") &&
		resp.StatusCode != http.StatusTooManyRequests {
		c.add(1)
	}
	return resp, err
}

func (c *callCounter) add(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += n
}

func (c *callCounter) count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// countedClient is a client whose calls are counted.
func countedClient(base string) (*client, *callCounter) {
	c := newClient(base)
	n := &callCounter{next: http.DefaultTransport.(*http.Transport).Clone()}
	c.http.Transport = n
	return c, n
}

// usageRow and usageReply are SPEC §4.7, decoded independently of contracts/.
type usageRow struct {
	TenantID          string `json:"tenant_id"`
	Date              string `json:"date"`
	APICalls          int64  `json:"api_calls"`
	MessagesPublished int64  `json:"messages_published"`
	MessagesDelivered int64  `json:"messages_delivered"`
	BytesIn           int64  `json:"bytes_in"`
	BytesOut          int64  `json:"bytes_out"`
	Agents            int64  `json:"agents"`
	ActiveAgents      int64  `json:"active_agents"`
	Channels          int64  `json:"channels"`
	SSHKeys           int64  `json:"ssh_keys"`
	PeakConnections   int64  `json:"peak_connections"`
}

type usageReply struct {
	Metrics []usageRow `json:"metrics"`
	Totals  struct {
		APICalls          int64  `json:"api_calls"`
		MessagesPublished int64  `json:"messages_published"`
		MessagesDelivered int64  `json:"messages_delivered"`
		BytesIn           int64  `json:"bytes_in"`
		BytesOut          int64  `json:"bytes_out"`
		Messages          *int64 `json:"messages"`
	} `json:"totals"`
	Limits  map[string]any `json:"limits"`
	Success bool           `json:"success"`
}

// today is the row of the current UTC day (the last one of the default range).
func (u usageReply) today(t *testing.T) usageRow {
	t.Helper()
	day := time.Now().UTC().Format(time.DateOnly)
	for _, r := range u.Metrics {
		if r.Date == day {
			return r
		}
	}
	t.Fatalf("no row for today (%s): %+v", day, u.Metrics)
	return usageRow{}
}

// checkUsageShape: 7 rows (the default range) oldest first, one per day, of the tenant;
// totals sum the rows and carry messages = published + delivered; limits list every
// SPEC §6 name.
func checkUsageShape(t *testing.T, u usageReply, tenant string) {
	t.Helper()
	if !u.Success || len(u.Metrics) != 7 {
		t.Fatalf("usage: success %v, %d rows (want the default 7 days)", u.Success, len(u.Metrics))
	}
	var sum usageRow
	for i, r := range u.Metrics {
		if r.TenantID != tenant {
			t.Fatalf("row %d of tenant %q, want %s", i, r.TenantID, tenant)
		}
		d, err := time.Parse(time.DateOnly, r.Date)
		if err != nil {
			t.Fatalf("row %d date %q", i, r.Date)
		}
		if want := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, i-6); !d.Equal(want) && !d.Equal(want.AddDate(0, 0, -1)) {
			t.Fatalf("row %d is %s, want %s (oldest first, ending today)", i, r.Date, want.Format(time.DateOnly))
		}
		sum.APICalls += r.APICalls
		sum.MessagesPublished += r.MessagesPublished
		sum.MessagesDelivered += r.MessagesDelivered
		sum.BytesIn += r.BytesIn
		sum.BytesOut += r.BytesOut
	}
	tt := u.Totals
	if sum.APICalls != tt.APICalls || sum.MessagesPublished != tt.MessagesPublished || sum.MessagesDelivered != tt.MessagesDelivered ||
		sum.BytesIn != tt.BytesIn || sum.BytesOut != tt.BytesOut {
		t.Fatalf("totals %+v are not the sums of the rows %+v", tt, sum)
	}
	if tt.Messages == nil || *tt.Messages != tt.MessagesPublished+tt.MessagesDelivered {
		t.Fatalf("totals.messages %v, want published + delivered = %d", tt.Messages, tt.MessagesPublished+tt.MessagesDelivered)
	}
	for _, name := range []string{"max_agents", "max_channels", "max_ssh_keys", "max_messages_per_day", "max_api_calls_per_minute",
		"max_concurrent_connections", "max_message_bytes", "max_history_messages", "max_history_age_seconds"} {
		if _, ok := u.Limits[name]; !ok {
			t.Fatalf("usage limits lack %s: %v", name, u.Limits)
		}
	}
}

// waitUsage reads the tenant's usage with the counted client until check passes. Every
// read is an API call of the tenant too, counted after its reply: a read must show
// exactly the calls made before it once the meter has flushed, and never more (that
// would be a call counted twice, or someone else's). check gets that number.
func waitUsage(t *testing.T, c *client, calls *callCounter, tenant string, auth []any, what string, check func(u usageReply, calls int64) string) usageReply {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		before := calls.count()
		var u usageReply
		c.expect(t, http.StatusOK, &u, get, "/api/v1/usage-metrics", auth...)
		checkUsageShape(t, u, tenant)
		if u.Totals.APICalls > before {
			t.Fatalf("%s: %d API calls counted, only %d made", what, u.Totals.APICalls, before)
		}
		why := same(u.Totals.APICalls, before, "api_calls")
		if why == "" {
			why = check(u, before)
		}
		if why == "" {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the usage did not reach the expected values within 90 s: %s\n%+v\ntoday %+v", what, why, u.Totals, u.today(t))
		}
		// Longer than the meter's flush period, so the reads themselves catch up.
		time.Sleep(1500 * time.Millisecond)
	}
}

// same is "" when got == want, else why not.
func same(got, want int64, name string) string {
	if got != want {
		return fmt.Sprintf("%s %d, want %d", name, got, want)
	}
	return ""
}

// freeTenant is a tenant on the free plan and its counted client.
type freeTenant struct {
	id          string
	token       string
	c           *client
	calls       *callCounter
	auth        []any
	burstMinute int64
}

// newFreeTenant creates a tenant for a new user, puts it on the free plan and waits
// until the gateway applies the plan (its replies carry RateLimit-Limit: 100).
func newFreeTenant(t *testing.T, env stackEnv, c *client, sub string) freeTenant {
	t.Helper()
	owner := env.token(t, "-sub", sub)
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(owner),
		jsonBody(map[string]any{"name": sub, "admin_email": sub + "@example.com"}))
	env.setPlan(t, c, cr.TenantID, "free")
	ft := freeTenant{id: cr.TenantID, token: owner, auth: as(owner, cr.TenantID)}
	ft.c, ft.calls = countedClient(env.baseURL())
	awaitRateLimit(t, ft.c, ft.auth, "100")
	return ft
}

// runRateLimit: a free tenant (100 calls/min) makes calls from the start of a fresh UTC
// minute: the first 100 pass with RateLimit-* headers counting down, the 101st and
// later get 429 rate_limited with Retry-After. One gateway takes leases from the shared
// counter, which never passes the limit, so the answer is exact here (SPEC allows ±10 %
// only across replicas).
func runRateLimit(t *testing.T, env stackEnv, c *client) freeTenant {
	ft := newFreeTenant(t, env, c, "e2e-usage-rate")
	// A fresh window, so every call of it is one of ours below.
	next := time.Now().Truncate(time.Minute).Add(time.Minute + 500*time.Millisecond)
	time.Sleep(time.Until(next))
	ft.burstMinute = time.Now().Unix() / 60
	for i := 1; i <= 100; i++ {
		r := ft.c.expect(t, http.StatusOK, nil, get, "/api/v1/channels?limit=1", ft.auth...)
		if got := r.Header.Get("RateLimit-Limit"); got != "100" {
			t.Fatalf("call %d: RateLimit-Limit %q: %s", i, got, r)
		}
		if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(100-i) {
			t.Fatalf("call %d: RateLimit-Remaining %q, want %d", i, got, 100-i)
		}
		if reset, err := strconv.Atoi(r.Header.Get("RateLimit-Reset")); err != nil || reset < 1 || reset > 60 {
			t.Fatalf("call %d: RateLimit-Reset %q", i, r.Header.Get("RateLimit-Reset"))
		}
	}
	for i := 101; i <= 102; i++ {
		r := ft.c.do(t, get, "/api/v1/channels?limit=1", ft.auth...)
		checkError(t, r, http.StatusTooManyRequests, "rate_limited")
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 60 {
			t.Fatalf("call %d: Retry-After %q: %s", i, r.Header.Get("Retry-After"), r)
		}
		if r.Header.Get("RateLimit-Limit") != "100" || r.Header.Get("RateLimit-Remaining") != "0" || r.Header.Get("RateLimit-Reset") == "" {
			t.Fatalf("call %d: RateLimit-* headers %v", i, r.Header)
		}
	}
	if m := time.Now().Unix() / 60; m != ft.burstMinute {
		t.Fatalf("the burst crossed a minute boundary (minute %d → %d): the machine is too slow for this check", ft.burstMinute, m)
	}
	return ft
}

// runMessageQuota: 10,000 messages (the free plan's daily quota) are too many for an
// e2e run on this machine, and the quota logic itself is proven with real JetStream by
// the unit tests of gateway/internal/limits. What this proves end to end is the wiring:
// the test adds 9,999 to the tenant's shared day counter over NATS (as gateways would
// have left it), then the tenant's first publish passes and the next REST and WebSocket
// publishes get 429 message_quota_exceeded (Retry-After: until UTC midnight).
func runMessageQuota(t *testing.T, env stackEnv, c *client) freeTenant {
	ft := newFreeTenant(t, env, c, "e2e-usage-quota")
	var ce channelEnvelope
	ft.c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", append(ft.auth, jsonBody(map[string]any{"name": "quota"}))...)
	ch := ce.Channel.ID

	nc := env.natsConnect(t, natsperm.Gateway)
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, limitsv1.QuotaStreamConfig(1)); err != nil {
		t.Fatalf("the quota stream: %v", err)
	}
	day := time.Now().UTC()
	fill := nats.NewMsg(limitsv1.QuotaSubject(ft.id, day))
	fill.Header.Set("Nats-Incr", "9999")
	if ack, err := js.PublishMsg(ctx, fill); err != nil || ack.Value != "9999" {
		t.Fatalf("setting the day counter to 9999: %v %+v", err, ack)
	}

	ft.c.expect(t, http.StatusOK, nil, post, channelPath(ch, "/messages"), append(ft.auth, jsonBody(`{"n":1}`))...)
	r := ft.c.do(t, post, channelPath(ch, "/messages"), append(ft.auth, jsonBody(`{"n":2}`))...)
	checkError(t, r, http.StatusTooManyRequests, "message_quota_exceeded")
	midnight := day.Truncate(24 * time.Hour).Add(24 * time.Hour)
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if want := time.Until(midnight).Seconds(); err != nil || float64(ra) < want-10 || float64(ra) > want+10 {
		t.Fatalf("Retry-After %q, want about %.0f s (until UTC midnight): %s", r.Header.Get("Retry-After"), want, r)
	}
	// A 429 is not an API call: the counted client left it out; so must the gateway.

	ws := dialWS(t, t, env.baseURL(), "quota-ws", wsAuth{token: ft.token, tenant: ft.id})
	ft.calls.add(1) // the upgrade is an API call
	from := ws.mark()
	ws.send(t, realtimev1.Publish("over", ch, json.RawMessage(`{"n":3}`)))
	ws.expectReply(t, from, "over", realtimev1.TypeError, "message_quota_exceeded")
	ws.close()

	if time.Now().UTC().Truncate(24*time.Hour) != day.Truncate(24*time.Hour) {
		t.Fatal("the UTC day changed during the check: run it again")
	}
	return ft
}

// runUsageExact is the exactness story on an enterprise tenant (no limit in the way).
func runUsageExact(t *testing.T, env stackEnv, f *stackFleet, c *client) {
	base := env.baseURL()
	owner := env.token(t, "-sub", "e2e-usage-owner")
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(owner),
		jsonBody(map[string]any{"name": "Usage X", "admin_email": "usage-x@example.com"}))
	x := cr.TenantID
	env.setPlan(t, c, x, "enterprise")
	cx, calls := countedClient(base)
	auth := as(owner, x)
	awaitRateLimit(t, cx, auth, "")

	// The other tenant: its owner's calls in Y are counted for Y.
	other := env.token(t, "-sub", "e2e-usage-other")
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(other),
		jsonBody(map[string]any{"name": "Usage Y", "admin_email": "usage-y@example.com"}))
	y := cr.TenantID
	cy, callsY := countedClient(base)
	authY := as(other, y)
	cy.expect(t, http.StatusOK, nil, get, "/api/v1/channels", authY...)

	var ce channelEnvelope
	cx.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", append(auth, jsonBody(map[string]any{"name": "usage-live"}))...)
	live := ce.Channel.ID
	cx.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", append(auth, jsonBody(map[string]any{"name": "usage-quiet"}))...)
	// Two agents with keys, logged in (/auth/* is not an API call): the subscribers.
	a1, t1 := agentToken(t, env, cx, owner, x, "usage-a1")
	a2, t2 := agentToken(t, env, cx, owner, x, "usage-a2")
	s1 := dialWS(t, t, base, "a1", wsAuth{token: t1, tenant: x})
	s2 := dialWS(t, t, base, "a2", wsAuth{token: t2, tenant: x})
	pub := dialWS(t, t, base, "publisher", wsAuth{token: owner, tenant: x})
	calls.add(3) // the three upgrades
	if s1.connected.AgentID != a1 || s2.connected.AgentID != a2 {
		t.Fatalf("sessions of %s and %s: %s, %s", a1, a2, s1.connected, s2.connected)
	}
	s1.subscribe(t, live)
	s2.subscribe(t, live)
	from1, from2 := s1.mark(), s2.mark()

	// 4xx count too.
	cx.expectError(t, http.StatusNotFound, "not_found", get, agentPath("01ARZ3NDEKTSV4RRFFQ69G5FAV"), auth...)
	cx.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/agents?limit=0", auth...)

	published := 0
	restPublish := func(i int, replay bool) {
		t.Helper()
		r := cx.expect(t, http.StatusOK, nil, post, channelPath(live, "/messages"),
			append(auth, header("Idempotency-Key", "rest-"+itoa(i)), jsonBody(fmt.Sprintf(`{"rest":%d}`, i)))...)
		if got := r.Header.Get("Idempotent-Replayed") == "true"; got != replay {
			t.Fatalf("REST publish %d: Idempotent-Replayed %v, want %v: %s", i, got, replay, r)
		}
		if !replay {
			published++
		}
	}
	wsPublish := func(i int, replay bool) {
		t.Helper()
		id := fmt.Sprintf("ws-%d-%v", i, replay)
		from := pub.mark()
		fr := realtimev1.Publish(id, live, json.RawMessage(fmt.Sprintf(`{"ws":%d}`, i)))
		fr.IdempotencyKey = "ws-" + itoa(i)
		pub.send(t, fr)
		ack := pub.expectReply(t, from, id, realtimev1.TypeAck, "")
		if ack.Replayed != replay {
			t.Fatalf("WS publish %d: replayed %v, want %v: %s", i, ack.Replayed, replay, ack)
		}
		if !replay {
			published++
		}
	}

	for i := range 10 {
		restPublish(i, false)
	}
	for i := range 3 {
		restPublish(i, true) // replays: API calls, not messages
	}

	// The usage service dies; everything goes on, and its events wait in the stream.
	f.signal(t, "usage", syscall.SIGKILL, false)
	for i := 10; i < 20; i++ {
		restPublish(i, false)
	}
	for i := range 15 {
		wsPublish(i, false)
	}
	wsPublish(0, true)
	wsPublish(1, true)
	cx.expect(t, http.StatusCreated, nil, post, "/api/v1/agents", append(auth, jsonBody(map[string]any{"name": "usage-plain"}))...)
	cx.expect(t, http.StatusCreated, nil, post, "/api/v1/ssh-keys",
		append(auth, jsonBody(map[string]any{"name": "usage-access", "public_key": newEd25519Key(t).authorized}))...)
	f.start(t, "usage")
	waitHealthy(t, c, 60*time.Second, "usage")

	for i := 20; i < 25; i++ {
		restPublish(i, false)
	}
	for i := 15; i < 20; i++ {
		wsPublish(i, false)
	}
	if published != 45 {
		t.Fatalf("the test published %d, planned 45", published)
	}
	s1.waitMessages(t, from1, live, published, 30*time.Second)
	s2.waitMessages(t, from2, live, published, 30*time.Second)

	// Nobody outside X reads or charges X: Y's owner naming X gets 403/404 (and those
	// calls, resolved to no tenant, count for nobody).
	for _, probe := range []struct {
		method, path string
		body         any
	}{{get, "/api/v1/usage-metrics", nil}, {get, "/api/v1/billing", nil}, {post, channelPath(live, "/messages"), `{"spy":1}`}} {
		opts := []any{bearer(other), tenantHeader(x)}
		if probe.body != nil {
			opts = append(opts, jsonBody(probe.body))
		}
		r := c.do(t, probe.method, probe.path, opts...)
		if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Fatalf("Y's owner with x-tenant-id of X: %s", r)
		}
		if strings.Contains(string(r.Body), `"metrics"`) || strings.Contains(string(r.Body), `"plan"`) {
			t.Fatalf("Y's owner read X's data: %s", r)
		}
	}

	// Billing and plans (SPEC §4.7), and a range the API refuses.
	checkBilling(t, cx, auth, x)
	cx.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/usage-metrics?start_date=2025-01-10&end_date=2025-01-01", auth...)
	cx.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/usage-metrics?start_date=2025-01-01&end_date=2025-06-01", auth...)

	// The last calls are still in the meter's buffer when the gateway gets SIGTERM: it
	// must flush them before it exits.
	for range 3 {
		cx.expect(t, http.StatusOK, nil, get, "/api/v1/channels", auth...)
	}
	f.signal(t, "gateway", syscall.SIGTERM, true)
	f.start(t, "gateway")
	waitHealthy(t, c, 60*time.Second, "tenant", "agent", "sshkey", "channel", "usage")

	u := waitUsage(t, cx, calls, x, auth, "tenant X", func(u usageReply, calls int64) string {
		tt := u.Totals
		if tt.MessagesPublished > int64(published) || tt.MessagesDelivered > int64(2*published) {
			t.Fatalf("more messages counted than sent: %+v (published %d, delivered %d)", tt, published, 2*published)
		}
		d := u.today(t)
		for _, why := range []string{
			same(tt.MessagesPublished, int64(published), "messages_published"),
			same(tt.MessagesDelivered, int64(2*published), "messages_delivered"),
			same(d.Agents, 3, "agents"),
			same(d.Channels, 2, "channels"),
			same(d.SSHKeys, 3, "ssh_keys"),
			same(d.ActiveAgents, 2, "active_agents"),
		} {
			if why != "" {
				return why
			}
		}
		return ""
	})
	d := u.today(t)
	if d.PeakConnections < 2 || d.PeakConnections > 3 {
		t.Fatalf("peak_connections %d, want 2 or 3 (three sessions were open at most)", d.PeakConnections)
	}
	if u.Totals.BytesIn <= 0 || u.Totals.BytesOut <= 0 {
		t.Fatalf("bytes in %d, out %d", u.Totals.BytesIn, u.Totals.BytesOut)
	}
	for name, v := range u.Limits {
		// The message size is a platform bound, not a plan limit: it stays on enterprise.
		if v != nil && name != "max_message_bytes" {
			t.Fatalf("enterprise limit %s = %v, want null (unlimited)", name, v)
		}
	}
	t.Logf("tenant X today: %+v", d)

	// Y's row has its own calls and nothing of X's.
	waitUsage(t, cy, callsY, y, authY, "tenant Y", func(u usageReply, calls int64) string {
		d := u.today(t)
		if u.Totals.MessagesPublished != 0 || u.Totals.MessagesDelivered != 0 || d.Agents != 0 || d.Channels != 0 ||
			d.SSHKeys != 0 || d.ActiveAgents != 0 || d.PeakConnections != 0 {
			t.Fatalf("tenant Y's row shows X's usage: %+v / %+v", u.Totals, d)
		}
		return ""
	})
}

// checkBilling: GET /billing and its alias, and GET /billing/plans, as SPEC §4.7 says.
func checkBilling(t *testing.T, c *client, auth []any, tenant string) {
	t.Helper()
	var first map[string]any
	for _, path := range []string{"/api/v1/billing", "/api/v1/usage-metrics/billing"} {
		var b map[string]any
		c.expect(t, http.StatusOK, &b, get, path, auth...)
		if b["tenant_id"] != tenant || b["plan"] != "enterprise" || b["billing_cycle"] != "monthly" || b["currency"] != "USD" ||
			b["success"] != true {
			t.Fatalf("%s: %v", path, b)
		}
		if amount, ok := b["amount"].(float64); !ok || amount != 0 {
			t.Fatalf("%s: amount %v, want the number 0 (enterprise: custom)", path, b["amount"])
		}
		if s, _ := b["status"].(string); s != "trial" && s != "active" && s != "past_due" {
			t.Fatalf("%s: status %v", path, b["status"])
		}
		if s, _ := b["next_billing_date"].(string); !isDate(s) {
			t.Fatalf("%s: next_billing_date %v is not a date", path, b["next_billing_date"])
		}
		if first == nil {
			first = b
		} else if fmt.Sprint(first) != fmt.Sprint(b) {
			t.Fatalf("the alias differs: %v vs %v", first, b)
		}
	}
	var pl struct {
		Plans []struct {
			ID           string         `json:"id"`
			Name         string         `json:"name"`
			PriceMonthly *float64       `json:"price_monthly"`
			Limits       map[string]any `json:"limits"`
		} `json:"plans"`
	}
	r := c.expect(t, http.StatusOK, &pl, get, "/api/v1/billing/plans", auth...)
	want := []struct {
		id    string
		price float64
		calls any
	}{{"free", 0, 100.0}, {"basic", 9, 500.0}, {"pro", 29, 1000.0}, {"enterprise", 0, nil}}
	if len(pl.Plans) != len(want) {
		t.Fatalf("plans: %s", r)
	}
	for i, w := range want {
		p := pl.Plans[i]
		if p.ID != w.id || p.Name == "" || p.PriceMonthly == nil || *p.PriceMonthly != w.price || p.Limits["max_api_calls_per_minute"] != w.calls {
			t.Fatalf("plan %d: %+v, want %s at %v with %v calls/min: %s", i, p, w.id, w.price, w.calls, r)
		}
	}
}

func isDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}
