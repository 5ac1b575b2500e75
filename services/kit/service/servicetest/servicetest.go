// Package servicetest runs a service.Spec inside a test the way its binary runs it
// (service.Serve: the same store, NATS, micro service, metrics and cascade), on an
// in-process NATS server and an embedded store in a temporary directory, and gives the
// test what it needs to talk to the running service.
package servicetest

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/cascade/cascadetest"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/service"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Instance is a service running in the test.
type Instance struct {
	Spec   service.Spec
	Config config.Service  // what it runs with; METRICS_ADDR is a free local port
	Server *server.Server  // the in-process NATS server it is connected to
	Conn   *nats.Conn      // the test's own connection to Server
	Client *natsrpc.Client // on Conn
	// Table is the service's table (service.Deps.Table), open until Stop.
	Table store.Table

	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs spec on a new in-process NATS server and returns once spec.Setup has
// registered its endpoints (they answer from then on). The service stops when the
// test ends, or at Stop.
func Start(t *testing.T, spec service.Spec) *Instance {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	var cfg config.Service
	cfg.NATS.URL = ns.ClientURL()
	cfg.Store.Backend = store.BackendEmbedded
	cfg.Store.DataDir = t.TempDir()
	cfg.MetricsAddr = FreeAddr(t)

	in := &Instance{Spec: spec, Config: cfg, Server: ns, Conn: nc, Client: natsrpc.NewClient(nc), t: t, done: make(chan error, 1)}
	ready := make(chan store.Table, 1)
	setup := spec.Setup
	run := spec
	if setup == nil {
		t.Fatalf("%s service: the spec has no Setup", spec.Name)
	}
	run.Setup = func(d service.Deps) (cascade.Purger, error) {
		purge, err := setup(d)
		if err != nil {
			return nil, err
		}
		// The endpoints' subscriptions reach the server before the test calls them.
		if err := d.NATS.Flush(); err != nil {
			return nil, err
		}
		ready <- d.Table
		return purge, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	go func() { in.done <- service.Serve(ctx, run, cfg, zerolog.New(zerolog.NewTestWriter(t))) }()
	t.Cleanup(in.Stop)

	select {
	case in.Table = <-ready:
	case err := <-in.done:
		in.done <- err // for Stop
		t.Fatalf("%s service did not start: %v", spec.Name, err)
	case <-time.After(time.Minute):
		t.Fatalf("%s service did not start", spec.Name)
	}
	return in
}

// Stop stops the service (as SIGTERM does) and waits for it; the test fails unless it
// stops cleanly. Stopping twice is stopping once.
func (in *Instance) Stop() {
	in.t.Helper()
	in.once.Do(func() {
		in.cancel()
		select {
		case err := <-in.done:
			if err != nil {
				in.t.Errorf("%s service: %v", in.Spec.Name, err)
			}
		case <-time.After(time.Minute):
			in.t.Errorf("%s service did not stop", in.Spec.Name)
		}
	})
}

// Info is the micro service's discovery answer ($SRV.INFO.<name>).
func (in *Instance) Info(t *testing.T) micro.Info {
	t.Helper()
	msg, err := in.Conn.Request("$SRV.INFO."+in.Spec.Name, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO.%s: %v", in.Spec.Name, err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// JetStream is JetStream on the test's connection (to publish platform events).
func (in *Instance) JetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(in.Conn)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Settled waits until the service's cascade consumer has handled every tenant deletion
// on the platform stream (cascadetest.Settled).
func (in *Instance) Settled(t *testing.T) {
	t.Helper()
	cascadetest.Settled(t, in.JetStream(t), in.Spec.Name)
}

// WantEndpoints fails the test unless discovery shows the service as its Spec says
// (name, description, build version, contract version) with exactly the endpoints ops,
// each on group.op.
func (in *Instance) WantEndpoints(t *testing.T, group string, ops ...string) {
	t.Helper()
	info := in.Info(t)
	md := info.Metadata
	if info.Name != in.Spec.Name || info.Description != in.Spec.Description || info.Version != buildinfo.Version ||
		md["contract_version"] != in.Spec.ContractVersion || md["git_sha"] != buildinfo.GitSHA {
		t.Errorf("service info %+v", info.ServiceIdentity)
	}
	got := map[string]string{}
	for _, e := range info.Endpoints {
		got[e.Name] = e.Subject
	}
	for _, op := range ops {
		if got[op] != group+"."+op {
			t.Errorf("endpoint %s: subject %q, want %q", op, got[op], group+"."+op)
		}
	}
	if len(got) != len(ops) {
		t.Errorf("%d endpoints %v, want %d", len(got), got, len(ops))
	}
}

// DeleteTenant publishes tenantID's deletion as the tenant service does
// (cascadetest.DeleteTenant).
func (in *Instance) DeleteTenant(t *testing.T, tenantID string) {
	t.Helper()
	cascadetest.DeleteTenant(t, in.JetStream(t), tenantID)
}

// FreeAddr is a local TCP address free a moment ago.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
