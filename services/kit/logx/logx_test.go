package logx_test

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/services/kit/logx"
)

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	log := logx.NewTo(&buf, "tenant", "info", "json")
	log.Info().Str("request_id", "r1").Msg("hello")
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	for k, want := range map[string]any{"component": "tenant", "level": "info", "message": "hello", "request_id": "r1"} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	ts, _ := m["time"].(string)
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Errorf("time = %q, want RFC 3339 in UTC", ts)
	}
}

func TestLevels(t *testing.T) {
	cases := []struct {
		level       string
		debug, info bool
	}{
		{"debug", true, true},
		{"info", false, true},
		{"warn", false, false},
		{"", false, true},          // unset means info
		{"chatty", false, true},    // unknown means info
		{"disabled", false, false}, // a known zerolog level
	}
	for _, c := range cases {
		var buf bytes.Buffer
		log := logx.NewTo(&buf, "x", c.level, "json")
		log.Debug().Msg("d")
		log.Info().Msg("i")
		out := buf.String()
		if got := strings.Contains(out, `"message":"d"`); got != c.debug {
			t.Errorf("level %q: debug logged = %v, want %v", c.level, got, c.debug)
		}
		if got := strings.Contains(out, `"message":"i"`); got != c.info {
			t.Errorf("level %q: info logged = %v, want %v", c.level, got, c.info)
		}
	}
}

func TestConsoleFormat(t *testing.T) {
	var buf bytes.Buffer
	log := logx.NewTo(&buf, "gateway", "info", "console")
	log.Info().Str("k", "v").Msg("started")
	out := buf.String()
	if json.Valid(bytes.TrimSpace(buf.Bytes())) {
		t.Errorf("console output is JSON: %q", out)
	}
	for _, want := range []string{"started", "gateway", "k="} {
		if !strings.Contains(out, want) {
			t.Errorf("console line %q lacks %q", out, want)
		}
	}
}

// Building a logger while another one logs is safe: tests and binaries create loggers
// from many goroutines.
func TestNewToConcurrentWithLogging(t *testing.T) {
	var buf bytes.Buffer
	log := logx.NewTo(&buf, "a", "info", "json")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = logx.NewTo(io.Discard, "b", "info", "json")
		}
	}()
	for range 100 {
		log.Info().Msg("x")
	}
	<-done
}
