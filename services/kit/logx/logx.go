// Package logx builds the process logger: zerolog, JSON by default, console for people.
package logx

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// New returns a logger for component at level ("debug", "info", ...) in format ("json"
// or "console"), writing to stderr, and the function that writes out what is still
// buffered (call it before the process exits). JSON output is batched (see
// bufferedWriter); console output, for people, is written line by line.
// An unknown level means info.
func New(component, level, format string) (zerolog.Logger, func()) {
	if format == "console" {
		return NewTo(os.Stderr, component, level, format), func() {}
	}
	w := newBufferedWriter(os.Stderr)
	return NewTo(w, component, level, format), w.flush
}

// NewTo is New writing to w.
func NewTo(w io.Writer, component, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).Hook(nanoTime{}).With().Str("component", component).Logger()
}

// nanoTime stamps each line in RFC 3339 UTC with nanoseconds. It replaces setting
// zerolog's global TimeFieldFormat, which raced with loggers already in use.
type nanoTime struct{}

func (nanoTime) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	// Formatted into a stack buffer and added as raw JSON: no string is allocated per line.
	var buf [48]byte
	b := append(buf[:0], '"')
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	e.RawJSON(zerolog.TimestampFieldName, append(b, '"'))
}
