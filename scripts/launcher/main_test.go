package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/scripts/internal/devauth"
)

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

func TestLoadConfigDefaults(t *testing.T) {
	cfg := loadConfig(lookup(nil))
	want := config{NATSURL: "nats://127.0.0.1:4222", DataDir: ".data", HTTPAddr: "127.0.0.1:8000",
		MetricsAddr: "127.0.0.1:9090", LogFormat: "console"}
	if cfg != want {
		t.Fatalf("defaults = %+v", cfg)
	}
	cfg = loadConfig(lookup([]string{"HTTP_ADDR=:9000", "LOG_FORMAT=json", "AUTH_JWT_SECRET=s", "NO_COLOR=1"}))
	if cfg.HTTPAddr != ":9000" || cfg.LogFormat != "json" || cfg.JWTSecret != "s" || !cfg.NoColor {
		t.Fatalf("from env = %+v", cfg)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8000": "http://127.0.0.1:8000",
		":8000":          "http://127.0.0.1:8000",
		"0.0.0.0:8001":   "http://127.0.0.1:8001",
		"[::1]:8002":     "http://[::1]:8002",
		"localhost:8003": "http://localhost:8003",
	} {
		got, err := baseURL(in)
		if err != nil || got != want {
			t.Errorf("baseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"8000", "host:", "host:abc"} {
		if _, err := baseURL(bad); err == nil {
			t.Errorf("baseURL(%q) accepted", bad)
		}
	}
}

func TestChildEnv(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "NATS_URL=old", "AUTH_JWT_SECRET=x", "STORE=dynamodb"},
		map[string]string{"NATS_URL": "new", "AUTH_JWT_SECRET": ""})
	slices.Sort(got)
	want := []string{"NATS_URL=new", "PATH=/bin", "STORE=dynamodb"}
	if !slices.Equal(got, want) {
		t.Fatalf("childEnv = %v, want %v", got, want)
	}
}

