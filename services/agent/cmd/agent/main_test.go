package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/kit/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The composition root serves requests, exposes metrics, and stops cleanly; a second
// instance on the same embedded store refuses to start instead of hanging.
func TestServeLifecycle(t *testing.T) {
	ns := natsrpctest.Server(t)
	var cfg Config
	cfg.NATS.URL = ns.ClientURL()
	cfg.Store.Backend = "embedded"
	cfg.Store.DataDir = t.TempDir()
	cfg.MetricsAddr = freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, zerolog.Nop()) }()

	client := natsrpc.NewClient(natsrpctest.Connect(t, ns))
	user := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{
		TenantID: "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20", Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleMember, Plan: plans.Free,
	})
	var out agentv1.CreateResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := client.Call(user, agentv1.Subject(agentv1.OpCreate), agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "A"}}, &out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The observer runs just after the reply is sent: poll.
	want := `artcafe_rpc_requests_total{op="create",service="agent",status="200"} 1`
	for body := ""; !strings.Contains(body, want); {
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
		resp, err := http.Get("http://" + cfg.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		body = string(b)
		time.Sleep(20 * time.Millisecond)
	}

	// A second instance on the same file fails fast with an error naming the problem.
	second := cfg
	second.MetricsAddr = freeAddr(t)
	errc := make(chan error, 1)
	go func() { errc <- serve(context.Background(), second, zerolog.Nop()) }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "store") {
			t.Fatalf("second instance: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second instance on the same store did not give up")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("METRICS_ADDR", "")
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Backend != "embedded" || cfg.NATS.URL == "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}
