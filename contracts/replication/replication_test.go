package replication_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/replication"
)

// cluster starts three in-process servers with JetStream routed to each other and
// returns a JetStream client of the first once a meta leader is elected.
func cluster(t *testing.T) jetstream.JetStream {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
	}
	var routes []*server.Options
	var servers []*server.Server
	for i := range ports {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]},
		}
		for _, p := range ports {
			o.Routes = append(o.Routes, server.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
		}
		routes = append(routes, o)
	}
	for _, o := range routes {
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
	}
	nc, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return js
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReplicas(t *testing.T) {
	if replication.Replicas(0) != 1 || replication.Replicas(-2) != 1 || replication.Replicas(3) != 3 {
		t.Fatal("Replicas does not default to 1")
	}
}

// A stream or bucket is raised to the configured replicas, and never lowered by a
// component configured with fewer.
func TestNeverDowngrades(t *testing.T) {
	js := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}
	s, err := replication.Stream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 1 {
		t.Fatalf("created at %d replicas, want 1", r)
	}
	cfg.Replicas = 3
	if s, err = replication.Stream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("raised to %d replicas, want 3", r)
	}
	cfg.Replicas = 1
	cfg.Description = "updated"
	if s, err = replication.Stream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; c.Replicas != 3 || c.Description != "updated" {
		t.Fatalf("after an update at 1: replicas %d description %q, want 3 and the update", c.Replicas, c.Description)
	}

	kcfg := jetstream.KeyValueConfig{Bucket: "B", History: 1, Storage: jetstream.MemoryStorage, Replicas: 3}
	if _, err := replication.KeyValue(ctx, js, kcfg); err != nil {
		t.Fatal(err)
	}
	kcfg.Replicas = 0
	kv, err := replication.KeyValue(ctx, js, kcfg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Fatalf("bucket at %d replicas after an ensure at 1, want 3", r)
	}
}
