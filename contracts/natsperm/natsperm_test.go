package natsperm_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nkeys"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

const (
	tenantA = "0b9f8a3e-5c1d-4e2a-9f3b-1a2b3c4d5e6f"
	tenantB = "7c6d5e4f-3a2b-4c1d-8e9f-0a1b2c3d4e5f"
	chanA   = "01JBCHANNELAAAAAAAAAAAAAAA"
)

// fleet is a nats-server started from the rendered AuthConfig (the same text the
// launcher serves), plus one agent user of tenant A, and a seed per user.
type fleet struct {
	ns    *server.Server
	seeds map[string]nkeys.KeyPair
}

func startFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{seeds: map[string]nkeys.KeyPair{}}
	pubs := map[string]string{}
	for _, c := range append(natsperm.Components(), "agent-of-a") {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		f.seeds[c] = kp
		pubs[c], _ = kp.PublicKey()
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(natsperm.AuthConfig(natsperm.NKeyLiteral(pubs))); err != nil {
		t.Fatalf("the rendered config does not parse: %v", err)
	}
	agentPerms, err := natsperm.AgentPermissions(tenantA)
	if err != nil {
		t.Fatal(err)
	}
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pubs["agent-of-a"], Permissions: serverPermissions(agentPerms)})
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.JetStream, opts.StoreDir = true, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	f.ns = ns
	return f
}

// serverPermissions is what a server that authenticates agents would register.
func serverPermissions(p natsperm.Permissions) *server.Permissions {
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny},
		Subscribe: &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny},
	}
	if p.AllowResponses {
		sp.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	return sp
}

// conn is a connection as user (a component, "agent-of-a", or "" for anonymous) that
// records the permission violations the server reports.
type conn struct {
	*nats.Conn
	mu         sync.Mutex
	violations []string
}

