// Package localnats runs the embedded nats-server (JetStream on, data under a directory)
// that the local launcher serves at NATS_URL.
package localnats

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
)

// Config says where the server listens and keeps its data.
type Config struct {
	// URL is a nats:// URL (the first one, if a comma-separated list is given); its host
	// and port are where the server listens.
	URL string
	// StoreDir holds JetStream's files; the same dir on the next start keeps the streams.
	StoreDir string
	// Log receives the server's warnings and errors, one line each.
	Log io.Writer
	// Verbose adds its notices (start-up banner, connections) and debug lines.
	Verbose bool
	// Users, when set, turns authentication on: each component (natsperm.Components)
	// authenticates with the NKey whose public key is given here and gets its
	// natsperm permissions; anonymous connections are the ops user.
	Users map[string]string
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// HostPort splits a nats:// URL into the host and port to listen on.
func HostPort(natsURL string) (string, int, error) {
	first := strings.TrimSpace(strings.Split(natsURL, ",")[0])
	if !strings.Contains(first, "://") {
		first = "nats://" + first
	}
	u, err := url.Parse(first)
	if err != nil {
		return "", 0, fmt.Errorf("localnats: NATS_URL %q: %w", natsURL, err)
	}
	if u.Scheme != "nats" {
		return "", 0, fmt.Errorf("localnats: NATS_URL %q: the embedded server speaks plain nats://", natsURL)
	}
	host := u.Hostname()
	if host == "" {
		host = "127.0.0.1"
	}
	port := 4222
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return "", 0, fmt.Errorf("localnats: NATS_URL %q: bad port", natsURL)
		}
	}
	return host, port, nil
}

// Start starts the server and waits until it accepts connections. A busy port is
// reported as such (another stack or nats-server already listens there).
func Start(cfg Config) (*Server, error) {
	host, port, err := HostPort(cfg.URL)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	// The server reports a busy port only through its logger; probing first gives a
	// message a person can act on.
	if l, err := net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("localnats: cannot listen on %s (is another stack or nats-server using it? set NATS_URL to another port): %w", addr, err)
	} else {
		_ = l.Close()
	}
	storeDir, err := filepath.Abs(cfg.StoreDir)
	if err != nil {
		return nil, fmt.Errorf("localnats: store dir: %w", err)
	}
	opts := &server.Options{}
	if cfg.Users != nil {
		// The same text as the committed infra/nats/auth.conf, with the keys filled in.
		if err := opts.ProcessConfigString(natsperm.AuthConfig(natsperm.NKeyLiteral(cfg.Users))); err != nil {
			return nil, fmt.Errorf("localnats: auth config: %w", err)
		}
	}
	opts.ServerName = "artcafe-local"
	opts.Host, opts.Port = host, port
	opts.JetStream, opts.StoreDir = true, storeDir
	opts.NoSigs = true // the launcher owns signal handling
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("localnats: %w", err)
	}
	w := cfg.Log
	if w == nil {
		w = io.Discard
	}
	ns.SetLoggerV2(&lineLogger{w: w, notices: cfg.Verbose}, cfg.Verbose, false, false)
	ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("localnats: server did not become ready (see its log lines above)")
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the URL clients use.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it; JetStream data is flushed to StoreDir.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// lineLogger adapts the server's logger to line-oriented output.
type lineLogger struct {
	mu      sync.Mutex
	w       io.Writer
	notices bool
}

func (l *lineLogger) logf(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.w, "%s %s\n", level, fmt.Sprintf(format, v...))
}

func (l *lineLogger) Noticef(format string, v ...any) {
	if l.notices {
		l.logf("INF", format, v...)
	}
}
func (l *lineLogger) Warnf(format string, v ...any)  { l.logf("WRN", format, v...) }
func (l *lineLogger) Fatalf(format string, v ...any) { l.logf("FTL", format, v...) }
func (l *lineLogger) Errorf(format string, v ...any) { l.logf("ERR", format, v...) }
func (l *lineLogger) Debugf(format string, v ...any) { l.logf("DBG", format, v...) }
func (l *lineLogger) Tracef(format string, v ...any) { l.logf("TRC", format, v...) }
