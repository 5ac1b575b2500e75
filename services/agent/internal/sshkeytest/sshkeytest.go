// Package sshkeytest is a stand-in for the sshkey service at its contract (sshkeyv1)
// for the agent service's tests: a real micro service on the test's NATS server that
// serves check_public_key, create_for_agent and delete_for_agent, remembers the keys
// and the calls, and can be told to fail each operation with a given wire error.
package sshkeytest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// Call is one request the fake answered.
type Call struct {
	Op        string
	Identity  natsrpc.Identity
	AgentID   string
	PublicKey string
}

// Fake is the stand-in service.
type Fake struct {
	mu    sync.Mutex
	keys  map[string]sshkeyv1.Key // by key id
	calls []Call
	fail  map[string]*natsrpc.Error
	// before runs at the start of an operation's handler (outside the lock).
	before map[string]func(Call)
	seq    int
}

// Start serves the fake on nc until the test ends.
func Start(t testing.TB, nc *nats.Conn) *Fake {
	t.Helper()
	f := &Fake{keys: map[string]sshkeyv1.Key{}, fail: map[string]*natsrpc.Error{}, before: map[string]func(Call){}}
	ms, err := micro.AddService(nc, micro.Config{Name: sshkeyv1.Service, Version: "0.0.1", Description: "sshkey fake"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	g := ms.AddGroup(sshkeyv1.Group)
	for op, h := range map[string]micro.Handler{
		sshkeyv1.OpCheckPublicKey: natsrpc.Handle(srv, sshkeyv1.OpCheckPublicKey, f.check),
		sshkeyv1.OpCreateForAgent: natsrpc.Handle(srv, sshkeyv1.OpCreateForAgent, f.createForAgent),
		sshkeyv1.OpDeleteForAgent: natsrpc.Handle(srv, sshkeyv1.OpDeleteForAgent, f.deleteForAgent),
	} {
		if err := g.AddEndpoint(op, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// Fail makes op answer e from now on (nil: succeed again).
func (f *Fake) Fail(op string, e *natsrpc.Error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[op] = e
}

// Before runs fn at the start of every op request (nil removes it).
func (f *Fake) Before(op string, fn func(Call)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before[op] = fn
}

// Calls returns the calls of op so far.
func (f *Fake) Calls(op string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// KeysOf returns the keys bound to an agent of a tenant.
func (f *Fake) KeysOf(tenantID, agentID string) []sshkeyv1.Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sshkeyv1.Key
	for _, k := range f.keys {
		if k.TenantID == tenantID && k.AgentID != nil && *k.AgentID == agentID {
			out = append(out, k)
		}
	}
	return out
}

// Fingerprint is the fake's fingerprint of a key line.
func Fingerprint(publicKey string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(publicKey)))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// begin records a call and returns the configured failure of op, if any.
func (f *Fake) begin(ctx context.Context, c Call) *natsrpc.Error {
	c.Identity = natsrpc.IdentityFrom(ctx)
	f.mu.Lock()
	fn := f.before[c.Op]
	f.mu.Unlock()
	if fn != nil {
		fn(c)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.fail[c.Op]
}

// checkLocked applies the rules the real service applies that the tests rely on: a
// pasted private key is rejected, a fingerprint is unique per tenant.
func (f *Fake) checkLocked(tenantID, publicKey string) error {
	if strings.Contains(publicKey, "PRIVATE KEY") {
		return natsrpc.NewError(422, natsrpc.CodePrivateKeyRejected, "a private key was pasted")
	}
	fp := Fingerprint(publicKey)
	for _, k := range f.keys {
		if k.TenantID == tenantID && k.Fingerprint == fp {
			return natsrpc.Conflict("this key is already registered in the tenant")
		}
	}
	return nil
}

func (f *Fake) check(ctx context.Context, req *sshkeyv1.CheckPublicKeyRequest) (*sshkeyv1.CheckedPublicKey, error) {
	if e := f.begin(ctx, Call{Op: sshkeyv1.OpCheckPublicKey, PublicKey: req.PublicKey}); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(natsrpc.IdentityFrom(ctx).TenantID, req.PublicKey); err != nil {
		return nil, err
	}
	return &sshkeyv1.CheckedPublicKey{Algorithm: "ssh-ed25519", Fingerprint: Fingerprint(req.PublicKey)}, nil
}

func (f *Fake) createForAgent(ctx context.Context, req *sshkeyv1.CreateForAgentRequest) (*sshkeyv1.KeyResponse, error) {
	if e := f.begin(ctx, Call{Op: sshkeyv1.OpCreateForAgent, AgentID: req.AgentID, PublicKey: req.Key.PublicKey}); e != nil {
		return nil, e
	}
	id := natsrpc.IdentityFrom(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkLocked(id.TenantID, req.Key.PublicKey); err != nil {
		return nil, err
	}
	f.seq++
	keyID := fmt.Sprintf("01KEY%021d", f.seq)
	agentID := req.AgentID
	now := time.Now().UTC()
	k := sshkeyv1.Key{
		ID: keyID, KeyID: keyID, TenantID: id.TenantID, Name: req.Key.Name, PublicKey: req.Key.PublicKey,
		KeyType: req.Key.KeyType, AgentID: &agentID, Fingerprint: Fingerprint(req.Key.PublicKey),
		Algorithm: "ssh-ed25519", Status: sshkeyv1.StatusActive, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now,
	}
	f.keys[keyID] = k
	return &sshkeyv1.KeyResponse{Key: k}, nil
}

func (f *Fake) deleteForAgent(ctx context.Context, req *sshkeyv1.DeleteForAgentRequest) (*sshkeyv1.Empty, error) {
	if e := f.begin(ctx, Call{Op: sshkeyv1.OpDeleteForAgent, AgentID: req.AgentID}); e != nil {
		return nil, e
	}
	tenantID := natsrpc.IdentityFrom(ctx).TenantID
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, k := range f.keys {
		if k.TenantID == tenantID && k.AgentID != nil && *k.AgentID == req.AgentID {
			delete(f.keys, id)
		}
	}
	return &sshkeyv1.Empty{}, nil
}
