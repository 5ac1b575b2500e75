package natsx_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// logBuffer collects log output written from NATS callback goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts a nats-server with JetStream on a fixed port and store directory,
// the way a restarted node comes back.
func startServer(t *testing.T, port int, storeDir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: storeDir,
	})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

func connect(t *testing.T, url, name string, logs *logBuffer) *nats.Conn {
	t.Helper()
	nc, err := natsx.Connect(config.NATS{URL: url}, name, zerolog.New(logs))
	if err != nil {
		t.Fatalf("natsx.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// eventually polls cond until it holds, failing after a generous bound (never a
// measure of speed).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// respond serves "echo" on nc: the reply is the request body prefixed with "re:".
func respond(t *testing.T, nc *nats.Conn) {
	t.Helper()
	if _, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("re:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
}

func request(nc *nats.Conn, body string) error {
	reply, err := nc.Request("echo", []byte(body), 10*time.Second)
	if err != nil {
		return err
	}
	if got := string(reply.Data); got != "re:"+body {
		return fmt.Errorf("reply %q", got)
	}
	return nil
}

// The server goes away and comes back on the same address with the same store: both
// sides reconnect on their own, the subscription is restored, and requests work again.
func TestReconnectAfterServerRestart(t *testing.T) {
	ns := natsrpctest.Server(t)
	port := ns.Addr().(*net.TCPAddr).Port
	storeDir := ns.StoreDir()
	url := ns.ClientURL()

	logs := &logBuffer{}
	caller := connect(t, url, "caller", logs)
	responder := connect(t, url, "responder", &logBuffer{})
	respond(t, responder)
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := request(caller, "before"); err != nil {
		t.Fatalf("request before the restart: %v", err)
	}

	ns.Shutdown()
	eventually(t, "the clients to notice the outage", func() bool {
		return !caller.IsConnected() && !responder.IsConnected()
	})
	if caller.IsClosed() || responder.IsClosed() {
		t.Fatal("a connection gave up instead of reconnecting")
	}

	startServer(t, port, storeDir)
	eventually(t, "both clients to reconnect", func() bool {
		return caller.IsConnected() && responder.IsConnected()
	})
	// The responder's subscription is re-sent on reconnect; a round trip makes sure the
	// server has it before we call.
	if err := responder.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := request(caller, "after"); err != nil {
		t.Fatalf("request after the restart: %v", err)
	}
	if n := caller.Stats().Reconnects; n < 1 {
		t.Errorf("reconnects = %d", n)
	}
	for _, want := range []string{"nats disconnected", "nats reconnected"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A binary may start before NATS: Connect succeeds and the connection comes up once
// the server does.
func TestConnectBeforeServerStarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &logBuffer{}
	nc := connect(t, fmt.Sprintf("nats://127.0.0.1:%d", port), "early", logs)
	if nc.IsConnected() {
		t.Fatal("connected with no server running")
	}
	// Subscribing before the server is up is buffered and sent on connect.
	respond(t, nc)

	startServer(t, port, t.TempDir())
	eventually(t, "the first connection", nc.IsConnected)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := request(nc, "hello"); err != nil {
		t.Fatalf("request: %v", err)
	}
	if !strings.Contains(logs.String(), "nats connected") {
		t.Errorf("log lacks the connect event:\n%s", logs.String())
	}
}

// Drain lets messages already received finish, then closes the connection.
func TestDrainFinishesPendingMessages(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := connect(t, ns.ClientURL(), "drained", &logBuffer{})
	var handled atomic.Int32
	if _, err := nc.Subscribe("work", func(*nats.Msg) {
		time.Sleep(time.Millisecond)
		handled.Add(1)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := natsrpctest.Connect(t, ns)
	const n = 50
	for i := range n {
		if err := pub.Publish("work", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// Once the publisher's flush returns, the server has routed every message to nc
	// ahead of anything it answers to nc's drain.
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}

	natsx.Drain(nc, 30*time.Second)
	if !nc.IsClosed() {
		t.Error("connection not closed after Drain")
	}
	if got := handled.Load(); got != n {
		t.Errorf("%d of %d pending messages handled before the connection closed", got, n)
	}
}

// A handler that never finishes cannot hold the process: Drain gives up after its
// timeout and closes the connection anyway.
func TestDrainTimeout(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := connect(t, ns.ClientURL(), "stuck", &logBuffer{})
	started := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	if _, err := nc.Subscribe("stuck", func(*nats.Msg) {
		close(started)
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("stuck", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler did not start")
	}

	done := make(chan struct{})
	go func() { natsx.Drain(nc, 100*time.Millisecond); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after its timeout")
	}
	if !nc.IsClosed() {
		t.Error("connection not closed after the drain timed out")
	}
}

// Drain of a connection that is already closed returns at once.
func TestDrainClosed(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := connect(t, ns.ClientURL(), "closed", &logBuffer{})
	nc.Close()
	done := make(chan struct{})
	go func() { natsx.Drain(nc, time.Minute); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain of a closed connection blocked")
	}
}

// AddService makes the service discoverable with its build's version and metadata.
func TestAddServiceDiscovery(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := connect(t, ns.ClientURL(), "svc", &logBuffer{})
	svc, err := natsx.AddService(nc, natsx.ServiceInfo{Name: "tenant", Description: "tenants", ContractVersion: "1.0.0"})
	if err != nil {
		t.Fatalf("AddService: %v", err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	// The $SRV subscriptions must reach the server before another connection asks.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	ops := natsrpctest.Connect(t, ns)
	reply, err := ops.Request("$SRV.INFO.tenant", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "tenant" || info.Version != buildinfo.Version || info.Description != "tenants" {
		t.Errorf("info = %+v", info)
	}
	for _, k := range []string{"git_sha", "contract_version", "go_version"} {
		if info.Metadata[k] == "" {
			t.Errorf("metadata lacks %s: %v", k, info.Metadata)
		}
	}
	if info.Metadata["contract_version"] != "1.0.0" {
		t.Errorf("contract_version = %q", info.Metadata["contract_version"])
	}
}
