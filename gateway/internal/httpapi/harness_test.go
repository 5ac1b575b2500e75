package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/hints"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
	"github.com/artcafe-ai/pubsub/gateway/internal/sshkeylookup"
	"github.com/artcafe-ai/pubsub/gateway/internal/tenantlookup"
)

const testSecret = "test-secret-that-is-at-least-32-bytes-long!!"

// env is a gateway app wired to a real in-process NATS, a real authenticator and
// agent-token checker fed by the real cache-hint subscriptions, and small fake tenant,
// agent and sshkey services answering their contracts (faking at our own contracts).
type env struct {
	t       testing.TB
	ns      *server.Server
	nc      *nats.Conn // the gateway's connection
	app     *fiber.App
	auth    *auth.Authenticator
	creds   *auth.Credentials
	tenants *fakeTenants
	fleet   *fakeFleet
	// chans is the fake channel service; channels the gateway's channel cache; js a
	// JetStream context on the test's own connection, for reading the real MESSAGES stream.
	chans    *fakeChannels
	channels *messaging.Channels
	js       jetstream.JetStream
	quota    messaging.MessageQuota
	// hints counts the cache hints the gateway has applied, by subject.
	hintsMu sync.Mutex
	hints   map[string]int
	logs    *syncBuffer
	reg     *prometheus.Registry
	extra   func(*api) []route // routes only tests need
	// allow500 lets a test provoke a 500; any other test fails on one (never a 500 for a
	// client mistake).
	allow500 bool
}

type envOption func(*env, *Deps)

func withCORS(origins ...string) envOption {
	return func(_ *env, d *Deps) { d.CORSAllowedOrigins = origins }
}

func withBodyLimit(n int) envOption { return func(_ *env, d *Deps) { d.BodyLimit = n } }

func withUpstreamTimeout(t time.Duration) envOption {
	return func(_ *env, d *Deps) { d.UpstreamTimeout = t }
}

func withTrustedProxies(p ...string) envOption {
	return func(_ *env, d *Deps) { d.TrustedProxies = p }
}

// withQuota puts q in front of every publish.
func withQuota(q messaging.MessageQuota) envOption { return func(e *env, _ *Deps) { e.quota = q } }

