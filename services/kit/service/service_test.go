package service_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/service"
	"github.com/artcafe-ai/pubsub/services/kit/service/servicetest"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// demo is the smallest service: one endpoint that writes to its table (so a reply says
// the store was open), and a purge that reports the tenants it was called for.
type demo struct {
	entered chan struct{} // a blocking put has started
	release chan struct{} // lets it finish
	purged  chan string
}

func newDemo() *demo {
	return &demo{entered: make(chan struct{}, 1), release: make(chan struct{}), purged: make(chan string, 8)}
}

type putRequest struct {
	Key   string `json:"key"`
	Block bool   `json:"block,omitempty"`
}

type putResponse struct {
	Version int64 `json:"version"`
}

func (d *demo) spec() service.Spec {
	return service.Spec{
		Name:            "demo",
		Description:     "a demo service",
		ContractVersion: "1.2.3",
		Table:           "demo",
		Setup: func(deps service.Deps) (cascade.Purger, error) {
			put := func(ctx context.Context, req *putRequest) (*putResponse, error) {
				if req.Block {
					d.entered <- struct{}{}
					<-d.release
				}
				v, err := deps.Table.Put(ctx, store.Item{Key: store.Key{PK: "p", SK: req.Key}}, store.IfAbsent())
				if err != nil {
					return nil, err
				}
				return &putResponse{Version: v}, nil
			}
			purge := func(_ context.Context, tenantID string) error {
				d.purged <- tenantID
				return nil
			}
			return purge, natsx.AddEndpoints(deps.Micro, "svc.demo.v1", natsx.Handle(deps.Server, "put", put))
		},
	}
}

func put(t *testing.T, in *servicetest.Instance, req putRequest) (putResponse, error) {
	t.Helper()
	var out putResponse
	err := in.Client.Call(context.Background(), "svc.demo.v1.put", req, &out)
	return out, err
}

