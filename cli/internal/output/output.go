// Package output renders what the CLI prints: aligned tables with relative times for
// people, the API's JSON for scripts (--json), and API errors with their detail, code
// and request id.
package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
)

// Printer writes results to Out and notes and errors to Err.
type Printer struct {
	Out, Err io.Writer
	// JSON selects machine output: the API's JSON as it came, indented.
	JSON bool
	// Now is the clock of relative times.
	Now func() time.Time
}

// Table prints rows under headers, aligned; an empty table prints "(none)".
func (p *Printer) Table(headers []string, rows [][]string) {
	if len(rows) == 0 {
		fmt.Fprintln(p.Out, "(none)")
		return
	}
	tw := tabwriter.NewWriter(p.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = Cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
}

// Fields prints label: value lines, aligned (one resource).
func (p *Printer) Fields(pairs ...[2]string) {
	tw := tabwriter.NewWriter(p.Out, 0, 0, 2, ' ', 0)
	for _, kv := range pairs {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], Cell(kv[1]))
	}
	_ = tw.Flush()
}

// Cell makes a value safe for one table cell: no tabs or line breaks, "-" when empty.
func Cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return ' '
		}
		return r
	}, s)
}

// RawJSON prints a JSON reply as it came (message data stays byte for byte), on a line
// of its own.
func (p *Printer) RawJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return fmt.Errorf("the reply is not JSON: %.200q", b)
	}
	_, err := fmt.Fprintf(p.Out, "%s\n", b)
	return err
}

// Value prints v as indented JSON.
func (p *Printer) Value(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.Out, "%s\n", b)
	return err
}

// Note prints a line for the person at the terminal (stderr), never mixed into results.
func (p *Printer) Note(format string, args ...any) {
	fmt.Fprintf(p.Err, format+"\n", args...)
}

// Ago is t relative to now: "just now", "5m ago", "in 2h", "3d ago"; "-" for nil or zero.
func Ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := now.Sub(*t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	case d < 60*24*time.Hour:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	default:
		return t.UTC().Format("2006-01-02")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// Error prints err for a person, or as JSON with --json; API errors show their detail,
// code, status, request id and field errors.
func (p *Printer) Error(err error) {
	var ae *api.Error
	if p.JSON {
		if !errors.As(err, &ae) {
			ae = &api.Error{Code: "cli_error", Detail: err.Error()}
		}
		b, _ := json.Marshal(struct {
			Error *api.Error `json:"error"`
		}{ae})
		fmt.Fprintf(p.Err, "%s\n", b)
		return
	}
	if !errors.As(err, &ae) {
		fmt.Fprintf(p.Err, "Error: %v\n", err)
		return
	}
	fmt.Fprint(p.Err, FormatAPIError(ae, ""))
}

// FormatAPIError is the human form of an API error, each line prefixed by indent.
func FormatAPIError(e *api.Error, indent string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%sError: %s\n", indent, e.Detail)
	fmt.Fprintf(&b, "%s  code:       %s (HTTP %d)\n", indent, e.Code, e.Status)
	if e.RequestID != "" {
		fmt.Fprintf(&b, "%s  request_id: %s\n", indent, e.RequestID)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, "%s  %s: %s\n", indent, f.Field, f.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "%s  retry after %s\n", indent, e.RetryAfter)
	}
	return b.String()
}

// Short shortens s to n runes with an ellipsis (for descriptions in tables).
func Short(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
