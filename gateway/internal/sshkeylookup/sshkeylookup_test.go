package sshkeylookup

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

func TestCredential(t *testing.T) {
	const (
		tenant = "abcdef00-0000-4000-8000-000000000001"
		agent  = "01JBAGENT00000000000000001"
		key    = "01JBKEY0000000000000000001"
	)
	ns := natsrpctest.Server(t)
	c := New(natsrpc.NewClient(natsrpctest.Connect(t, ns)))
	ctx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{RequestID: "req-1", Kind: natsrpc.KindAgent, PrincipalID: agent, TenantID: tenant})

	// Nobody serves it: 503, never "revoked".
	if err := c.Credential(ctx, tenant, agent, key); statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("no responders: %v", err)
	}

	nc := natsrpctest.Connect(t, ns)
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	svc, err := micro.AddService(nc, micro.Config{Name: sshkeyv1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	var (
		mu   sync.Mutex
		seen []natsrpc.Identity
	)
	err = svc.AddGroup(sshkeyv1.Group).AddEndpoint(sshkeyv1.OpLookupCredential, natsrpc.Handle(srv, sshkeyv1.OpLookupCredential,
		func(ctx context.Context, r *sshkeyv1.LookupCredentialRequest) (*sshkeyv1.Empty, error) {
			mu.Lock()
			seen = append(seen, natsrpc.IdentityFrom(ctx))
			mu.Unlock()
			if r.TenantID != tenant || r.AgentID != agent || r.KeyID != key {
				return nil, natsrpc.NotFound("credential not found")
			}
			return &sshkeyv1.Empty{}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := c.Credential(ctx, tenant, agent, key); err != nil {
		t.Fatalf("standing credential: %v", err)
	}
	if err := c.Credential(ctx, tenant, agent, "01JBKEY0000000000000000002"); statusOf(err) != http.StatusNotFound {
		t.Fatalf("other key: %v", err)
	}
	// Asked as the system (the tenant travels in the body), keeping the request id.
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("%d calls", len(seen))
	}
	for _, id := range seen {
		if id.Kind != natsrpc.KindSystem || id.RequestID != "req-1" || id.PrincipalID != "" || id.TenantID != "" {
			t.Fatalf("identity = %+v", id)
		}
	}
}

func statusOf(err error) int {
	if e, ok := natsrpc.AsError(err); ok {
		return e.Status
	}
	return 0
}
