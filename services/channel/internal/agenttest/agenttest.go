// Package agenttest fakes the agent service at its contract for the channel service's
// tests: a micro service on the test's NATS answering agentv1 lookups from a set of live
// agents, or 503 while "down".
package agenttest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// Fake is the fake agent service.
type Fake struct {
	mu   sync.Mutex
	live map[string]bool // tenant + "/" + agent
	// left counts the lookups an agent stays live for before it is gone (RemoveAfter).
	left    map[string]int
	lookups []natsrpc.Identity
	down    atomic.Bool
}

// Start serves agentv1 lookups on nc until the test ends.
func Start(t testing.TB, nc *nats.Conn) *Fake {
	t.Helper()
	f := &Fake{live: map[string]bool{}, left: map[string]int{}}
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: agentv1.Service, Description: "fake", ContractVersion: agentv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	err = natsx.AddEndpoints(ms, agentv1.Group, natsx.Handle(srv, agentv1.OpLookup, func(ctx context.Context, req *agentv1.LookupRequest) (*agentv1.LookupResponse, error) {
		f.mu.Lock()
		f.lookups = append(f.lookups, natsrpc.IdentityFrom(ctx))
		k := req.TenantID + "/" + req.AgentID
		ok := f.live[k]
		if n, counted := f.left[k]; counted && ok {
			if n == 0 {
				delete(f.live, k)
				ok = false
			}
			f.left[k] = n - 1
		}
		f.mu.Unlock()
		if f.down.Load() {
			return nil, natsrpc.Unavailable("agent store down")
		}
		if !ok {
			return nil, natsrpc.NotFound("agent not found")
		}
		return &agentv1.LookupResponse{AgentID: req.AgentID, Status: agentv1.StatusOffline}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// Add makes agentID a live agent of tenantID.
func (f *Fake) Add(tenantID, agentID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[tenantID+"/"+agentID] = true
}

// RemoveAfter lets agentID of tenantID answer n more lookups as live, then be gone (an
// agent deleted between two lookups of one request).
func (f *Fake) RemoveAfter(tenantID, agentID string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[tenantID+"/"+agentID] = n
}

// SetDown makes every lookup answer 503 (true) or normally again (false).
func (f *Fake) SetDown(down bool) { f.down.Store(down) }

// Lookups returns the identities the lookups so far carried.
func (f *Fake) Lookups() []natsrpc.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]natsrpc.Identity(nil), f.lookups...)
}