// The runner serves the endpoints with RPC metrics, announces the service for
// discovery, runs the cascade with the spec's purge, and a second process on the same
// embedded store fails fast with a message that says why.
func TestServe(t *testing.T) {
	d := newDemo()
	in := servicetest.Start(t, d.spec())

	if out, err := put(t, in, putRequest{Key: "a"}); err != nil || out.Version != 1 {
		t.Fatalf("put: %+v, %v", out, err)
	}

	// The observer runs just after the reply is sent: poll.
	want := `artcafe_rpc_requests_total{op="put",service="demo",status="200"} 1`
	deadline := time.Now().Add(10 * time.Second)
	for body := ""; !strings.Contains(body, want); {
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
		resp, err := http.Get("http://" + in.Config.MetricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		body = string(b)
		time.Sleep(20 * time.Millisecond)
	}

	info := in.Info(t)
	md := info.Metadata
	if info.Name != "demo" || info.Version != buildinfo.Version || info.Description != "a demo service" ||
		md["contract_version"] != "1.2.3" || md["git_sha"] != buildinfo.GitSHA || md["go_version"] == "" {
		t.Fatalf("service info %+v", info)
	}
	in.WantEndpoints(t, "svc.demo.v1", "put")

	tenantID := "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	in.DeleteTenant(t, tenantID)
	select {
	case got := <-d.purged:
		if got != tenantID {
			t.Fatalf("purged %q, want %q", got, tenantID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cascade did not call the purge")
	}
	in.Settled(t)

	second := in.Config
	second.MetricsAddr = servicetest.FreeAddr(t)
	errc := make(chan error, 1)
	go func() { errc <- service.Serve(context.Background(), d.spec(), second, zerolog.Nop()) }()
	select {
	case err := <-errc:
		if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "cannot open the store") ||
			!strings.Contains(err.Error(), "already in use") {
			t.Fatalf("second instance: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a second instance on the same store did not give up")
	}

	in.Stop()
}

// On stop the micro service stops taking requests first, the request in flight is
// still answered (with the store open), and only then does the store close.
func TestStopAnswersRequestsInFlight(t *testing.T) {
	d := newDemo()
	in := servicetest.Start(t, d.spec())

	replies := make(chan error, 1)
	go func() {
		out, err := put(t, in, putRequest{Key: "slow", Block: true})
		if err == nil && out.Version != 1 {
			err = errors.New("unexpected version")
		}
		replies <- err
	}()
	<-d.entered
	stopped := make(chan struct{})
	go func() {
		in.Stop()
		close(stopped)
	}()

	// The micro service is gone while the request is still being handled.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := in.Conn.Request("$SRV.INFO.demo", nil, time.Second)
		if errors.Is(err, nats.ErrNoResponders) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the micro service still answers during the stop: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-stopped:
		t.Fatal("the service stopped with a request in flight")
	default:
	}

	close(d.release)
	if err := <-replies; err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	<-stopped
	if _, err := in.Table.Get(context.Background(), store.Key{PK: "p", SK: "slow"}); err == nil {
		t.Fatal("the store is still open after the stop")
	}
}

func serveConfig(t *testing.T, ns *server.Server) config.Service {
	t.Helper()
	var cfg config.Service
	cfg.NATS.URL = ns.ClientURL()
	cfg.Store.DataDir = t.TempDir()
	cfg.MetricsAddr = servicetest.FreeAddr(t)
	return cfg
}

// A spec that cannot be set up stops the service with the reason.
func TestSetupFailures(t *testing.T) {
	ns := natsrpctest.Server(t)
	boom := errors.New("boom")
	for name, setup := range map[string]func(service.Deps) (cascade.Purger, error){
		"error":    func(service.Deps) (cascade.Purger, error) { return nil, boom },
		"no purge": func(service.Deps) (cascade.Purger, error) { return nil, nil },
		"no setup": nil,
	} {
		t.Run(name, func(t *testing.T) {
			spec := newDemo().spec()
			spec.Setup = setup
			err := service.Serve(context.Background(), spec, serveConfig(t, ns), zerolog.Nop())
			if err == nil || name == "error" && !errors.Is(err, boom) {
				t.Fatalf("Serve: %v", err)
			}
		})
	}
}

// syncBuffer is a log destination tests can read while the service writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A service started before NATS waits for it (the connection retries in the
// background) and then starts normally.
func TestStartBeforeNATS(t *testing.T) {
	addr := servicetest.FreeAddr(t)
	var cfg config.Service
	cfg.NATS.URL = "nats://" + addr
	cfg.Store.DataDir = t.TempDir()
	cfg.MetricsAddr = servicetest.FreeAddr(t)

	d := newDemo()
	spec := d.spec()
	setup := spec.Setup
	started := make(chan struct{})
	spec.Setup = func(deps service.Deps) (cascade.Purger, error) {
		defer close(started)
		return setup(deps)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Serve(ctx, spec, cfg, zerolog.New(logs)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "waiting for NATS JetStream"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the service did not wait for NATS:\n%s", logs)
		}
	}
	_, p, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	select {
	case <-started:
	case err := <-done:
		done <- err
		t.Fatalf("Serve: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the service did not start once NATS was up")
	}
}

// Work added with Deps.Go runs beside the endpoints and stops with the service while the
// store is still open; a task that fails stops the service with its error.
func TestBackgroundWork(t *testing.T) {
	ns := natsrpctest.Server(t)
	t.Run("stops with the service", func(t *testing.T) {
		spec := newDemo().spec()
		setup := spec.Setup
		started, stopped := make(chan struct{}), make(chan error, 1)
		spec.Setup = func(deps service.Deps) (cascade.Purger, error) {
			deps.Go("watcher", func(ctx context.Context) error {
				close(started)
				<-ctx.Done()
				// The store is still open when the work is told to stop.
				_, err := deps.Table.Put(context.Background(), store.Item{Key: store.Key{PK: "p", SK: "bg"}}, store.IfAbsent())
				stopped <- err
				return ctx.Err()
			})
			return setup(deps)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- service.Serve(ctx, spec, serveConfig(t, ns), zerolog.Nop()) }()
		select {
		case <-started:
		case err := <-done:
			t.Fatalf("Serve: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("the work did not start")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve after a stop: %v", err)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("the store was closed before the work stopped: %v", err)
		}
	})
	t.Run("a failure stops the service", func(t *testing.T) {
		spec := newDemo().spec()
		setup := spec.Setup
		boom := errors.New("boom")
		spec.Setup = func(deps service.Deps) (cascade.Purger, error) {
			deps.Go("watcher", func(context.Context) error { return boom })
			return setup(deps)
		}
		done := make(chan error, 1)
		go func() { done <- service.Serve(context.Background(), spec, serveConfig(t, ns), zerolog.Nop()) }()
		select {
		case err := <-done:
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "watcher") {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a failing task did not stop the service")
		}
	})
}
