package natsapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/kit/agentlookup"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/events"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/repo"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

// clock is the service's time, moved by tests. It starts 15 s into a minute that lies
// ahead of the wall clock, so items the store expires by the wall clock (rate-limit
// windows, challenges) stay alive, and Retry-After values are exact.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Now().UTC().Truncate(time.Minute).Add(2*time.Minute + 15*time.Second)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log lines written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeAgents is the agent service at its contract (agentv1 lookup): a micro service on
// the same NATS answering from a set of live agents, or 503 when down.
type fakeAgents struct {
	mu   sync.Mutex
	live map[string]bool // tenant + "/" + agent
	down atomic.Bool
}

func (a *fakeAgents) add(tenantID, agentID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.live[tenantID+"/"+agentID] = true
}

func (a *fakeAgents) remove(tenantID, agentID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.live, tenantID+"/"+agentID)
}

func startFakeAgents(t *testing.T, ns *server.Server) *fakeAgents {
	t.Helper()
	a := &fakeAgents{live: map[string]bool{}}
	nc := natsrpctest.Connect(t, ns)
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: agentv1.Service, Description: "fake", ContractVersion: agentv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	h := natsrpc.Handle(srv, agentv1.OpLookup, func(ctx context.Context, req *agentv1.LookupRequest) (*agentv1.LookupResponse, error) {
		if a.down.Load() {
			return nil, natsrpc.Unavailable("agent store down")
		}
		a.mu.Lock()
		ok := a.live[req.TenantID+"/"+req.AgentID]
		a.mu.Unlock()
		if !ok {
			return nil, natsrpc.NotFound("agent not found")
		}
		return &agentv1.LookupResponse{AgentID: req.AgentID, Status: agentv1.StatusOffline}, nil
	})
	if err := ms.AddGroup(agentv1.Group).AddEndpoint(agentv1.OpLookup, h); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

type fixture struct {
	client *natsrpc.Client
	nc     *nats.Conn // a connection of the test's own
	table  store.Table
	repo   *repo.Repo
	clock  *clock
	agents *fakeAgents
	logs   *logBuffer
}

// start runs the sshkey service (micro endpoints, real store, real NATS) with a fake
// agent service, and returns a client on a connection of its own.
func start(t *testing.T, opts ...sshkey.Option) *fixture {
	return startWith(t, nil, opts...)
}

// startWith is start with the table wrapped (to inject store failures).
func startWith(t *testing.T, wrap func(store.Table) store.Table, opts ...sshkey.Option) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	table := storetest.NewTable(t, repo.Table)
	svcTable := table
	if wrap != nil {
		svcTable = wrap(table)
	}
	clk := newClock()
	logs := &logBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	fa := startFakeAgents(t, ns)
	svc := sshkey.NewService(repo.New(svcTable), agentlookup.New(natsrpc.NewClient(nc), sshkey.ErrNotFound, sshkey.ErrUnavailable), events.NewPublisher(nc, log),
		append([]sshkey.Option{sshkey.WithClock(clk.Now)}, opts...)...)
	srv := natsrpc.NewServer(nc, log)
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: sshkeyv1.Service, Description: "test", ContractVersion: sshkeyv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	if err := natsapi.Register(ms, srv, svc); err != nil {
		t.Fatal(err)
	}
	// The endpoints' subscriptions reach the server with the next round trip.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	own := natsrpctest.Connect(t, ns)
	return &fixture{client: natsrpc.NewClient(own), nc: own, table: table, repo: repo.New(table), clock: clk, agents: fa, logs: logs}
}

func newTenant() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func newULID() string { return ulid.Make().String() }

// member is a tenant member's call (the gateway resolved tenant and plan).
func member(tenantID, plan string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		RequestID: "req-" + newULID(), TenantID: tenantID, Kind: natsrpc.KindUser, PrincipalID: "alice",
		Role: natsrpc.RoleMember, Plan: plan, ClientIP: "198.51.100.1",
	})
}

// from is an unauthenticated login call from a client address.
func from(ip string) context.Context {
	return natsrpc.WithIdentity(context.Background(), natsrpc.Identity{RequestID: "req-" + newULID(), ClientIP: ip})
}

