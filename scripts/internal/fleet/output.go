package fleet

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// ANSI colours given to names in order; the launcher's own lines are bold.
var palette = []string{"\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[96m", "\x1b[95m"}

const (
	reset = "\x1b[0m"
	bold  = "\x1b[1m"
	red   = "\x1b[1;31m"
)

// Output interleaves the lines of several named sources on one writer, each line
// prefixed with its source's name padded to a common width ("tenant  | …").
type Output struct {
	mu     sync.Mutex
	w      io.Writer
	color  bool
	width  int
	colors map[string]string
}

// NewOutput writes to w; color adds ANSI colours per name. names fixes the prefix width
// and the colour of each name (other names still work, uncoloured).
func NewOutput(w io.Writer, color bool, names ...string) *Output {
	o := &Output{w: w, color: color, colors: map[string]string{}}
	for i, n := range names {
		o.width = max(o.width, len(n))
		o.colors[n] = palette[i%len(palette)]
	}
	return o
}

func (o *Output) prefix(name string) string {
	p := fmt.Sprintf("%-*s | ", o.width, name)
	if !o.color {
		return p
	}
	c, ok := o.colors[name]
	if !ok {
		c = bold
	}
	return c + p + reset
}

// line writes one complete line (without its newline) for name.
func (o *Output) line(name string, text []byte, loud bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b bytes.Buffer
	b.WriteString(o.prefix(name))
	if loud && o.color {
		b.WriteString(red)
		b.Write(text)
		b.WriteString(reset)
	} else {
		b.Write(text)
	}
	b.WriteByte('\n')
	_, _ = o.w.Write(b.Bytes())
}

// lines writes complete lines (without their newlines) for name in one write.
func (o *Output) lines(name string, lines [][]byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	prefix := o.prefix(name)
	n := 0
	for _, l := range lines {
		n += len(prefix) + len(l) + 1
	}
	b := make([]byte, 0, n)
	for _, l := range lines {
		b = append(b, prefix...)
		b = append(b, l...)
		b = append(b, '\n')
	}
	_, _ = o.w.Write(b)
}

// Printf writes a line for name.
func (o *Output) Printf(name, format string, args ...any) {
	o.line(name, []byte(fmt.Sprintf(format, args...)), false)
}

// Alertf writes a line for name that must not be missed (red when colours are on).
func (o *Output) Alertf(name, format string, args ...any) {
	o.line(name, []byte(fmt.Sprintf(format, args...)), true)
}

// Block writes text for name as one uninterrupted block of prefixed lines.
func (o *Output) Block(name, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for l := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(o.prefix(name))
		b.WriteString(l)
		b.WriteByte('\n')
	}
	_, _ = io.WriteString(o.w, b.String())
}

// Writer returns a writer that turns whatever is written into prefixed lines for name.
// Close flushes a last line that has no newline. One Writer per stream, so the partial
// lines of stdout and stderr never mix.
func (o *Output) Writer(name string) io.WriteCloser {
	return &lineWriter{o: o, name: name}
}

// maxLine bounds how much of one line is buffered; longer lines are cut into pieces.
const maxLine = 64 << 10

type lineWriter struct {
	mu   sync.Mutex
	o    *Output
	name string
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	// Every complete line of this write goes out in one write: a child batching its log
	// lines (logx) must not cost the launcher one write per line.
	var lines [][]byte
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, bytes.TrimSuffix(w.buf[:i], []byte("\r")))
		w.buf = w.buf[i+1:]
	}
	for len(w.buf) >= maxLine {
		lines = append(lines, w.buf[:maxLine])
		w.buf = w.buf[maxLine:]
	}
	if len(lines) > 0 {
		w.o.lines(w.name, lines)
	}
	// Keep the buffer from growing without bound once its start has been consumed.
	if len(w.buf) == 0 {
		w.buf = w.buf[:0:0]
	}
	return len(p), nil
}

func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.o.line(w.name, w.buf, false)
		w.buf = nil
	}
	return nil
}
