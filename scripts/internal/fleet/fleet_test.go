package fleet

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the supervisor's goroutines.
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

// waitFor waits for the line "<name> | <text>" (name padded to the output's width).
func waitFor(t *testing.T, buf *syncBuffer, name, text string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` *\| ` + regexp.QuoteMeta(text))
	deadline := time.Now().Add(10 * time.Second)
	for !re.MatchString(buf.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("output never had %q from %s:\n%s", text, name, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func shell(name, script string, stage int) Process {
	return Process{Name: name, Path: "/bin/sh", Args: []string{"-c", script}, Env: os.Environ(), Stage: stage}
}

// A child that exits 0 on SIGTERM; it prints "up" once its trap is installed.
const polite = `trap 'echo "got TERM"; exit 0' TERM; echo up; while :; do sleep 0.05; done`

func TestOutputPrefixesLines(t *testing.T) {
	var buf syncBuffer
	o := NewOutput(&buf, false, "tenant", "gateway")
	w := o.Writer("tenant")
	_, _ = w.Write([]byte("one\ntw"))
	_, _ = w.Write([]byte("o\r\nthree"))
	_ = w.Close()
	o.Printf("gateway", "hello %d", 7)
	o.Block("gateway", "a\nb\n")
	want := "tenant  | one\ntenant  | two\ntenant  | three\ngateway | hello 7\ngateway | a\ngateway | b\n"
	if got := buf.String(); got != want {
		t.Fatalf("output:\n%q\nwant:\n%q", got, want)
	}
}

func TestOutputColours(t *testing.T) {
	var buf syncBuffer
	o := NewOutput(&buf, true, "tenant")
	o.Printf("tenant", "x")
	o.Alertf("tenant", "boom")
	got := buf.String()
	if !strings.Contains(got, palette[0]+"tenant | "+reset+"x\n") || !strings.Contains(got, red+"boom"+reset) {
		t.Fatalf("colours missing: %q", got)
	}
}

func TestOutputCutsVeryLongLines(t *testing.T) {
	var buf syncBuffer
	o := NewOutput(&buf, false, "x")
	w := o.Writer("x")
	_, _ = w.Write(bytes.Repeat([]byte("a"), maxLine+10))
	_ = w.Close()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 || len(lines[0]) != len("x | ")+maxLine || lines[1] != "x | "+strings.Repeat("a", 10) {
		t.Fatalf("got %d lines", len(lines))
	}
}

func TestChildOutputAndPid(t *testing.T) {
	var buf syncBuffer
	s := New(NewOutput(&buf, false, "svc"), 5*time.Second)
	pid, err := s.Start(shell("svc", `echo "to stdout"; echo "to stderr" >&2; `+polite, 0))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, &buf, "svc", "up")
	for _, want := range []string{"svc | to stdout", "svc | to stderr", "(pid " + strconv.Itoa(pid) + ")"} {
		if !strings.Contains(buf.String(), want) {
			t.Fatalf("missing %q in:\n%s", want, buf.String())
		}
	}
	exits := s.Stop(context.Background())
	if len(exits) != 1 || !exits[0].Clean() {
		t.Fatalf("exits = %v", exits)
	}
	waitFor(t, &buf, "svc", "got TERM")
}

func TestUnexpectedExitIsReported(t *testing.T) {
	var buf syncBuffer
	s := New(NewOutput(&buf, false, "svc", "other"), 5*time.Second)
	if _, err := s.Start(shell("other", polite, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &buf, "other", "up")
	if _, err := s.Start(shell("svc", `echo dying; exit 3`, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-s.Failed():
		if ex.Name != "svc" || ex.Code != 3 || ex.Clean() || !strings.Contains(ex.String(), "exited with code 3") {
			t.Fatalf("exit = %+v (%s)", ex, ex)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no failure reported")
	}
	// The survivor is still running and stops cleanly; the dead one is reported as such.
	exits := s.Stop(context.Background())
	byName := map[string]Exit{}
	for _, e := range exits {
		byName[e.Name] = e
	}
	if !byName["other"].Clean() || byName["svc"].Code != 3 {
		t.Fatalf("exits = %v", exits)
	}
	select {
	case ex := <-s.Failed():
		t.Fatalf("a child stopped by Stop was reported as failed: %v", ex)
	default:
	}
}

func TestStopOrderHigherStageFirst(t *testing.T) {
	var buf syncBuffer
	s := New(NewOutput(&buf, false, "svc", "gateway"), 5*time.Second)
	for _, p := range []Process{shell("svc", polite, 0), shell("gateway", polite, 1)} {
		if _, err := s.Start(p); err != nil {
			t.Fatal(err)
		}
		waitFor(t, &buf, p.Name, "up")
	}
	exits := s.Stop(context.Background())
	if len(exits) != 2 || exits[0].Name != "gateway" || exits[1].Name != "svc" {
		t.Fatalf("stop order = %v", exits)
	}
	out := buf.String()
	gwStopped := strings.Index(out, "gateway | stopped")
	svcStopping := strings.Index(out, "svc     | stopping")
	if gwStopped < 0 || svcStopping < 0 || gwStopped > svcStopping {
		t.Fatalf("the service was signalled before the gateway had stopped:\n%s", out)
	}
	if _, err := s.Start(shell("late", polite, 0)); err != ErrStopping {
		t.Fatalf("Start after Stop: err = %v, want ErrStopping", err)
	}
}

func TestStragglerIsKilled(t *testing.T) {
	var buf syncBuffer
	s := New(NewOutput(&buf, false, "stubborn"), 200*time.Millisecond)
	if _, err := s.Start(shell("stubborn", `trap '' TERM; echo up; while :; do sleep 0.05; done`, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &buf, "stubborn", "up")
	exits := s.Stop(context.Background())
	if len(exits) != 1 || exits[0].Signal != syscall.SIGKILL.String() || exits[0].Clean() {
		t.Fatalf("exits = %+v", exits)
	}
	if !regexp.MustCompile(`stubborn \| still running .* sending SIGKILL`).MatchString(buf.String()) {
		t.Fatalf("no SIGKILL notice:\n%s", buf.String())
	}
}

func TestStopCutShortByContext(t *testing.T) {
	var buf syncBuffer
	s := New(NewOutput(&buf, false, "stubborn"), time.Hour)
	if _, err := s.Start(shell("stubborn", `trap '' TERM; echo up; while :; do sleep 0.05; done`, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &buf, "stubborn", "up")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan []Exit, 1)
	go func() { done <- s.Stop(ctx) }()
	select {
	case exits := <-done:
		if len(exits) != 1 || exits[0].Signal != syscall.SIGKILL.String() {
			t.Fatalf("exits = %+v", exits)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop ignored its cancelled context")
	}
}

func TestStartMissingBinary(t *testing.T) {
	s := New(NewOutput(&syncBuffer{}, false), time.Second)
	if _, err := s.Start(Process{Name: "ghost", Path: "/nonexistent/ghost"}); err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("err = %v", err)
	}
}

// countingWriter counts the writes it gets.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestOutputWritesABatchOfLinesAtOnce(t *testing.T) {
	var cw countingWriter
	w := NewOutput(&cw, false, "agent").Writer("agent")
	_, _ = w.Write([]byte("one\ntwo\nthree\nfour"))
	if want := "agent | one\nagent | two\nagent | three\n"; cw.String() != want || cw.writes != 1 {
		t.Fatalf("%d writes of %q, want 1 of %q", cw.writes, cw.String(), want)
	}
	_ = w.Close()
	if !strings.HasSuffix(cw.String(), "agent | four\n") {
		t.Fatalf("the last partial line was lost: %q", cw.String())
	}
}
