// Command launcher runs the local ArtCafe PubSub stack (`make run`): an embedded NATS
// server with JetStream, every service binary that was built, and the gateway, as
// separate processes with labelled output. It also prints user tokens (`make token`).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/artcafe-ai/pubsub/scripts/internal/devauth"
	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
	"github.com/artcafe-ai/pubsub/scripts/internal/localnats"
)

// serviceNames lists the service binaries the launcher starts when they exist, in start
// order. It is the one place to add a service; metrics ports follow this order.
func serviceNames() []string {
	return []string{"tenant", "agent", "sshkey", "channel", "usage"}
}

const usage = `launcher runs the local ArtCafe PubSub stack.

Usage:
  launcher run   [-bin DIR] [-stop-timeout 10s] [-ready-timeout 60s]
      Start embedded NATS (JetStream, data in $DATA_DIR/nats; each component authenticates
      with its own NKey, seeds made once in $DATA_DIR/nats/nkeys and passed as NATS_CREDS;
      anonymous connections may only use $SRV.> and _INBOX.>), every service binary found
      in the bin dir (tenant agent sshkey channel usage), then the gateway; print the API
      URL, the docs URL and a user token for local-user once /health answers.
      A child that exits on its own stops the whole stack (exit code 1); it is never
      restarted silently. Ctrl-C or SIGTERM stops the gateway first, then the services
      (SIGTERM, SIGKILL after -stop-timeout), then NATS, and exits 0 when every child
      stopped cleanly (1 otherwise). A second Ctrl-C kills what is left at once.
  launcher token [-sub local-user] [-role ROLE[,ROLE]] [-email ADDR] [-ttl 24h]
      Print an HS256 user token signed with the stack's secret (e.g. -role platform_admin).
  launcher nats
      Run only the embedded NATS server, with the same users (for tests that start the
      other processes; give each NATS_CREDS=$DATA_DIR/nats/nkeys/<name>.nk).

Environment (the same names every binary reads; several stacks side by side differ in
HTTP_ADDR, NATS_URL, DATA_DIR and METRICS_ADDR):
  NATS_URL         where the embedded NATS listens         (default nats://127.0.0.1:4222)
  DATA_DIR         NATS data, embedded stores, jwt-secret  (default .data)
  HTTP_ADDR        gateway listen address                  (default 127.0.0.1:8000)
  METRICS_ADDR     gateway metrics; service i gets port+i  (default 127.0.0.1:9090)
  AUTH_JWT_SECRET  HS256 secret; when unset, 32 random bytes (hex) are generated once and
                   kept in $DATA_DIR/jwt-secret (mode 0600). It is never printed.
  LOG_FORMAT       children's log format                   (default console)
  LOG_LEVEL        children's log level (default: the binaries' own, info); debug also
                   shows the embedded NATS server's notices
  STORE, DYNAMODB_ENDPOINT, DYNAMODB_TABLE_PREFIX, AWS_REGION and every other variable
                   are passed to the children unchanged.
`

// config is everything the launcher reads from the environment, read once in main.
type config struct {
	NATSURL     string
	DataDir     string
	HTTPAddr    string
	MetricsAddr string
	JWTSecret   string
	LogFormat   string
	LogLevel    string
	NoColor     bool // NO_COLOR set: plain output even on a terminal
}

