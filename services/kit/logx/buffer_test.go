package logx

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer is a bytes.Buffer safe for the flush timer's goroutine.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

func TestBufferedWriterBatchesInfoAndFlushesOnTimer(t *testing.T) {
	out := &lockedBuffer{}
	log := NewTo(newBufferedWriter(out), "test", "info", "json")
	for range 100 {
		log.Info().Msg("request")
	}
	if s, _ := out.snapshot(); s != "" {
		t.Fatalf("info lines were written at once: %q", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, writes := out.snapshot()
		if strings.Count(s, `"message":"request"`) == 100 {
			if writes != 1 {
				t.Errorf("100 lines took %d writes, want 1 batch", writes)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("buffered lines never flushed: %d writes, %q", writes, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBufferedWriterWritesWarningsAtOnce(t *testing.T) {
	out := &lockedBuffer{}
	w := newBufferedWriter(out)
	log := NewTo(w, "test", "info", "json")
	log.Info().Msg("before")
	log.Error().Msg("broken")
	s, _ := out.snapshot()
	if !strings.Contains(s, "before") || !strings.Contains(s, "broken") {
		t.Fatalf("an error must be written at once, with what came before it: %q", s)
	}
	log.Info().Msg("after")
	w.flush()
	if s, _ := out.snapshot(); !strings.Contains(s, "after") {
		t.Fatalf("flush did not write the buffer: %q", s)
	}
}

func TestBufferedWriterFlushesWhenFull(t *testing.T) {
	out := &lockedBuffer{}
	w := newBufferedWriter(out)
	line := bytes.Repeat([]byte("x"), 1024)
	for range flushBytes / len(line) {
		if _, err := w.WriteLevel(zerolog.InfoLevel, line); err != nil {
			t.Fatal(err)
		}
	}
	if _, writes := out.snapshot(); writes != 1 {
		t.Fatalf("a full buffer made %d writes, want 1", writes)
	}
	w.flush()
}