// withRoutes appends routes to the table.
func withRoutes(f func(*api) []route) envOption { return func(e *env, _ *Deps) { e.extra = f } }

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	ns := natsrpctest.Server(t)
	e := &env{t: t, ns: ns, logs: &syncBuffer{}, reg: prometheus.NewRegistry(), hints: map[string]int{}}
	e.nc = natsrpctest.Connect(t, ns)
	e.tenants = newFakeTenants()
	e.tenants.start(t, natsrpctest.Connect(t, ns))
	e.fleet = newFakeFleet()
	e.fleet.start(t, natsrpctest.Connect(t, ns))
	e.chans = newFakeChannels(e.fleet)
	e.js = e.chans.start(t, natsrpctest.Connect(t, ns))

	rpc := natsrpc.NewClient(e.nc)
	log := zerolog.New(e.logs)
	creds, err := auth.NewCredentials(sshkeylookup.New(rpc), auth.CredentialsConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{JWTSecret: []byte(testSecret), Agents: creds}, tenantlookup.New(rpc), log)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(a.Close)
	e.auth, e.creds = a, creds
	// What main does: tenant, agent and key changes reach the caches.
	stop, err := hints.Subscribe(e.nc, hints.Caches{Auth: a, Credentials: creds, Log: log, Applied: e.hintApplied})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	deps := Deps{
		Log: log, NATS: e.nc, RPC: rpc, Auth: a, Metrics: e.reg, Version: "1.2.3-test",
		JWTSecret: []byte(testSecret),
	}
	e.quota = messaging.Unlimited{}
	for _, o := range opts {
		o(e, &deps)
	}
	// What main does: the channel cache fed by the channel events, and the publisher.
	if e.channels, err = messaging.NewChannels(messaging.RPCSource(rpc), messaging.ChannelsConfig{Log: log, Applied: e.hintApplied}); err != nil {
		t.Fatal(err)
	}
	stopChannels, err := e.channels.Subscribe(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopChannels)
	gjs, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := messaging.NewPublisher(gjs, e.channels, e.quota, messaging.PublisherConfig{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	deps.Channels, deps.Publisher = e.channels, pub
	app, err := newApp(deps, e.extra)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	e.app = app
	return e
}

// ---- tokens ----

func (e *env) userToken(sub string, roles ...string) string {
	e.t.Helper()
	tok, err := e.auth.MintUserToken(sub, sub+"@example.com", "", roles, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func signHS256(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testKeyID is the SSH key of the agent tokens agentToken mints.
const testKeyID = "01JBKEY0000000000000000001"

// agentToken mints an agent token for agentID with testKeyID, which it makes an active
// key of the agent in the fake sshkey service (so the revocation check passes).
func (e *env) agentToken(tenantID, agentID string) string {
	e.t.Helper()
	e.seedCredential(tenantID, agentID, testKeyID)
	tok, _, err := e.auth.MintAgentToken(tenantID, agentID, testKeyID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// ---- cache hints ----

func (e *env) hintApplied(subject string) {
	e.hintsMu.Lock()
	defer e.hintsMu.Unlock()
	e.hints[subject]++
}

func (e *env) hintCount(subject string) int {
	e.hintsMu.Lock()
	defer e.hintsMu.Unlock()
	return e.hints[subject]
}

// waitHints waits until the gateway has applied n hints of subject in all (events are
// applied on their own goroutine; this waits for that, never for a TTL).
func (e *env) waitHints(subject string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.hintCount(subject) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("the gateway applied %d %s hints, want %d", e.hintCount(subject), subject, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
func apiKey(key string) map[string]string { return map[string]string{"X-Api-Key": key} }

// ---- requests ----

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d): %q", r.status, r.body)
	}
	return m
}

func (r resp) code(t testing.TB) string {
	t.Helper()
	c, _ := r.json(t)["code"].(string)
	return c
}

// do sends a request through app.Test. body: nil, a string (sent as is) or anything else
// (JSON-encoded, with Content-Type application/json).
func (e *env) do(method, target string, body any, headers map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
		ct = "application/json"
	}
	req := httptest.NewRequest(method, target, rd)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := e.app.Test(req, -1)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: b}
	if out.header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: response without X-Request-Id", method, target)
	}
	if out.status >= 400 {
		checkErrorBody(e.t, method, target, out)
	}
	if out.status == http.StatusInternalServerError && !e.allow500 {
		e.t.Errorf("%s %s: 500: %s", method, target, out.body)
	}
	return out
}

// checkErrorBody asserts the error shape of SPEC §4.1 on every error response.
func checkErrorBody(t testing.TB, method, target string, r resp) {
	t.Helper()
	if r.status < 400 || method == http.MethodHead || r.status == http.StatusServiceUnavailable && strings.Contains(string(r.body), "nats_connected") {
		return
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Errorf("%s %s: error %d body is not JSON: %q", method, target, r.status, r.body)
		return
	}
	for _, k := range []string{"detail", "code", "request_id"} {
		if s, _ := m[k].(string); s == "" {
			t.Errorf("%s %s: error %d body lacks %q: %s", method, target, r.status, k, r.body)
		}
	}
	if m["request_id"] != r.header.Get("X-Request-Id") {
		t.Errorf("%s %s: request_id %v differs from X-Request-Id %q", method, target, m["request_id"], r.header.Get("X-Request-Id"))
	}
	if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s %s: 401 without WWW-Authenticate", method, target)
	}
}

func (e *env) expect(r resp, status int, code string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if code != "" {
		if got := r.code(e.t); got != code {
			e.t.Fatalf("code = %q, want %q; body %s", got, code, r.body)
		}
	}
}

// serve starts the app on a real listener (some failures, like a body over the limit,
// are answered by the HTTP server before routing, which app.Test does not show).
func (e *env) serve() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = e.app.Listener(ln); close(done) }()
	e.t.Cleanup(func() { _ = e.app.Shutdown(); <-done })
	return "http://" + ln.Addr().String()
}

