package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/services/kit/metrics"
)

func TestServeAndRPCObserver(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe := metrics.RPCObserver(reg, "tenant")
	observe("get", 200, 3*time.Millisecond)
	observe("get", 200, time.Millisecond)
	observe("get", 404, time.Millisecond)
	// Registering again (a second server in the process) reuses the collectors.
	metrics.RPCObserver(reg, "tenant")("create", 201, time.Millisecond)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.ServeListener(ctx, ln, reg, zerolog.Nop()) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`artcafe_rpc_requests_total{op="get",service="tenant",status="200"} 2`,
		`artcafe_rpc_requests_total{op="get",service="tenant",status="404"} 1`,
		`artcafe_rpc_requests_total{op="create",service="tenant",status="201"} 1`,
		`artcafe_rpc_request_duration_seconds_count{op="get",service="tenant"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "tenant_id") {
		t.Error("a tenant label leaked into metrics")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve after cancel: %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/metrics"); err == nil {
		t.Fatal("listener still serving after stop")
	}
}

func TestServeReportsABusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = metrics.Serve(context.Background(), ln.Addr().String(), prometheus.NewRegistry(), zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "metrics listen") {
		t.Fatalf("serve on a busy address: %v", err)
	}
}

// Observers run on many workers at once; the cached children must count every call.
func TestRPCObserverConcurrentCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	observe := metrics.RPCObserver(reg, "agent")
	ops := []string{"get", "list", "create"}
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 300 {
				observe(ops[(g+i)%len(ops)], 200+(i%2)*204, time.Millisecond)
			}
		}()
	}
	for range 8 {
		<-done
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	series := 0
	for _, f := range families {
		if f.GetName() != metrics.RequestsTotal {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
			series++
		}
	}
	if total != 8*300 || series != 6 {
		t.Fatalf("counted %v requests in %d series, want %d in 6", total, series, 8*300)
	}
}