func (f *fixture) call(t *testing.T, ctx context.Context, op string, req, resp any) {
	t.Helper()
	if err := f.client.Call(ctx, sshkeyv1.Subject(op), req, resp); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// fails calls op and checks the wire error's status and code.
func (f *fixture) fails(t *testing.T, ctx context.Context, op string, req any, status int, code string) *natsrpc.Error {
	t.Helper()
	err := f.client.Call(ctx, sshkeyv1.Subject(op), req, nil)
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: error %v, want %d %s", op, err, status, code)
	}
	return e
}

// agent registers a live agent of tenantID with the fake agent service.
func (f *fixture) agent(tenantID string) string {
	id := newULID()
	f.agents.add(tenantID, id)
	return id
}

func (f *fixture) create(t *testing.T, ctx context.Context, body sshkeyv1.CreateBody) sshkeyv1.Key {
	t.Helper()
	if body.Name == "" {
		body.Name = "key"
	}
	var out sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: body}, &out)
	return out.Key
}

// agentKey registers k as an agent key of agentID in tenantID.
func (f *fixture) agentKey(t *testing.T, tenantID, agentID string, k testkeys.Key) sshkeyv1.Key {
	t.Helper()
	return f.create(t, member(tenantID, plans.Pro), sshkeyv1.CreateBody{Name: "agent key", PublicKey: k.Line, AgentID: agentID})
}

func (f *fixture) challenge(t *testing.T, ip string, b sshkeyv1.ChallengeBody) sshkeyv1.Challenge {
	t.Helper()
	var out sshkeyv1.Challenge
	f.call(t, from(ip), sshkeyv1.OpChallenge, sshkeyv1.ChallengeRequest{Login: b}, &out)
	return out
}

func (f *fixture) verify(ctx context.Context, b sshkeyv1.VerifyBody) (sshkeyv1.Verified, error) {
	var out sshkeyv1.Verified
	err := f.client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpVerify), sshkeyv1.VerifyRequest{Login: b}, &out)
	return out, err
}

func sign(t *testing.T, k testkeys.Key, challenge string) string {
	t.Helper()
	resp, err := agentlogin.Sign(k.Signer, challenge)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// login runs challenge → sign with k → verify from ip.
func (f *fixture) login(t *testing.T, ip, tenantID, keyID, agentID string, k testkeys.Key) (sshkeyv1.Verified, error) {
	t.Helper()
	ch := f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenantID, KeyID: keyID, AgentID: agentID})
	return f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenantID, KeyID: keyID, AgentID: agentID, Challenge: ch.Challenge, Response: sign(t, k, ch.Challenge)})
}

// isInvalidSignature checks the one answer to a failed login.
func isInvalidSignature(t *testing.T, err error, what string) {
	t.Helper()
	e, ok := natsrpc.AsError(err)
	want := sshkeyv1.InvalidSignature()
	if !ok || e.Status != http.StatusUnauthorized || e.Code != want.Code || e.Detail != want.Detail {
		t.Fatalf("%s: %v, want 401 invalid_signature", what, err)
	}
}

// items returns the SKs of the live items of a tenant's partition with prefix.
func (f *fixture) items(t *testing.T, tenantID, prefix string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		page, err := f.table.Query(context.Background(), "T#"+tenantID, store.QueryOptions{Prefix: prefix, Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			out = append(out, it.SK)
		}
		if page.Cursor == "" {
			return out
		}
		cursor = page.Cursor
	}
}

// hints subscribes to KeyChanged and returns a function that waits for n of them.
func (f *fixture) hints(t *testing.T) func(n int) []sshkeyv1.KeyChanged {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := f.nc.ChanSubscribe(sshkeyv1.SubjectKeyChanged, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func(n int) []sshkeyv1.KeyChanged {
		t.Helper()
		var out []sshkeyv1.KeyChanged
		for len(out) < n {
			select {
			case m := <-ch:
				var kc sshkeyv1.KeyChanged
				if err := json.Unmarshal(m.Data, &kc); err != nil {
					t.Fatal(err)
				}
				out = append(out, kc)
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d key change hints, want %d", len(out), n)
			}
		}
		return out
	}
}

func contains(haystack string, needles ...string) bool {
	for _, n := range needles {
		if strings.Contains(haystack, n) {
			return true
		}
	}
	return false
}