// send is do over a real connection.
func (e *env) send(base, method, target string, body io.Reader, headers map[string]string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, base+target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: b}
	if out.header.Get("X-Request-Id") == "" {
		e.t.Errorf("%s %s: response without X-Request-Id", method, target)
	}
	checkErrorBody(e.t, method, target, out)
	if out.status == http.StatusInternalServerError && !e.allow500 {
		e.t.Errorf("%s %s: 500: %s", method, target, out.body)
	}
	return out
}

// ---- fixtures ----

// seedTenant creates a tenant owned by owner in the fake service and returns its id and
// API key.
func (e *env) seedTenant(owner string) (string, string) {
	e.t.Helper()
	return e.tenants.seed(owner)
}

// setRole puts user in tenant with role ("" removes them) and tells the gateway, as the
// real service would.
func (e *env) setRole(tenantID, user, role string) {
	e.t.Helper()
	e.tenants.setRole(tenantID, user, role)
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeMembers})
}

// setTier changes a tenant's plan and tells the gateway, as the real service would.
func (e *env) setTier(tenantID, tier string) {
	e.t.Helper()
	e.tenants.mu.Lock()
	e.tenants.tenants[tenantID].t.SubscriptionTier = tier
	e.tenants.mu.Unlock()
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeStatus})
}

func (e *env) setStatus(tenantID, status string) {
	e.t.Helper()
	e.tenants.mu.Lock()
	e.tenants.tenants[tenantID].t.Status = status
	e.tenants.mu.Unlock()
	e.auth.Forget(tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeStatus})
}

// ---- the fake tenant service ----

type fakeTenant struct {
	t       tenantv1.Tenant
	members map[string]tenantv1.Member
	keyHash string
}

type fakeTenants struct {
	mu      sync.Mutex
	tenants map[string]*fakeTenant
	keys    map[string]string // key hash → tenant id
	seq     int
	delay   time.Duration
	seen    map[string]natsrpc.Identity // op → last caller identity
	calls   map[string]int              // op → calls
	svc     micro.Service
}

func newFakeTenants() *fakeTenants {
	return &fakeTenants{tenants: map[string]*fakeTenant{}, keys: map[string]string{}, seen: map[string]natsrpc.Identity{}, calls: map[string]int{}}
}

func (f *fakeTenants) identity(op string) natsrpc.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[op]
}

// callCount is how many times op was called.
func (f *fakeTenants) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeTenants) setDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

func (f *fakeTenants) newID() string {
	f.seq++
	return fmt.Sprintf("abcdef00-0000-4000-8000-%012d", f.seq)
}

func (f *fakeTenants) seed(owner string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.create(owner, owner+"@example.com", "seeded")
}

func (f *fakeTenants) create(owner, email, name string) (string, string) {
	id := f.newID()
	now := time.Now().UTC().Truncate(time.Second)
	p, _ := plans.Get(plans.Basic)
	key := "art_" + strings.ReplaceAll(id, "-", "")
	ft := &fakeTenant{
		t: tenantv1.Tenant{ID: id, TenantID: id, Name: name, AdminEmail: email, SubscriptionTier: plans.Basic,
			Status: tenantv1.StatusActive, PaymentStatus: tenantv1.PaymentActive, Limits: p.Limits,
			Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now},
		members: map[string]tenantv1.Member{owner: {ID: owner, UserID: owner, Email: email, Role: "owner", JoinedAt: now}},
		keyHash: auth.HashAPIKey(key),
	}
	f.tenants[id] = ft
	f.keys[ft.keyHash] = id
	return id, key
}

func (f *fakeTenants) setRole(tenantID, user, role string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := f.tenants[tenantID]
	if role == "" {
		delete(ft.members, user)
		return
	}
	ft.members[user] = tenantv1.Member{ID: user, UserID: user, Role: role, JoinedAt: time.Now().UTC()}
}

