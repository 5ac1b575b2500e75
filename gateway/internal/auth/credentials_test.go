package auth

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// fakeCredentials is an in-memory CredentialLookup (our own interface): the set of
// (tenant, agent, key) that stand, a call counter, and an optional failure or gate.
type fakeCredentials struct {
	mu      sync.Mutex
	good    map[credentialKey]bool
	err     error
	gate    chan struct{}
	entered chan struct{}
	calls   int
}

func newFakeCredentials() *fakeCredentials {
	return &fakeCredentials{good: map[credentialKey]bool{}}
}

func (f *fakeCredentials) set(tenant, agent, key string, stands bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.good[credentialKey{tenant, agent, key}] = stands
}

func (f *fakeCredentials) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeCredentials) Credential(ctx context.Context, tenantID, agentID, keyID string) error {
	f.mu.Lock()
	f.calls++
	ok := f.good[credentialKey{tenantID, agentID, keyID}]
	gate, entered, err := f.gate, f.entered, f.err
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err != nil {
		return err
	}
	if !ok {
		return natsrpc.NotFound("credential not found")
	}
	return nil
}

func newCredentials(t *testing.T, l CredentialLookup) *Credentials {
	t.Helper()
	c, err := NewCredentials(l, CredentialsConfig{}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func agentP(tenant, agent, key string) Principal {
	return Principal{Kind: natsrpc.KindAgent, TenantID: tenant, AgentID: agent, KeyID: key}
}

const (
	agent2 = "01JBAGENT00000000000000002"
	key2   = "01JBKEY0000000000000000002"
)

func TestNewCredentialsConfig(t *testing.T) {
	if _, err := NewCredentials(nil, CredentialsConfig{}, zerolog.Nop()); err == nil {
		t.Error("accepted a nil lookup")
	}
	if _, err := NewCredentials(newFakeCredentials(), CredentialsConfig{CacheTTL: 6 * time.Second}, zerolog.Nop()); err == nil {
		t.Error("accepted a cache TTL over 5 s")
	}
}

func TestCredentialsCacheAndRevocation(t *testing.T) {
	f := newFakeCredentials()
	f.set(tenantA, agentID, keyID, true)
	f.set(tenantA, agent2, key2, true)
	c := newCredentials(t, f)
	ctx := context.Background()
	p, p2 := agentP(tenantA, agentID, keyID), agentP(tenantA, agent2, key2)

	for range 3 {
		if err := c.CheckAgent(ctx, p); err != nil {
			t.Fatalf("standing key: %v", err)
		}
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d lookups for one credential, want 1 (cached)", n)
	}

	// Revoked upstream: the cache still answers until an event says otherwise...
	f.set(tenantA, agentID, keyID, false)
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatalf("cached answer: %v", err)
	}
	// ...and KeyChanged drops it at once.
	c.ForgetKey(sshkeyv1.KeyChanged{TenantID: tenantA, KeyID: keyID, Change: sshkeyv1.ChangeRevoked})
	wantErr(t, c.CheckAgent(ctx, p), http.StatusUnauthorized, natsrpc.CodeTokenRevoked)
	// A "no" is cached too (a revoked key never comes back).
	wantErr(t, c.CheckAgent(ctx, p), http.StatusUnauthorized, natsrpc.CodeTokenRevoked)
	if n := f.count(); n != 2 {
		t.Fatalf("%d lookups, want 2", n)
	}
	// The other agent's entry was not touched by that event.
	if err := c.CheckAgent(ctx, p2); err != nil {
		t.Fatal(err)
	}
	before := f.count()
	if err := c.CheckAgent(ctx, p2); err != nil || f.count() != before {
		t.Fatalf("other credential re-asked or failed: %v", err)
	}

	// AgentChanged drops every key of the agent; a lower-case id in an event still matches.
	f.set(tenantA, agent2, key2, false)
	c.ForgetAgent(agentv1.AgentChanged{TenantID: tenantA, AgentID: "01jbagent00000000000000002", Change: agentv1.ChangeDeleted})
	wantErr(t, c.CheckAgent(ctx, p2), http.StatusUnauthorized, natsrpc.CodeTokenRevoked)

	// Tenant deletion drops the tenant's entries.
	f.set(tenantA, agentID, keyID, true) // (pretend it stood again, to see the re-ask)
	c.ForgetTenant(tenantA)
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatalf("after ForgetTenant the answer was not re-asked: %v", err)
	}
}

func TestCredentialsEventsOfOtherTenantsDoNotEvict(t *testing.T) {
	f := newFakeCredentials()
	f.set(tenantA, agentID, keyID, true)
	c := newCredentials(t, f)
	ctx := context.Background()
	p := agentP(tenantA, agentID, keyID)
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatal(err)
	}
	c.ForgetKey(sshkeyv1.KeyChanged{TenantID: tenantB, KeyID: keyID})
	c.ForgetAgent(agentv1.AgentChanged{TenantID: tenantB, AgentID: agentID})
	c.ForgetTenant(tenantB)
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d lookups: another tenant's events evicted this one", n)
	}
	// An event without a tenant clears everything.
	c.ForgetKey(sshkeyv1.KeyChanged{KeyID: keyID})
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 2 {
		t.Fatalf("%d lookups after a tenant-less event, want 2", n)
	}
}

func TestCredentialsOutagePropagates(t *testing.T) {
	f := newFakeCredentials()
	f.set(tenantA, agentID, keyID, true)
	f.err = natsrpc.Unavailable("sshkey service unavailable")
	c := newCredentials(t, f)
	ctx := context.Background()
	p := agentP(tenantA, agentID, keyID)
	wantErr(t, c.CheckAgent(ctx, p), http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	// An outage is not cached: the next call asks again and succeeds.
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	if err := c.CheckAgent(ctx, p); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	f.mu.Lock()
	f.err = natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "slow")
	f.mu.Unlock()
	c.ForgetTenant(tenantA)
	wantErr(t, c.CheckAgent(ctx, p), http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
}

func TestCredentialsSingleflight(t *testing.T) {
	f := newFakeCredentials()
	f.set(tenantA, agentID, keyID, true)
	f.gate = make(chan struct{})
	f.entered = make(chan struct{}, 100)
	c := newCredentials(t, f)
	p := agentP(tenantA, agentID, keyID)

	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.CheckAgent(context.Background(), p) }()
	}
	<-f.entered // one lookup is in flight; callers arriving now share it, later ones hit the cache
	close(f.gate)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := f.count(); got != 1 {
		t.Fatalf("%d lookups for %d concurrent checks, want 1", got, n)
	}
}

// TestCredentialsForgetDuringLookup: an answer computed before a revocation event must
// not be cached after it.
func TestCredentialsForgetDuringLookup(t *testing.T) {
	f := newFakeCredentials()
	f.set(tenantA, agentID, keyID, true)
	gate := make(chan struct{})
	f.gate, f.entered = gate, make(chan struct{}, 10)
	c := newCredentials(t, f)
	p := agentP(tenantA, agentID, keyID)

	done := make(chan error, 1)
	go func() { done <- c.CheckAgent(context.Background(), p) }()
	<-f.entered // the lookup has read "it stands" and is held
	f.set(tenantA, agentID, keyID, false)
	c.ForgetKey(sshkeyv1.KeyChanged{TenantID: tenantA, KeyID: keyID, Change: sshkeyv1.ChangeRevoked})
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("the in-flight check: %v", err)
	}
	wantErr(t, c.CheckAgent(context.Background(), p), http.StatusUnauthorized, natsrpc.CodeTokenRevoked)
}