func loadConfig(getenv func(string) string) config {
	or := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	return config{
		NATSURL:     or("NATS_URL", "nats://127.0.0.1:4222"),
		DataDir:     or("DATA_DIR", ".data"),
		HTTPAddr:    or("HTTP_ADDR", "127.0.0.1:8000"),
		MetricsAddr: or("METRICS_ADDR", "127.0.0.1:9090"),
		JWTSecret:   getenv("AUTH_JWT_SECRET"),
		LogFormat:   or("LOG_FORMAT", "console"),
		LogLevel:    getenv("LOG_LEVEL"),
		NoColor:     getenv("NO_COLOR") != "",
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	cfg := loadConfig(lookup(environ))
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		_, _ = io.WriteString(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "run":
		return runStack(cfg, args[1:], environ, stdout, stderr)
	case "token":
		err = printToken(cfg, args[1:], stdout, stderr)
	case "nats":
		err = runNATS(cfg, stdout)
	default:
		err = fmt.Errorf("unknown command %q (run, token, nats; -h for help)", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "launcher: %v\n", err)
		return 1
	}
	return 0
}

func lookup(environ []string) func(string) string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) string { return m[k] }
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("launcher "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// secret returns AUTH_JWT_SECRET or the data dir's generated one.
func secret(cfg config) (string, error) {
	if cfg.JWTSecret != "" {
		return cfg.JWTSecret, nil
	}
	return devauth.LoadOrCreateSecret(cfg.DataDir)
}

func printToken(cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", stderr)
	sub := fs.String("sub", "local-user", "user id (sub claim)")
	role := fs.String("role", "", "roles claim, comma-separated (e.g. platform_admin)")
	email := fs.String("email", "", "email claim (default <sub>@localhost)")
	ttl := fs.Duration("ttl", 24*time.Hour, "validity")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	}
	sec, err := secret(cfg)
	if err != nil {
		return err
	}
	var roles []string
	for r := range strings.SplitSeq(*role, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	tok, err := devauth.MintUserToken(sec, devauth.Claims{Subject: *sub, Email: *email, Roles: roles, TTL: *ttl}, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func runNATS(cfg config, stdout io.Writer) error {
	out := fleet.NewOutput(stdout, colorful(cfg, stdout), "nats")
	ns, err := startNATS(cfg, out)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	out.Printf("nats", "ready at %s (data in %s)", ns.ClientURL(), filepath.Join(cfg.DataDir, "nats"))
	<-sigs
	ns.Shutdown()
	out.Printf("nats", "stopped")
	return nil
}

// startNATS starts the embedded server with authentication on: each component has its
// own NKey (seeds kept in $DATA_DIR/nats/nkeys) and the natsperm permissions.
func startNATS(cfg config, out *fleet.Output) (*localnats.Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create DATA_DIR: %w", err)
	}
	creds, err := localnats.EnsureCredentials(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	w := out.Writer("nats")
	verbose := cfg.LogLevel == "debug" || cfg.LogLevel == "trace"
	return localnats.Start(localnats.Config{URL: cfg.NATSURL, StoreDir: filepath.Join(cfg.DataDir, "nats"), Log: w, Verbose: verbose,
		Users: creds.Public})
}

func runStack(cfg config, args, environ []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", stderr)
	binDir := fs.String("bin", "", "directory of the gateway and service binaries (default: the launcher's own directory)")
	stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "how long each stage may take to stop after SIGTERM")
	readyTimeout := fs.Duration("ready-timeout", 60*time.Second, "how long to wait for the gateway's /health before warning")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "launcher: %v\n", err)
		return 1
	}

	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fail(fmt.Errorf("DATA_DIR: %w", err))
	}
	cfg.DataDir = dataDir
	st, err := planStack(cfg, *binDir, environ)
	if err != nil {
		return fail(err)
	}
	names := []string{"launcher", "nats"}
	for _, p := range st.procs {
		names = append(names, p.Name)
	}
	out := fleet.NewOutput(stdout, colorful(cfg, stdout), names...)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	ns, err := startNATS(cfg, out)
	if err != nil {
		return fail(err)
	}
	out.Printf("launcher", "NATS ready at %s", cfg.NATSURL)

	sup := fleet.New(out, *stopTimeout)
	stopAll := func() bool {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-sigs:
				out.Alertf("launcher", "second signal: killing what is left")
				cancel()
			case <-ctx.Done():
			}
		}()
		clean := true
		for _, ex := range sup.Stop(ctx) {
			clean = clean && ex.Clean()
		}
		ns.Shutdown()
		out.Printf("nats", "stopped")
		return clean
	}

	for _, p := range st.procs {
		if _, err := sup.Start(p); err != nil {
			out.Alertf("launcher", "%v", err)
			stopAll()
			return 1
		}
	}

	ready := make(chan bool, 1)
	pollCtx, stopPoll := context.WithCancel(context.Background())
	defer stopPoll()
	go func() { ready <- waitHealthy(pollCtx, st.healthURL, st.serviceNames, *readyTimeout) }()

	for {
		select {
		case ok := <-ready:
			if !ok {
				out.Alertf("launcher", "the gateway did not report a healthy stack within %s (check the lines above); the banner follows anyway", *readyTimeout)
			}
			tok, err := devauth.MintUserToken(st.secret, devauth.Claims{Subject: "local-user", TTL: 24 * time.Hour}, time.Now())
			if err != nil {
				out.Alertf("launcher", "cannot mint the local-user token: %v", err)
				break
			}
			out.Block("launcher", banner(st.baseURL, cfg, tok))
		case ex := <-sup.Failed():
			stopPoll()
			out.Alertf("launcher", "%s unexpectedly; it is not restarted: stopping the whole stack", ex)
			stopAll()
			out.Alertf("launcher", "stopped because %s", ex)
			return 1
		case sig := <-sigs:
			stopPoll()
			out.Printf("launcher", "%s: stopping gateway, then services, then NATS", sig)
			if !stopAll() {
				out.Alertf("launcher", "some processes did not stop cleanly (see above)")
				return 1
			}
			out.Printf("launcher", "all stopped")
			return 0
		}
	}
}

// stack is what runStack starts, derived from the config and the bin dir.
type stack struct {
	procs        []fleet.Process
	serviceNames []string
	secret       string
	baseURL      string // http://host:port of the gateway
	healthURL    string
}

