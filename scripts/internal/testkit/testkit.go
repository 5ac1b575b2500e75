// Package testkit holds the harness pieces the process-level test suites (scripts/e2e,
// scripts/cluster) share: finding the repository and building its binaries, collecting
// child output, free loopback ports, the children's environment, polling, and the
// checks that acknowledged publishes reached history and live watchers exactly once.
// Functions that can fail a test take the caller's testing.TB.
package testkit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RepoRoot is the folder with go.work at or above the working directory (a test runs in
// its package's folder).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// GoBuild runs `go build args...` in dir; the error carries the command and its output.
func GoBuild(dir string, args ...string) error {
	args = append([]string{"build"}, args...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// RunWithBinaries is a TestMain body: build puts the binaries under test into a new
// temporary folder, use hands that folder to the tests, and m runs them; the folder is
// removed afterwards. name prefixes the messages and the folder.
func RunWithBinaries(m *testing.M, name string, build func(dir string) error, use func(dir string)) int {
	dir, err := os.MkdirTemp("", "artcafe-"+name+"-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, name+": building the binaries failed:", err)
		return 1
	}
	use(dir)
	return m.Run()
}

// SyncBuffer collects a process's output for assertions and for the failure log; the
// children write to it while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail is the last n bytes of s, enough to see why a process failed.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// FreePort is a loopback port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// FreePorts reserves n distinct free loopback ports (all held at once, so none repeats,
// and closed again before use).
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// FreePortRange finds n consecutive free ports and returns the first (the launcher
// gives process i the metrics port base+i).
func FreePortRange(tb testing.TB, n int) int {
	tb.Helper()
	for range 50 {
		base := FreePort(tb)
		if base+n > 65535 {
			continue
		}
		var ls []net.Listener
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			_ = l.Close()
		}
		if ok {
			return base
		}
	}
	tb.Fatal("no range of free ports")
	return 0
}

// controlledPrefixes are the variables a harness sets itself for every child: the
// caller's values never leak into a run (an embedded-store run must not see the
// DYNAMODB_ENDPOINT that with-dynalite.sh exports).
var controlledPrefixes = []string{"HTTP_ADDR=", "NATS_", "DATA_DIR=", "METRICS_ADDR=", "AUTH_", "STORE=",
	"DYNAMODB_", "LOG_", "CORS_ALLOWED_ORIGINS=", "TRUSTED_PROXIES="}

// Environ is the test's environment without the variables a harness controls, then extra.
func Environ(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range controlledPrefixes {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// RandomHex is n random bytes in hex (secrets, table prefixes of a run).
func RandomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Eventually polls cond every interval until it holds or timeout passes; the failure
// names what and cond's last reason.
func Eventually(tb testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s: %s", what, timeout, why)
		}
		time.Sleep(interval)
	}
}