func (f *fakeTenants) start(t testing.TB, nc *nats.Conn) {
	t.Helper()
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	svc, err := micro.AddService(nc, micro.Config{Name: tenantv1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	g := svc.AddGroup(tenantv1.Group)
	add := func(op string, h micro.Handler) {
		if err := g.AddEndpoint(op, h); err != nil {
			t.Fatal(err)
		}
	}
	add(tenantv1.OpLookupMembership, natsrpc.Handle(srv, tenantv1.OpLookupMembership, f.lookupMembership))
	add(tenantv1.OpLookupUserTenants, natsrpc.Handle(srv, tenantv1.OpLookupUserTenants, f.lookupUserTenants))
	add(tenantv1.OpLookupAPIKey, natsrpc.Handle(srv, tenantv1.OpLookupAPIKey, f.lookupAPIKey))
	add(tenantv1.OpLookupTenant, natsrpc.Handle(srv, tenantv1.OpLookupTenant, f.lookupTenant))
	add(tenantv1.OpCreate, natsrpc.Handle(srv, tenantv1.OpCreate, f.opCreate))
	add(tenantv1.OpList, natsrpc.Handle(srv, tenantv1.OpList, f.opList))
	add(tenantv1.OpGet, natsrpc.Handle(srv, tenantv1.OpGet, f.opGet))
	add(tenantv1.OpUpdate, natsrpc.Handle(srv, tenantv1.OpUpdate, f.opUpdate))
	add(tenantv1.OpSetPlan, natsrpc.Handle(srv, tenantv1.OpSetPlan, f.opSetPlan))
	add(tenantv1.OpDelete, natsrpc.Handle(srv, tenantv1.OpDelete, f.opDelete))
	add(tenantv1.OpRotateAPIKey, natsrpc.Handle(srv, tenantv1.OpRotateAPIKey, f.opRotate))
	add(tenantv1.OpMembersList, natsrpc.Handle(srv, tenantv1.OpMembersList, f.opMembersList))
	add(tenantv1.OpMembersAdd, natsrpc.Handle(srv, tenantv1.OpMembersAdd, f.opMembersAdd))
	add(tenantv1.OpMembersUpdate, natsrpc.Handle(srv, tenantv1.OpMembersUpdate, f.opMembersUpdate))
	add(tenantv1.OpMembersRemove, natsrpc.Handle(srv, tenantv1.OpMembersRemove, f.opMembersRemove))
	if err := nc.Flush(); err != nil { // endpoints are subscribed before the first request
		t.Fatal(err)
	}
	f.mu.Lock()
	f.svc = svc
	f.mu.Unlock()
	t.Cleanup(func() { _ = svc.Stop() })
}

func (f *fakeTenants) stop(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	svc := f.svc
	f.mu.Unlock()
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
}

// enter records the caller, applies the configured delay and locks the state.
func (f *fakeTenants) enter(ctx context.Context, op string) func() {
	f.mu.Lock()
	f.seen[op] = natsrpc.IdentityFrom(ctx)
	f.calls[op]++
	d := f.delay
	f.mu.Unlock()
	if d > 0 {
		time.Sleep(d) // a slow service does not care about its caller's deadline
	}
	f.mu.Lock()
	return f.mu.Unlock
}

func (f *fakeTenants) live(id string) (*fakeTenant, error) {
	ft, ok := f.tenants[id]
	if !ok {
		return nil, natsrpc.NotFound("tenant not found")
	}
	return ft, nil
}

func (f *fakeTenants) lookupMembership(ctx context.Context, r *tenantv1.LookupMembershipRequest) (*tenantv1.Membership, error) {
	defer f.enter(ctx, tenantv1.OpLookupMembership)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	m, ok := ft.members[r.UserID]
	if !ok {
		return nil, natsrpc.NotFound("not a member")
	}
	return &tenantv1.Membership{TenantID: r.TenantID, Role: m.Role, TenantStatus: ft.t.Status, TenantTier: ft.t.SubscriptionTier}, nil
}

func (f *fakeTenants) lookupTenant(ctx context.Context, r *tenantv1.LookupTenantRequest) (*tenantv1.TenantStanding, error) {
	defer f.enter(ctx, tenantv1.OpLookupTenant)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	return &tenantv1.TenantStanding{TenantID: r.TenantID, TenantStatus: ft.t.Status, TenantTier: ft.t.SubscriptionTier}, nil
}

func (f *fakeTenants) userTenants(user string) []string {
	var ids []string
	for id, ft := range f.tenants {
		if _, ok := ft.members[user]; ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

func (f *fakeTenants) lookupUserTenants(ctx context.Context, r *tenantv1.LookupUserTenantsRequest) (*tenantv1.LookupUserTenantsResponse, error) {
	defer f.enter(ctx, tenantv1.OpLookupUserTenants)()
	limit := r.Limit
	if limit <= 0 {
		limit = 2
	}
	out := &tenantv1.LookupUserTenantsResponse{Memberships: []tenantv1.Membership{}}
	for _, id := range f.userTenants(r.UserID) {
		if len(out.Memberships) == limit {
			out.More = true
			break
		}
		ft := f.tenants[id]
		out.Memberships = append(out.Memberships, tenantv1.Membership{TenantID: id, Role: ft.members[r.UserID].Role,
			TenantStatus: ft.t.Status, TenantTier: ft.t.SubscriptionTier})
	}
	return out, nil
}

func (f *fakeTenants) lookupAPIKey(ctx context.Context, r *tenantv1.LookupAPIKeyRequest) (*tenantv1.LookupAPIKeyResponse, error) {
	defer f.enter(ctx, tenantv1.OpLookupAPIKey)()
	id, ok := f.keys[r.KeyHash]
	if !ok || f.tenants[id] == nil || f.tenants[id].keyHash != r.KeyHash {
		return nil, natsrpc.NotFound("unknown key")
	}
	return &tenantv1.LookupAPIKeyResponse{TenantID: id, TenantStatus: f.tenants[id].t.Status, TenantTier: f.tenants[id].t.SubscriptionTier}, nil
}

func (f *fakeTenants) opCreate(ctx context.Context, r *tenantv1.CreateRequest) (*tenantv1.CreateResponse, error) {
	defer f.enter(ctx, tenantv1.OpCreate)()
	id := natsrpc.IdentityFrom(ctx)
	if id.Kind != natsrpc.KindUser {
		return nil, natsrpc.Forbidden("users only")
	}
	tid, key := f.create(id.PrincipalID, r.AdminEmail, r.Name)
	return &tenantv1.CreateResponse{TenantID: tid, Tenant: f.tenants[tid].t, APIKey: key}, nil
}

// opList pages with the cursor "after:<tenant id>".
func (f *fakeTenants) opList(ctx context.Context, r *tenantv1.ListRequest) (*tenantv1.ListResponse, error) {
	defer f.enter(ctx, tenantv1.OpList)()
	user := natsrpc.IdentityFrom(ctx).PrincipalID
	after := strings.TrimPrefix(r.Cursor, "after:")
	out := &tenantv1.ListResponse{Tenants: []tenantv1.Tenant{}}
	ids := f.userTenants(user)
	for i, id := range ids {
		if id <= after {
			continue
		}
		t := f.tenants[id].t
		t.Role = f.tenants[id].members[user].Role
		out.Tenants = append(out.Tenants, t)
		if len(out.Tenants) == r.Limit && i < len(ids)-1 {
			out.Cursor = "after:" + id
			break
		}
	}
	return out, nil
}

func (f *fakeTenants) opGet(ctx context.Context, r *tenantv1.GetRequest) (*tenantv1.TenantResponse, error) {
	defer f.enter(ctx, tenantv1.OpGet)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	return &tenantv1.TenantResponse{Tenant: ft.t}, nil
}

func (f *fakeTenants) opUpdate(ctx context.Context, r *tenantv1.UpdateRequest) (*tenantv1.TenantResponse, error) {
	defer f.enter(ctx, tenantv1.OpUpdate)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	if r.Changes.Name.HasValue() {
		ft.t.Name = r.Changes.Name.Value
	}
	if r.Changes.Description.Set {
		if r.Changes.Description.Null {
			ft.t.Description = nil
		} else {
			v := r.Changes.Description.Value
			ft.t.Description = &v
		}
	}
	return &tenantv1.TenantResponse{Tenant: ft.t}, nil
}

func (f *fakeTenants) opSetPlan(ctx context.Context, r *tenantv1.SetPlanRequest) (*tenantv1.TenantResponse, error) {
	defer f.enter(ctx, tenantv1.OpSetPlan)()
	if !natsrpc.IdentityFrom(ctx).PlatformAdmin {
		return nil, natsrpc.Forbidden("platform admins only")
	}
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	if r.Changes.SubscriptionTier != "" {
		ft.t.SubscriptionTier = r.Changes.SubscriptionTier
	}
	if r.Changes.Status != "" {
		ft.t.Status = r.Changes.Status
	}
	return &tenantv1.TenantResponse{Tenant: ft.t}, nil
}

func (f *fakeTenants) opDelete(ctx context.Context, r *tenantv1.DeleteRequest) (*tenantv1.Empty, error) {
	defer f.enter(ctx, tenantv1.OpDelete)()
	if _, err := f.live(r.TenantID); err != nil {
		return nil, err
	}
	delete(f.tenants, r.TenantID)
	return &tenantv1.Empty{}, nil
}

func (f *fakeTenants) opRotate(ctx context.Context, r *tenantv1.RotateAPIKeyRequest) (*tenantv1.RotateAPIKeyResponse, error) {
	defer f.enter(ctx, tenantv1.OpRotateAPIKey)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	f.seq++
	key := fmt.Sprintf("art_rotated%d", f.seq)
	sum := sha256.Sum256([]byte(key))
	ft.keyHash = hex.EncodeToString(sum[:])
	f.keys[ft.keyHash] = r.TenantID
	return &tenantv1.RotateAPIKeyResponse{APIKey: key}, nil
}

func (f *fakeTenants) opMembersList(ctx context.Context, r *tenantv1.MembersListRequest) (*tenantv1.MembersListResponse, error) {
	defer f.enter(ctx, tenantv1.OpMembersList)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	var users []string
	for u := range ft.members {
		users = append(users, u)
	}
	sort.Strings(users)
	after := strings.TrimPrefix(r.Cursor, "after:")
	out := &tenantv1.MembersListResponse{Members: []tenantv1.Member{}}
	for i, u := range users {
		if after != "" && u <= after {
			continue
		}
		out.Members = append(out.Members, ft.members[u])
		if len(out.Members) == r.Limit && i < len(users)-1 {
			out.Cursor = "after:" + u
			break
		}
	}
	return out, nil
}

func (f *fakeTenants) opMembersAdd(ctx context.Context, r *tenantv1.MembersAddRequest) (*tenantv1.MemberResponse, error) {
	defer f.enter(ctx, tenantv1.OpMembersAdd)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	if _, ok := ft.members[r.Member.UserID]; ok {
		return nil, natsrpc.Conflict("already a member")
	}
	m := tenantv1.Member{ID: r.Member.UserID, UserID: r.Member.UserID, Email: r.Member.Email, Role: r.Member.Role, JoinedAt: time.Now().UTC()}
	ft.members[m.UserID] = m
	return &tenantv1.MemberResponse{Member: m}, nil
}

func (f *fakeTenants) opMembersUpdate(ctx context.Context, r *tenantv1.MembersUpdateRequest) (*tenantv1.MemberResponse, error) {
	defer f.enter(ctx, tenantv1.OpMembersUpdate)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	m, ok := ft.members[r.UserID]
	if !ok {
		return nil, natsrpc.NotFound("member not found")
	}
	m.Role = r.Changes.Role
	ft.members[r.UserID] = m
	return &tenantv1.MemberResponse{Member: m}, nil
}

func (f *fakeTenants) opMembersRemove(ctx context.Context, r *tenantv1.MembersRemoveRequest) (*tenantv1.Empty, error) {
	defer f.enter(ctx, tenantv1.OpMembersRemove)()
	ft, err := f.live(r.TenantID)
	if err != nil {
		return nil, err
	}
	if _, ok := ft.members[r.UserID]; !ok {
		return nil, natsrpc.NotFound("member not found")
	}
	delete(ft.members, r.UserID)
	return &tenantv1.Empty{}, nil
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// accessLines returns the access log entries (msg "request").
func (s *syncBuffer) accessLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["message"] == "request" {
			out = append(out, m)
		}
	}
	return out
}
