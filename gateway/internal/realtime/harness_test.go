package realtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/hints"
	"github.com/artcafe-ai/pubsub/gateway/internal/httpapi"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
	"github.com/artcafe-ai/pubsub/gateway/internal/sshkeylookup"
	"github.com/artcafe-ai/pubsub/gateway/internal/tenantlookup"
)

const testSecret = "realtime-test-secret-at-least-32-bytes!!"

// env is the gateway app (httpapi with the realtime hub) on a real listener, over an
// in-process NATS with JetStream, the real MESSAGES stream and PRESENCE bucket, the real
// authenticator, channel cache and publisher, and small fake tenant, sshkey and channel
// services answering their contracts (faking at our own contracts).
type env struct {
	t        testing.TB
	ns       *server.Server
	nc       *nats.Conn // the gateway's connection
	js       jetstream.JetStream
	stream   jetstream.Stream
	kv       jetstream.KeyValue
	auth     *auth.Authenticator
	channels *messaging.Channels
	pub      *messaging.Publisher
	hub      *realtime.Hub
	app      *fiber.App
	base     string // ws://host:port
	http     string // http://host:port
	fake     *fakeServices
	applied  sync.Map // subject → *atomic.Int64: events the gateway has applied
}

func newEnv(t testing.TB, cfg realtime.Config) *env {
	t.Helper()
	ns := natsrpctest.Server(t)
	e := &env{t: t, ns: ns, nc: natsrpctest.Connect(t, ns), fake: newFakeServices()}
	e.fake.start(t, natsrpctest.Connect(t, ns))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	e.js = js
	// The channel service owns these; the test creates them as it would.
	if e.stream, err = js.CreateStream(ctx, messagev1.StreamConfig(1)); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if e.kv, err = js.CreateKeyValue(ctx, presencev1.BucketConfig(1)); err != nil {
		t.Fatalf("create bucket: %v", err)
	}

	log := zerolog.New(io.Discard)
	rpc := natsrpc.NewClient(e.nc)
	creds, err := auth.NewCredentials(sshkeylookup.New(rpc), auth.CredentialsConfig{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if e.auth, err = auth.New(auth.Config{JWTSecret: []byte(testSecret), Agents: creds}, tenantlookup.New(rpc), log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.auth.Close)
	if e.channels, err = messaging.NewChannels(messaging.RPCSource(rpc), messaging.ChannelsConfig{Log: log, Applied: e.count}); err != nil {
		t.Fatal(err)
	}
	stopCh, err := e.channels.Subscribe(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopCh)
	if e.pub, err = messaging.NewPublisher(js, e.channels, messaging.Unlimited{}, messaging.PublisherConfig{Log: log}); err != nil {
		t.Fatal(err)
	}
	if cfg.RecheckEvery == 0 {
		cfg.RecheckEvery = time.Hour // tests of revocation drive it with events
	}
	if cfg.CloseGrace == 0 {
		cfg.CloseGrace = 500 * time.Millisecond
	}
	if e.hub, err = realtime.New(realtime.Deps{NATS: e.nc, JetStream: js, Auth: e.auth, Channels: e.channels, Publisher: e.pub, Log: log}, cfg); err != nil {
		t.Fatal(err)
	}
	stopHints, err := hints.Subscribe(e.nc, hints.Caches{Auth: e.auth, Credentials: creds, Sessions: e.hub, Log: log, Applied: e.count})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopHints)
	e.app, err = httpapi.New(httpapi.Deps{
		Log: log, NATS: e.nc, RPC: rpc, Auth: e.auth, Channels: e.channels, Publisher: e.pub, Realtime: e.hub,
		JWTSecret: []byte(testSecret), CORSAllowedOrigins: cfg.AllowedOrigins,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = e.app.Listener(ln); close(done) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.hub.Shutdown(sctx)
		_ = e.app.Shutdown()
		<-done
	})
	e.base = "ws://" + ln.Addr().String()
	e.http = "http://" + ln.Addr().String()
	return e
}

func (e *env) count(subject string) {
	v, _ := e.applied.LoadOrStore(subject, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (e *env) appliedCount(subject string) int64 {
	v, ok := e.applied.Load(subject)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

// waitApplied waits until the gateway has applied n events of subject.
func (e *env) waitApplied(subject string, n int64) {
	e.t.Helper()
	eventually(e.t, "event "+subject+" applied", func() bool { return e.appliedCount(subject) >= n })
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- fixtures ----

func newID() string { return ulid.Make().String() }

var tenantSeq atomic.Int64

// tenant creates a tenant whose owner is owner, on plan tier; it returns its id and
// API key.
func (e *env) tenant(owner, tier string) (string, string) {
	id := fmt.Sprintf("abcdef00-0000-4000-8000-%012d", tenantSeq.Add(1))
	key := "art_" + strings.ReplaceAll(id, "-", "") + "k"
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	e.fake.tenants[id] = &fakeTenant{tier: tier, status: tenantv1.StatusActive,
		members: map[string]string{owner: natsrpc.RoleOwner}, keyHash: auth.HashAPIKey(key)}
	return id, key
}

func (e *env) setRole(tenantID, user, role string) {
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	if role == "" {
		delete(e.fake.tenants[tenantID].members, user)
		return
	}
	e.fake.tenants[tenantID].members[user] = role
}

// channel creates a channel of tenant (typ public or private).
func (e *env) channel(tenantID, typ string) string {
	id := newID()
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	e.fake.channels[tenantID+"/"+id] = &fakeChannel{typ: typ, roles: map[string]string{}}
	return id
}

func (e *env) grant(tenantID, channelID, agentID, role string) {
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	e.fake.channels[tenantID+"/"+channelID].roles[agentID] = role
}

// deleteChannel deletes a channel as the channel service would: the record goes, then
// channels.deleted is published.
func (e *env) deleteChannel(tenantID, channelID string) {
	e.t.Helper()
	e.fake.mu.Lock()
	delete(e.fake.channels, tenantID+"/"+channelID)
	e.fake.mu.Unlock()
	ref, _ := json.Marshal(eventsv1.ChannelRef{ChannelID: channelID})
	ev, _ := json.Marshal(eventsv1.Event{Type: "channels.deleted", TenantID: tenantID, Timestamp: time.Now().UTC(), Data: ref})
	subject := eventsv1.Subject(tenantID, eventsv1.EntityChannels, eventsv1.ActionDeleted)
	before := e.appliedCount(subject)
	if err := e.nc.Publish(subject, ev); err != nil {
		e.t.Fatal(err)
	}
	e.waitApplied(subject, before+1)
}

// userToken is a user token for sub, valid ttl.
func (e *env) userToken(sub string, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.auth.MintUserToken(sub, sub+"@example.com", "", nil, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// agentToken makes keyID an active key of agentID and mints a token with it.
func (e *env) agentToken(tenantID, agentID, keyID string, ttl time.Duration) string {
	e.t.Helper()
	e.fake.mu.Lock()
	e.fake.creds[tenantID+"/"+agentID+"/"+keyID] = true
	e.fake.mu.Unlock()
	tok, _, err := e.auth.MintAgentToken(tenantID, agentID, keyID, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// publish stores a message as the REST route would (the same publisher).
func (e *env) publish(tenantID, channelID, user string, data string) messagev1.Published {
	e.t.Helper()
	res, _, err := e.pub.Publish(context.Background(), messaging.PublishInput{TenantID: tenantID, ChannelID: channelID,
		Principal: auth.Principal{Kind: natsrpc.KindUser, UserID: user}, Role: natsrpc.RoleOwner, Plan: plans.Pro, Data: []byte(data)})
	if err != nil {
		e.t.Fatalf("publish: %v", err)
	}
	return res
}

// notify publishes a cache hint (as the services do) and waits until it was applied.
func (e *env) notify(subject string, ev any) {
	e.t.Helper()
	b, _ := json.Marshal(ev)
	before := e.appliedCount(subject)
	if err := e.nc.Publish(subject, b); err != nil {
		e.t.Fatal(err)
	}
	e.waitApplied(subject, before+1)
}

// ---- WebSocket client ----

// client is a WebSocket client whose frames a background reader collects (a coder/websocket
// Read whose context ends closes the connection, so tests never read with a timeout).
type client struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan received
	done   chan struct{}
	err    error // why the reader stopped (after done)
	start  sync.Once
}

type received struct {
	raw []byte
	f   realtimev1.ServerFrame
	at  time.Time
}

type dialOpt func(*http.Header, *string)

func withHeader(k, v string) dialOpt { return func(h *http.Header, _ *string) { h.Set(k, v) } }
func withQuery(q string) dialOpt     { return func(_ *http.Header, s *string) { *s += q } }
func bearer(tok string) dialOpt      { return withHeader("Authorization", "Bearer "+tok) }

// dial opens a session and returns the client (nil with the HTTP response when the
// upgrade was refused).
func (e *env) dial(opts ...dialOpt) (*client, *http.Response, error) {
	h := http.Header{}
	u := e.base + realtimev1.Path
	q := ""
	for _, o := range opts {
		o(&h, &q)
	}
	if q != "" {
		u += "?" + strings.TrimPrefix(q, "&")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, res, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: e.t, c: c, frames: make(chan received, 1024), done: make(chan struct{})}
	e.t.Cleanup(func() { _ = c.CloseNow() })
	return cl, res, nil
}

// connect dials and reads the connected frame.
func (e *env) connect(opts ...dialOpt) (*client, realtimev1.ServerFrame) {
	e.t.Helper()
	c, res, err := e.dial(opts...)
	if err != nil {
		body := ""
		if res != nil {
			b, _ := io.ReadAll(res.Body)
			body = fmt.Sprintf("%d %s", res.StatusCode, b)
		}
		e.t.Fatalf("dial: %v %s", err, body)
	}
	c.read()
	f := c.expect(realtimev1.TypeConnected)
	return c, f
}

// read starts the background reader (once).
func (c *client) read() {
	c.start.Do(func() {
		go func() {
			defer close(c.done)
			for {
				_, b, err := c.c.Read(context.Background())
				if err != nil {
					c.err = err
					return
				}
				var f realtimev1.ServerFrame
				if err := json.Unmarshal(b, &f); err != nil {
					c.err = fmt.Errorf("frame is not JSON: %q", b)
					return
				}
				c.frames <- received{raw: b, f: f, at: time.Now()}
			}
		}()
	})
}

func (c *client) send(f any) {
	c.t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, b)
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test when none comes in 15 s.
func (c *client) next() received {
	c.t.Helper()
	select {
	case r := <-c.frames:
		return r
	case <-time.After(15 * time.Second):
		c.t.Fatalf("no frame within 15 s (reader: %v)", c.readerErr())
	}
	return received{}
}

func (c *client) readerErr() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// expect returns the next frame, which must be of type typ.
func (c *client) expect(typ string) realtimev1.ServerFrame {
	c.t.Helper()
	r := c.next()
	if r.f.Type != typ {
		c.t.Fatalf("frame %s, want %s: %s", r.f.Type, typ, r.raw)
	}
	return r.f
}

// expectError returns the next frame, which must be an error with code.
func (c *client) expectError(code string) realtimev1.ServerFrame {
	c.t.Helper()
	f := c.expect(realtimev1.TypeError)
	if f.Code != code {
		c.t.Fatalf("error %q (%s), want %q", f.Code, f.Detail, code)
	}
	return f
}

// subscribe subscribes and waits for subscribed.
func (c *client) subscribe(channelID string) {
	c.t.Helper()
	id := newID()
	c.send(realtimev1.Subscribe(id, channelID))
	f := c.expect(realtimev1.TypeSubscribed)
	if f.ID != id || f.ChannelID != channelID {
		c.t.Fatalf("subscribed %+v, want id %s channel %s", f, id, channelID)
	}
}

// closed waits for the connection to end and returns its close code (-1: no close frame).
func (c *client) closed() websocket.StatusCode {
	c.t.Helper()
	c.read()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-c.done:
			return websocket.CloseStatus(c.err)
		case <-c.frames: // drain what came before the close
		case <-deadline:
			c.t.Fatal("the connection did not close within 20 s")
		}
	}
}

// ---- fake services ----

type fakeTenant struct {
	tier, status string
	members      map[string]string // user → role
	keyHash      string
}

type fakeChannel struct {
	typ   string
	roles map[string]string // agent → role
}

type fakeServices struct {
	mu       sync.Mutex
	tenants  map[string]*fakeTenant
	creds    map[string]bool // tenant/agent/key → active
	channels map[string]*fakeChannel
}

func newFakeServices() *fakeServices {
	return &fakeServices{tenants: map[string]*fakeTenant{}, creds: map[string]bool{}, channels: map[string]*fakeChannel{}}
}

func (f *fakeServices) start(t testing.TB, nc *nats.Conn) {
	t.Helper()
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	add := func(name, group string, eps map[string]micro.Handler) {
		svc, err := micro.AddService(nc, micro.Config{Name: name, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Stop() })
		g := svc.AddGroup(group)
		for op, h := range eps {
			if err := g.AddEndpoint(op, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(tenantv1.Service, tenantv1.Group, map[string]micro.Handler{
		tenantv1.OpLookupMembership:  natsrpc.Handle(srv, tenantv1.OpLookupMembership, f.membership),
		tenantv1.OpLookupUserTenants: natsrpc.Handle(srv, tenantv1.OpLookupUserTenants, f.userTenants),
		tenantv1.OpLookupAPIKey:      natsrpc.Handle(srv, tenantv1.OpLookupAPIKey, f.apiKey),
		tenantv1.OpLookupTenant:      natsrpc.Handle(srv, tenantv1.OpLookupTenant, f.standing),
	})
	add(sshkeyv1.Service, sshkeyv1.Group, map[string]micro.Handler{
		sshkeyv1.OpLookupCredential: natsrpc.Handle(srv, sshkeyv1.OpLookupCredential, f.credential),
	})
	add(channelv1.Service, channelv1.Group, map[string]micro.Handler{
		channelv1.OpLookup: natsrpc.Handle(srv, channelv1.OpLookup, f.lookup),
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeServices) membership(_ context.Context, r *tenantv1.LookupMembershipRequest) (*tenantv1.Membership, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.tenants[r.TenantID]
	if !ok {
		return nil, natsrpc.NotFound("tenant not found")
	}
	role, ok := ft.members[r.UserID]
	if !ok {
		return nil, natsrpc.NotFound("not a member")
	}
	return &tenantv1.Membership{TenantID: r.TenantID, Role: role, TenantStatus: ft.status, TenantTier: ft.tier}, nil
}

func (f *fakeServices) userTenants(_ context.Context, r *tenantv1.LookupUserTenantsRequest) (*tenantv1.LookupUserTenantsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &tenantv1.LookupUserTenantsResponse{Memberships: []tenantv1.Membership{}}
	for id, ft := range f.tenants {
		if role, ok := ft.members[r.UserID]; ok {
			out.Memberships = append(out.Memberships, tenantv1.Membership{TenantID: id, Role: role, TenantStatus: ft.status, TenantTier: ft.tier})
		}
	}
	if len(out.Memberships) > 2 {
		out.Memberships, out.More = out.Memberships[:2], true
	}
	return out, nil
}

func (f *fakeServices) apiKey(_ context.Context, r *tenantv1.LookupAPIKeyRequest) (*tenantv1.LookupAPIKeyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, ft := range f.tenants {
		if ft.keyHash == r.KeyHash {
			return &tenantv1.LookupAPIKeyResponse{TenantID: id, TenantStatus: ft.status, TenantTier: ft.tier}, nil
		}
	}
	return nil, natsrpc.NotFound("unknown key")
}

func (f *fakeServices) standing(_ context.Context, r *tenantv1.LookupTenantRequest) (*tenantv1.TenantStanding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, ok := f.tenants[r.TenantID]
	if !ok {
		return nil, natsrpc.NotFound("tenant not found")
	}
	return &tenantv1.TenantStanding{TenantID: r.TenantID, TenantStatus: ft.status, TenantTier: ft.tier}, nil
}

func (f *fakeServices) credential(_ context.Context, r *sshkeyv1.LookupCredentialRequest) (*sshkeyv1.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.creds[r.TenantID+"/"+r.AgentID+"/"+r.KeyID] {
		return nil, natsrpc.NotFound("no such key")
	}
	return &sshkeyv1.Empty{}, nil
}

func (f *fakeServices) lookup(_ context.Context, r *channelv1.LookupRequest) (*channelv1.Lookup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.channels[r.TenantID+"/"+r.ChannelID]
	if !ok {
		return nil, natsrpc.NotFound("channel not found")
	}
	return &channelv1.Lookup{ChannelID: r.ChannelID, Type: ch.typ, AgentRole: ch.roles[r.AgentID]}, nil
}

// revokeKey marks a key revoked in the fake sshkey service.
func (f *fakeServices) revokeKey(tenantID, agentID, keyID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.creds, tenantID+"/"+agentID+"/"+keyID)
}

// jsPurgeKeep trims a channel to its newest keep messages.
func jsPurgeKeep(tenantID, channelID string, keep uint64) []jetstream.StreamPurgeOpt {
	return []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(messagev1.Subject(tenantID, channelID)), jetstream.WithPurgeKeep(keep)}
}
