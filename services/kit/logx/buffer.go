package logx

import (
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Batching of log output: one write per batch instead of one per line, which at
// thousands of requests a second is a syscall saved on every request. Lines at warn and
// above are written at once, so errors are never held back (a process that exits right
// after logging an error still shows it).
const (
	flushEvery = 100 * time.Millisecond
	flushBytes = 64 << 10
)

// bufferedWriter is a zerolog.LevelWriter that batches lines below warn for at most
// flushEvery. No goroutine runs while nothing is buffered.
type bufferedWriter struct {
	mu    sync.Mutex
	out   io.Writer
	buf   []byte
	timer *time.Timer
	armed bool
}

func newBufferedWriter(out io.Writer) *bufferedWriter {
	return &bufferedWriter{out: out, buf: make([]byte, 0, flushBytes)}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	return b.WriteLevel(zerolog.NoLevel, p)
}

func (b *bufferedWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if (l >= zerolog.WarnLevel && l != zerolog.NoLevel) || len(b.buf) >= flushBytes {
		return len(p), b.flushLocked()
	}
	if !b.armed {
		b.armed = true
		if b.timer == nil {
			b.timer = time.AfterFunc(flushEvery, b.flush)
		} else {
			b.timer.Reset(flushEvery)
		}
	}
	return len(p), nil
}

// flush writes what is buffered; the timer and Close call it.
func (b *bufferedWriter) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.flushLocked()
}

func (b *bufferedWriter) flushLocked() error {
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.out.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