// planStack decides the children and their environments; cfg.DataDir is absolute.
func planStack(cfg config, binDir string, environ []string) (stack, error) {
	var st stack
	if binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return st, fmt.Errorf("find the bin dir: %w (use -bin)", err)
		}
		binDir = filepath.Dir(exe)
	}
	dataDir := cfg.DataDir
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return st, fmt.Errorf("create DATA_DIR: %w", err)
	}
	if _, _, err := localnats.HostPort(cfg.NATSURL); err != nil {
		return st, err
	}
	metricsHost, metricsPort, err := splitHostPort(cfg.MetricsAddr)
	if err != nil {
		return st, fmt.Errorf("METRICS_ADDR: %w", err)
	}
	st.baseURL, err = baseURL(cfg.HTTPAddr)
	if err != nil {
		return st, fmt.Errorf("HTTP_ADDR: %w", err)
	}
	st.healthURL = st.baseURL + "/health"
	if st.secret, err = secret(cfg); err != nil {
		return st, err
	}

	creds, err := localnats.EnsureCredentials(dataDir)
	if err != nil {
		return st, err
	}

	gateway := filepath.Join(binDir, "gateway")
	if !isExecutable(gateway) {
		return st, fmt.Errorf("%s not found: run `make build` first (or pass -bin)", gateway)
	}
	common := childEnv(environ, map[string]string{
		"NATS_URL":   cfg.NATSURL,
		"DATA_DIR":   dataDir,
		"HTTP_ADDR":  cfg.HTTPAddr,
		"LOG_FORMAT": cfg.LogFormat,
		"LOG_LEVEL":  cfg.LogLevel,
	})
	metrics := func(offset int) string {
		return net.JoinHostPort(metricsHost, strconv.Itoa(metricsPort+offset))
	}
	for i, name := range serviceNames() {
		path := filepath.Join(binDir, name)
		if !isExecutable(path) {
			continue
		}
		st.serviceNames = append(st.serviceNames, name)
		// Services never see AUTH_JWT_SECRET: only the gateway verifies tokens.
		env := childEnv(common, map[string]string{"METRICS_ADDR": metrics(1 + i), "AUTH_JWT_SECRET": "",
			"NATS_CREDS": creds.SeedFile(name)})
		st.procs = append(st.procs, fleet.Process{Name: name, Path: path, Env: env, Stage: 0})
	}
	env := childEnv(common, map[string]string{"METRICS_ADDR": metrics(0), "AUTH_JWT_SECRET": st.secret,
		"NATS_CREDS": creds.SeedFile("gateway")})
	st.procs = append(st.procs, fleet.Process{Name: "gateway", Path: gateway, Env: env, Stage: 1})
	return st, nil
}

// childEnv returns environ with the keys of set replaced; an empty value removes the key.
func childEnv(environ []string, set map[string]string) []string {
	out := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range set {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// baseURL is the gateway's URL for a listen address; an unspecified host (":8000",
// "0.0.0.0:8000") is reached on loopback.
func baseURL(httpAddr string) (string, error) {
	host, port, err := splitHostPort(httpAddr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// waitHealthy polls /health until it answers 200 and lists every started service with
// at least one instance, or until timeout (false).
func waitHealthy(ctx context.Context, url string, services []string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if healthy(ctx, client, url, services) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func healthy(ctx context.Context, client *http.Client, url string, services []string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	var h struct {
		Services map[string]int `json:"services"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h); err != nil {
		return false
	}
	for _, s := range services {
		if h.Services[s] < 1 {
			return false
		}
	}
	return true
}

func banner(base string, cfg config, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n")
	fmt.Fprintf(&b, "ArtCafe PubSub is running.\n")
	fmt.Fprintf(&b, "  API:     %s/api/v1\n", base)
	fmt.Fprintf(&b, "  Docs:    %s/docs\n", base)
	fmt.Fprintf(&b, "  Console: %s/console\n", base)
	fmt.Fprintf(&b, "  Health:  %s/health\n", base)
	fmt.Fprintf(&b, "  NATS:    %s\n", cfg.NATSURL)
	fmt.Fprintf(&b, "  Data:    %s\n", cfg.DataDir)
	fmt.Fprintf(&b, "  Token for local-user (valid 24h):\n")
	fmt.Fprintf(&b, "TOKEN=%s\n", token)
	fmt.Fprintf(&b, "  Try:     curl -H \"Authorization: Bearer $TOKEN\" %s/api/v1/me\n", base)
	fmt.Fprintf(&b, "  More tokens: make token [ROLE=platform_admin]. Ctrl-C stops everything.\n")
	return b.String()
}

// colorful reports whether w is a terminal that wants colours.
func colorful(cfg config, w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || cfg.NoColor {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
