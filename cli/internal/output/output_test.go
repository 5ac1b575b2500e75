package output

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

func TestAgo(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	for _, c := range []struct {
		t    *time.Time
		want string
	}{
		{nil, "-"},
		{&time.Time{}, "-"},
		{at(-3 * time.Second), "just now"},
		{at(-42 * time.Second), "42s ago"},
		{at(-5 * time.Minute), "5m ago"},
		{at(-3 * time.Hour), "3h ago"},
		{at(-47 * time.Hour), "47h ago"},
		{at(-72 * time.Hour), "3d ago"},
		{at(2 * time.Hour), "in 2h"},
		{at(-90 * 24 * time.Hour), "2026-02-09"},
	} {
		if got := Ago(c.t, now); got != c.want {
			t.Errorf("Ago(%v) = %q, want %q", c.t, got, c.want)
		}
	}
}

func TestTableAlignsAndSanitizes(t *testing.T) {
	var out bytes.Buffer
	p := &Printer{Out: &out}
	p.Table([]string{"ID", "NAME"}, [][]string{{"1", "a\tb\nc"}, {"22", ""}})
	want := "ID  NAME\n1   a b c\n22  -\n"
	if out.String() != want {
		t.Fatalf("table:\n%q\nwant\n%q", out.String(), want)
	}
	out.Reset()
	p.Table([]string{"ID"}, nil)
	if out.String() != "(none)\n" {
		t.Fatalf("empty table: %q", out.String())
	}
}

func TestRawJSONKeepsBytes(t *testing.T) {
	var out bytes.Buffer
	p := &Printer{Out: &out}
	if err := p.RawJSON([]byte(` {"n": 1.50} `)); err != nil || out.String() != "{\"n\": 1.50}\n" {
		t.Fatalf("RawJSON: %v %q", err, out.String())
	}
	if err := p.RawJSON([]byte("<html>")); err == nil {
		t.Fatal("RawJSON accepted a page that is not JSON")
	}
}

func TestErrorPrintsDetailCodeRequestID(t *testing.T) {
	e := &api.Error{Status: 422, Code: "validation_failed", Detail: "bad input", RequestID: "req-1",
		Errors: []natsrpc.FieldError{{Field: "name", Message: "is required"}}}
	var errb bytes.Buffer
	p := &Printer{Err: &errb}
	p.Error(e)
	for _, want := range []string{"Error: bad input", "code:       validation_failed (HTTP 422)", "request_id: req-1", "name: is required"} {
		if !strings.Contains(errb.String(), want) {
			t.Fatalf("error output lacks %q:\n%s", want, errb.String())
		}
	}
	errb.Reset()
	p.JSON = true
	p.Error(e)
	if !strings.HasPrefix(errb.String(), `{"error":{"status":422,"code":"validation_failed","detail":"bad input","request_id":"req-1"`) {
		t.Fatalf("--json error: %s", errb.String())
	}
	errb.Reset()
	p.Error(errors.New("dial tcp: refused"))
	if !strings.Contains(errb.String(), `"code":"cli_error"`) {
		t.Fatalf("--json non-API error: %s", errb.String())
	}
}
