// Package channeltest is a stand-in for the channel service at its contract (channelv1)
// for the agent service's tests: a micro service on the test's NATS answering
// agent_removed, remembering each call, or failing on demand.
package channeltest

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// Call is one agent_removed request as the fake received it.
type Call struct {
	AgentID  string
	Identity natsrpc.Identity
}

// Fake is the fake channel service.
type Fake struct {
	mu     sync.Mutex
	calls  []Call
	fail   *natsrpc.Error
	before func(Call)
}

// Start serves agent_removed on nc until the test ends.
func Start(t testing.TB, nc *nats.Conn) *Fake {
	t.Helper()
	f := &Fake{}
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: channelv1.Service, Description: "fake", ContractVersion: channelv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	err = natsx.AddEndpoints(ms, channelv1.Group, natsx.Handle(srv, channelv1.OpAgentRemoved,
		func(ctx context.Context, req *channelv1.AgentRemovedRequest) (*channelv1.Empty, error) {
			c := Call{AgentID: req.AgentID, Identity: natsrpc.IdentityFrom(ctx)}
			f.mu.Lock()
			before, fail := f.before, f.fail
			f.mu.Unlock()
			if before != nil {
				before(c)
			}
			if fail != nil {
				return nil, fail
			}
			f.mu.Lock()
			f.calls = append(f.calls, c)
			f.mu.Unlock()
			return &channelv1.Empty{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// Fail makes agent_removed answer e (nil: succeed again).
func (f *Fake) Fail(e *natsrpc.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = e
}

// Before runs fn at the start of every agent_removed request (nil: none).
func (f *Fake) Before(fn func(Call)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = fn
}

// Calls returns the agent_removed requests that succeeded so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}
