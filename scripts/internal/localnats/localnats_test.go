package localnats

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestHostPort(t *testing.T) {
	cases := []struct {
		in      string
		host    string
		port    int
		wantErr bool
	}{
		{"nats://127.0.0.1:4222", "127.0.0.1", 4222, false},
		{"nats://localhost:5000,nats://127.0.0.1:5001", "localhost", 5000, false},
		{"127.0.0.1:4333", "127.0.0.1", 4333, false},
		{"nats://:4444", "127.0.0.1", 4444, false},
		{"nats://127.0.0.1", "127.0.0.1", 4222, false},
		{"tls://127.0.0.1:4222", "", 0, true},
		{"nats://127.0.0.1:99999", "", 0, true},
		{"nats://127.0.0.1:x", "", 0, true},
	}
	for _, c := range cases {
		h, p, err := HostPort(c.in)
		if (err != nil) != c.wantErr || h != c.host || p != c.port {
			t.Errorf("HostPort(%q) = %q, %d, %v", c.in, h, p, err)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// JetStream data written before a shutdown is there after a restart on the same dir and
// port, and a busy port is refused with a message that names the way out.
func TestStartRestartKeepsJetStreamData(t *testing.T) {
	url := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	dir := t.TempDir()
	var log syncBuffer
	s, err := Start(Config{URL: url, StoreDir: dir, Log: &log, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "INF ") {
		t.Fatalf("no server log lines: %q", log.String())
	}

	_, err = Start(Config{URL: url, StoreDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		s.Shutdown()
		t.Fatalf("second server on a busy port: err = %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	publish := func() {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "keep.one", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	publish()
	s.Shutdown()

	s, err = Start(Config{URL: url, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if s.ClientURL() != url {
		t.Fatalf("ClientURL = %s, want %s", s.ClientURL(), url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "KEEP")
	if err != nil {
		t.Fatalf("stream gone after restart: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("after restart the stream has %d messages, want 1", info.State.Msgs)
	}
}
