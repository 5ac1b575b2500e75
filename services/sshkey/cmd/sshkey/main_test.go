package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
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

	nc := natsrpctest.Connect(t, ns)
	client := natsrpc.NewClient(nc)
	caller := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{ClientIP: "192.0.2.1"})
	req := sshkeyv1.ChallengeRequest{Login: sshkeyv1.ChallengeBody{TenantID: "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3", KeyID: "01J00000000000000000000000"}}
	var out sshkeyv1.Challenge
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := client.Call(caller, sshkeyv1.Subject(sshkeyv1.OpChallenge), req, &out)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(out.Challenge) != sshkeyv1.ChallengeHexLen {
		t.Fatalf("challenge %+v", out)
	}

	// Discovery: name, version, contract version and every endpoint.
	msg, err := nc.Request("$SRV.INFO.sshkey", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != sshkeyv1.Service || info.Version == "" || info.Metadata["contract_version"] != sshkeyv1.Version || len(info.Endpoints) != 11 {
		t.Fatalf("service info %+v", info)
	}

	// The observer runs just after the reply is sent: poll.
	want := `artcafe_rpc_requests_total{op="challenge",service="sshkey",status="200"} 1`
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
