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

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
)

// TestStartAndStop runs the composition root against an in-process NATS: the public
// port answers, /metrics is on its own listener only, and cancelling stops it cleanly.
func TestStartAndStop(t *testing.T) {
	ns := natsrpctest.Server(t)
	httpAddr, metricsAddr := freeAddr(t), freeAddr(t)
	t.Setenv("AUTH_JWT_SECRET", strings.Repeat("k", 32))
	t.Setenv("NATS_URL", ns.ClientURL())
	t.Setenv("HTTP_ADDR", httpAddr)
	t.Setenv("METRICS_ADDR", metricsAddr)
	t.Setenv("LOG_LEVEL", "warn")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()

	var health map[string]any
	waitFor(t, func() bool {
		res, err := http.Get("http://" + httpAddr + "/health")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == 200 && json.NewDecoder(res.Body).Decode(&health) == nil
	})
	if health["nats_connected"] != true {
		t.Fatalf("health = %v", health)
	}
	if res, err := http.Get("http://" + httpAddr + "/metrics"); err != nil || res.StatusCode != 404 {
		t.Fatalf("/metrics on the public port: %v %v", res, err)
	}
	res, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `artcafe_http_requests_total{method="GET",route="/health",status="200"}`) {
		t.Fatalf("metrics lack the health request:\n%s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("start returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not stop")
	}
}

func TestRefusesShortSecret(t *testing.T) {
	t.Setenv("AUTH_JWT_SECRET", "too-short")
	err := start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AUTH_JWT_SECRET") {
		t.Fatalf("start = %v, want a refusal naming AUTH_JWT_SECRET", err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