func writeScript(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func envOf(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestPlanStack(t *testing.T) {
	bin, data := t.TempDir(), t.TempDir()
	writeScript(t, bin, "gateway", "exit 0")
	writeScript(t, bin, "channel", "exit 0")
	writeScript(t, bin, "tenant", "exit 0")
	// Not executable: skipped.
	if err := os.WriteFile(filepath.Join(bin, "agent"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := loadConfig(lookup([]string{"DATA_DIR=" + data, "METRICS_ADDR=127.0.0.1:9500", "LOG_LEVEL=debug"}))
	st, err := planStack(cfg, bin, []string{"PATH=/usr/bin", "STORE=dynamodb", "AUTH_JWT_SECRET=ignored-from-environ"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range st.procs {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"tenant", "channel", "gateway"}) || !slices.Equal(st.serviceNames, []string{"tenant", "channel"}) {
		t.Fatalf("procs = %v, services = %v", names, st.serviceNames)
	}
	tenant, channel, gateway := envOf(st.procs[0].Env), envOf(st.procs[1].Env), envOf(st.procs[2].Env)
	if tenant["METRICS_ADDR"] != "127.0.0.1:9501" || channel["METRICS_ADDR"] != "127.0.0.1:9504" || gateway["METRICS_ADDR"] != "127.0.0.1:9500" {
		t.Fatalf("metrics addrs: tenant %s channel %s gateway %s", tenant["METRICS_ADDR"], channel["METRICS_ADDR"], gateway["METRICS_ADDR"])
	}
	if _, ok := tenant["AUTH_JWT_SECRET"]; ok {
		t.Fatal("a service got AUTH_JWT_SECRET")
	}
	stored, err := devauth.LoadOrCreateSecret(data)
	if err != nil {
		t.Fatal(err)
	}
	if gateway["AUTH_JWT_SECRET"] != stored || st.secret != stored {
		t.Fatal("the gateway does not get the data dir's secret")
	}
	for _, env := range []map[string]string{tenant, gateway} {
		if env["STORE"] != "dynamodb" || env["PATH"] != "/usr/bin" || env["DATA_DIR"] != data ||
			env["NATS_URL"] != "nats://127.0.0.1:4222" || env["LOG_FORMAT"] != "console" || env["LOG_LEVEL"] != "debug" ||
			env["HTTP_ADDR"] != "127.0.0.1:8000" {
			t.Fatalf("env = %v", env)
		}
	}
	// Each child authenticates to NATS as itself with a seed kept in the data dir.
	for name, env := range map[string]map[string]string{"tenant": tenant, "channel": channel, "gateway": gateway} {
		want := filepath.Join(data, "nats", "nkeys", name+".nk")
		if env["NATS_CREDS"] != want {
			t.Fatalf("%s NATS_CREDS = %q, want %q", name, env["NATS_CREDS"], want)
		}
		if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s seed: %v %v", name, fi, err)
		}
	}
	if st.procs[2].Stage <= st.procs[0].Stage {
		t.Fatal("the gateway must be stopped before the services")
	}
	if st.healthURL != "http://127.0.0.1:8000/health" {
		t.Fatalf("healthURL = %s", st.healthURL)
	}

	if _, err := planStack(cfg, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("no gateway: err = %v", err)
	}
}

func TestTokenCommand(t *testing.T) {
	data := t.TempDir()
	var out, errOut bytes.Buffer
	env := []string{"DATA_DIR=" + data}
	if code := run([]string{"token", "-role", "platform_admin", "-sub", "ops"}, env, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	secret, err := os.ReadFile(filepath.Join(data, devauth.SecretFile))
	if err != nil {
		t.Fatalf("token did not create the secret file: %v", err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"})).ParseWithClaims(strings.TrimSpace(out.String()), claims,
		func(*jwt.Token) (any, error) { return []byte(strings.TrimSpace(string(secret))), nil })
	if err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != "ops" || claims["email"] != "ops@localhost" || !slices.Contains(claims["roles"].([]any), any("platform_admin")) {
		t.Fatalf("claims = %v", claims)
	}
	if strings.Contains(out.String()+errOut.String(), strings.TrimSpace(string(secret))) {
		t.Fatal("the secret was printed")
	}

	// AUTH_JWT_SECRET wins over the file.
	out.Reset()
	envSecret := strings.Repeat("e", 40)
	if code := run([]string{"token"}, append(env, "AUTH_JWT_SECRET="+envSecret), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if _, err := jwt.Parse(strings.TrimSpace(out.String()), func(*jwt.Token) (any, error) { return []byte(envSecret), nil }); err != nil {
		t.Fatalf("token not signed with AUTH_JWT_SECRET: %v", err)
	}
}

func TestCommandLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-h"}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "AUTH_JWT_SECRET") {
		t.Fatalf("-h: exit %d, %q", code, out.String())
	}
	if code := run([]string{"bogus"}, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("bogus: exit %d, %q", code, errOut.String())
	}
	if code := run([]string{"token", "extra"}, []string{"DATA_DIR=" + t.TempDir()}, &out, &errOut); code != 1 {
		t.Fatalf("token extra: exit %d", code)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func stackEnv(t *testing.T) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "DATA_DIR=" + t.TempDir(), "NATS_URL=nats://" + freeAddr(t),
		"HTTP_ADDR=" + freeAddr(t), "METRICS_ADDR=127.0.0.1:1"}
}

// The launcher's failure policy with stand-in children (shell scripts in a bin dir): a
// child that dies stops everything and the launcher exits 1, naming it and its code.
func TestRunStopsEverythingWhenAChildDies(t *testing.T) {
	bin := t.TempDir()
	writeScript(t, bin, "tenant", `trap 'echo "tenant got TERM"; exit 0' TERM; echo up; while :; do sleep 0.05; done`)
	writeScript(t, bin, "gateway", `sleep 0.3; echo "gateway giving up" >&2; exit 7`)
	var out, errOut syncBuffer
	code := run([]string{"run", "-bin", bin, "-ready-timeout", "1m"}, stackEnv(t), &out, &errOut)
	o := out.String()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s%s", code, o, errOut.String())
	}
	for _, want := range []string{"gateway giving up", "exited with code 7", "not restarted", "tenant got TERM", "nats     | stopped"} {
		if !strings.Contains(o, want) {
			t.Fatalf("missing %q in:\n%s", want, o)
		}
	}
}

// SIGTERM to the launcher stops the children (they exit 0) and the launcher exits 0.
func TestRunStopsCleanlyOnSIGTERM(t *testing.T) {
	bin := t.TempDir()
	polite := `trap 'echo "got TERM"; exit 0' TERM; echo up; while :; do sleep 0.05; done`
	writeScript(t, bin, "tenant", polite)
	writeScript(t, bin, "gateway", polite)
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"run", "-bin", bin}, stackEnv(t), &out, &errOut) }()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(out.String(), "| up") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("children did not start:\n%s%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The launcher has registered for SIGTERM before starting children, so this reaches
	// its handler and not the test process's default action.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		o := out.String()
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, o)
		}
		gw, tn := strings.Index(o, "gateway  | got TERM"), strings.Index(o, "tenant   | got TERM")
		if gw < 0 || tn < 0 || gw > tn {
			t.Fatalf("gateway not stopped before tenant:\n%s", o)
		}
		t.Logf("launcher output:\n%s", o)
		if !strings.Contains(o, "all stopped") {
			t.Fatalf("no final line:\n%s", o)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("launcher did not stop:\n%s", out.String())
	}
}