func (f *fleet) connect(t *testing.T, user string) *conn {
	t.Helper()
	c := &conn{}
	opts := []nats.Option{nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(err.Error(), "Permissions Violation") {
			c.mu.Lock()
			c.violations = append(c.violations, err.Error())
			c.mu.Unlock()
		}
	})}
	if user != "" {
		kp := f.seeds[user]
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
		if user != "agent-of-a" {
			opts = append(opts, nats.CustomInboxPrefix(natsperm.InboxPrefix(user)))
		}
	}
	nc, err := nats.Connect(f.ns.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// violated waits until the server reported a violation mentioning subject.
func (c *conn) violated(t *testing.T, subject string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, v := range c.violations {
			if strings.Contains(v, `"`+subject+`"`) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		_ = c.Flush()
		time.Sleep(20 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Fatalf("no permission violation for %q (saw %q)", subject, c.violations)
}

func (c *conn) clean(t *testing.T) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) > 0 {
		t.Fatalf("unexpected permission violations: %q", c.violations)
	}
}

func TestServiceServesOnlyItsOwnSubjects(t *testing.T) {
	f := startFleet(t)
	sshkey := f.connect(t, natsperm.SSHKey)
	if _, err := sshkey.QueueSubscribe("svc.tenant.v1.>", "q", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	sshkey.violated(t, "svc.tenant.v1.>")
	// Nor may it read another component's replies or the gateway's traffic.
	if _, err := sshkey.Subscribe(natsperm.InboxPrefix(natsperm.Gateway)+".>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	sshkey.violated(t, natsperm.InboxPrefix(natsperm.Gateway)+".>")
	// Nor call an endpoint it has no business with (only agent lookups).
	if err := sshkey.Publish(tenantv1.Subject(tenantv1.OpGet), nil); err != nil {
		t.Fatal(err)
	}
	sshkey.violated(t, tenantv1.Subject(tenantv1.OpGet))
}

func TestGatewayCallsServiceAndOpsDiscoversIt(t *testing.T) {
	f := startFleet(t)
	tenant := f.connect(t, natsperm.Tenant)
	svc, err := micro.AddService(tenant.Conn, micro.Config{Name: tenantv1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := svc.AddGroup(tenantv1.Group).AddEndpoint(tenantv1.OpGet, micro.HandlerFunc(func(r micro.Request) {
		_ = r.Respond([]byte(`{"ok":true}`))
	})); err != nil {
		t.Fatal(err)
	}
	tenant.clean(t)

	gw := f.connect(t, natsperm.Gateway)
	reply, err := gw.Request(tenantv1.Subject(tenantv1.OpGet), []byte(`{}`), 5*time.Second)
	if err != nil {
		t.Fatalf("gateway → tenant: %v", err)
	}
	if string(reply.Data) != `{"ok":true}` {
		t.Fatalf("gateway → tenant replied %q", reply.Data)
	}
	gw.clean(t)

	ops := f.connect(t, "")
	if _, err := ops.Request("$SRV.INFO."+tenantv1.Service, nil, 5*time.Second); err != nil {
		t.Fatalf("anonymous $SRV.INFO: %v", err)
	}
	ops.clean(t)
	// Anonymous connections may not call services, nor listen to tenant traffic.
	if err := ops.Publish(tenantv1.Subject(tenantv1.OpGet), nil); err != nil {
		t.Fatal(err)
	}
	ops.violated(t, tenantv1.Subject(tenantv1.OpGet))
	if _, err := ops.Subscribe("tenant.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	ops.violated(t, "tenant.>")
}

func TestAgentReadsOnlyItsTenant(t *testing.T) {
	f := startFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The channel service owns the message stream; the gateway publishes to it.
	ch := f.connect(t, natsperm.Channel)
	chJS, _ := jetstream.New(ch.Conn)
	if _, err := chJS.CreateOrUpdateStream(ctx, messagev1.StreamConfig(1)); err != nil {
		t.Fatalf("channel service ensures %s: %v", messagev1.Stream, err)
	}
	if _, err := platform.EnsureStream(ctx, chJS, 1); err != nil {
		t.Fatalf("channel service ensures %s: %v", platform.Stream, err)
	}
	ch.clean(t)

	agent := f.connect(t, "agent-of-a")
	own := make(chan *nats.Msg, 4)
	if _, err := agent.ChanSubscribe("tenant."+tenantA+".channel.>", own); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Subscribe("tenant."+tenantB+".channel.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	agent.violated(t, "tenant."+tenantB+".channel.>")
	if err := agent.Publish(messagev1.Subject(tenantA, chanA), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	agent.violated(t, messagev1.Subject(tenantA, chanA))

	gw := f.connect(t, natsperm.Gateway)
	gwJS, _ := jetstream.New(gw.Conn)
	if _, err := gwJS.Publish(ctx, messagev1.Subject(tenantA, chanA), []byte(`{"n":1}`)); err != nil {
		t.Fatalf("gateway publish: %v", err)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case m := <-own:
			got[m.Subject] = true
		case <-ctx.Done():
			t.Fatalf("the agent got %v, want the stored and the live subject", got)
		}
	}
	// Only the stream writes the live copy.
	if err := gw.Publish(messagev1.LiveSubject(tenantA, chanA), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	gw.violated(t, messagev1.LiveSubject(tenantA, chanA))
}

func TestAgentPermissionsRejectBadTenant(t *testing.T) {
	for _, id := range []string{"", "*", ">", "abc", strings.ToUpper(tenantA), tenantA + ".x"} {
		if _, err := natsperm.AgentPermissions(id); err == nil {
			t.Errorf("AgentPermissions(%q) accepted", id)
		}
	}
}

func TestEveryComponentHasBoundedPermissions(t *testing.T) {
	for _, c := range append(natsperm.Components(), natsperm.Ops) {
		p, err := natsperm.For(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.PublishAllow) == 0 || len(p.SubscribeAllow) == 0 {
			t.Errorf("%s: an empty allow list means no restriction: %+v", c, p)
		}
		for _, s := range append(p.PublishAllow, p.SubscribeAllow...) {
			if s == ">" || s == "*.>" || s == "$JS.API.>" || s == "$JS.>" || s == "_INBOX.>" && c != natsperm.Ops {
				t.Errorf("%s may use %q", c, s)
			}
		}
	}
	if _, err := natsperm.For("nobody"); err == nil {
		t.Error("For(nobody) succeeded")
	}
}
