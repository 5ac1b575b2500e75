package natsrpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
)

// testGroup is where every test endpoint lives, as a real service would group its ops.
const testGroup = "svc.test.v1"

func subject(op string) string { return testGroup + "." + op }

// logBuffer collects log lines written from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns every JSON log line decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// rig is one nats-server with a service connection and a separate caller connection, as
// in production where the gateway and a service never share a connection.
type rig struct {
	ns     *server.Server
	svcNC  *nats.Conn
	callNC *nats.Conn
	client *natsrpc.Client
	logs   *logBuffer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := natsrpctest.Server(t)
	r := &rig{
		ns:     ns,
		svcNC:  natsrpctest.Connect(t, ns),
		callNC: natsrpctest.Connect(t, ns),
		logs:   &logBuffer{},
	}
	r.client = natsrpc.NewClient(r.callNC)
	return r
}

// server returns a natsrpc.Server on the service connection, logging JSON into r.logs.
func (r *rig) server(opts ...natsrpc.ServerOption) *natsrpc.Server {
	return natsrpc.NewServer(r.svcNC, zerolog.New(r.logs), opts...)
}

// service registers handlers (op → handler) under testGroup on a real micro service and
// stops it when the test ends.
func (r *rig) service(t *testing.T, handlers map[string]micro.Handler) micro.Service {
	t.Helper()
	svc, err := micro.AddService(r.svcNC, micro.Config{
		Name:        "test",
		Version:     "1.2.3",
		Description: "natsrpc test service",
		Metadata:    map[string]string{"git_sha": "abc123", "contract_version": "1.0.0"},
	})
	if err != nil {
		t.Fatalf("micro.AddService: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	g := svc.AddGroup(testGroup)
	for op, h := range handlers {
		if err := g.AddEndpoint(op, h); err != nil {
			t.Fatalf("AddEndpoint %s: %v", op, err)
		}
	}
	// The endpoints' subscriptions must reach the server before the first call.
	if err := r.svcNC.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	return svc
}

// wantError asserts err is a *natsrpc.Error with status and code, and returns it.
func wantError(t *testing.T, err error, status int, code string) *natsrpc.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want %d %s, got success", status, code)
	}
	var e *natsrpc.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *natsrpc.Error, got %T: %v", err, err)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("want %d %s, got %d %s (%q)", status, code, e.Status, e.Code, e.Detail)
	}
	return e
}

// ctxTimeout is a generous deadline for calls that are expected to be answered; it only
// bounds a broken test, never measures speed.
func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// receive waits for a value on ch, failing the test if none comes within a generous bound.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
