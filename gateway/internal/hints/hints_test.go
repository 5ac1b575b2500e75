package hints

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

const (
	tenant = "abcdef00-0000-4000-8000-000000000001"
	agent  = "01JBAGENT00000000000000001"
	key    = "01JBKEY0000000000000000001"
)

// credentials is a CredentialLookup (our interface) whose answer the test flips.
type credentials struct {
	mu     sync.Mutex
	stands bool
}

func (c *credentials) set(v bool) { c.mu.Lock(); c.stands = v; c.mu.Unlock() }

func (c *credentials) Credential(context.Context, string, string, string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stands {
		return natsrpc.NotFound("gone")
	}
	return nil
}

// TestSubscribe: each hint reaches the checker's cache (a cached "it stands" is dropped
// at once), malformed ones are ignored, and stop unsubscribes.
func TestSubscribe(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	pub := natsrpctest.Connect(t, ns)
	creds := &credentials{stands: true}
	checker, err := auth.NewCredentials(creds, auth.CredentialsConfig{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(auth.Config{JWTSecret: []byte("0123456789abcdef0123456789abcdef"), Agents: checker}, nilLookups{}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer authn.Close()

	applied := make(chan string, 10)
	stop, err := Subscribe(nc, Caches{Auth: authn, Credentials: checker, Log: zerolog.Nop(),
		Applied: func(s string) { applied <- s }})
	if err != nil {
		t.Fatal(err)
	}
	p := auth.Principal{Kind: natsrpc.KindAgent, TenantID: tenant, AgentID: agent, KeyID: key}
	ctx := context.Background()

	send := func(subject string, ev any) {
		t.Helper()
		b, _ := json.Marshal(ev)
		if raw, ok := ev.(string); ok {
			b = []byte(raw)
		}
		if err := pub.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-applied:
			if got != subject {
				t.Fatalf("applied %s, want %s", got, subject)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not applied", subject)
		}
	}
	// Each case: cache "it stands", revoke upstream, send the hint, expect the revocation.
	for _, c := range []struct {
		subject string
		ev      any
		evicts  bool
	}{
		{sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{TenantID: tenant, KeyID: key, Change: sshkeyv1.ChangeRevoked}, true},
		{agentv1.SubjectAgentChanged, agentv1.AgentChanged{TenantID: tenant, AgentID: agent, Change: agentv1.ChangeDeleted}, true},
		{tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenant, Change: tenantv1.ChangeDeleted}, true},
		// A tenant change that is not a deletion leaves credentials alone.
		{tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenant, Change: tenantv1.ChangeMembers}, false},
		// Malformed hints change nothing.
		{sshkeyv1.SubjectKeyChanged, "not json", false},
		{sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{KeyID: key}, false},
		{agentv1.SubjectAgentChanged, agentv1.AgentChanged{TenantID: tenant}, false},
	} {
		creds.set(true)
		checker.ForgetTenant(tenant)
		if err := checker.CheckAgent(ctx, p); err != nil {
			t.Fatal(err)
		}
		creds.set(false)
		send(c.subject, c.ev)
		err := checker.CheckAgent(ctx, p)
		if revoked := err != nil; revoked != c.evicts {
			t.Fatalf("%s %v: check after the hint = %v, want evicted %v", c.subject, c.ev, err, c.evicts)
		}
	}

	stop()
	if err := pub.Publish(sshkeyv1.SubjectKeyChanged, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-applied:
		t.Fatalf("a hint (%s) arrived after stop", s)
	default:
	}
	if _, err := Subscribe(nc, Caches{}); err == nil {
		t.Fatal("Subscribe accepted no caches")
	}
}

// nilLookups is an auth.Lookups that knows nothing (the test exercises credentials only).
type nilLookups struct{}

func (nilLookups) Membership(context.Context, string, string) (tenantv1.Membership, error) {
	return tenantv1.Membership{}, natsrpc.NotFound("no")
}
func (nilLookups) UserTenants(context.Context, string, int) (tenantv1.LookupUserTenantsResponse, error) {
	return tenantv1.LookupUserTenantsResponse{}, nil
}
func (nilLookups) APIKey(context.Context, string) (tenantv1.LookupAPIKeyResponse, error) {
	return tenantv1.LookupAPIKeyResponse{}, natsrpc.NotFound("no")
}
func (nilLookups) Tenant(context.Context, string) (tenantv1.TenantStanding, error) {
	return tenantv1.TenantStanding{}, natsrpc.NotFound("no")
}
