package command

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func run(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{In: strings.NewReader(stdin), Out: &out, Err: &errb,
		Getenv: func(k string) string { return env[k] }, Now: time.Now})
	return code, out.String(), errb.String()
}

// Every command a user can run has an example in its --help.
func TestEveryCommandHasAnExample(t *testing.T) {
	a := &app{io: IO{Getenv: func(string) string { return "" }}}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%s has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCommand())
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"nope"},
		{"agents", "nope"},
		{"agents", "get"},
		{"agents", "create"},
		{"tenants", "create", "--name", "x"},
		{"--no-such-flag", "whoami"},
		{"--api-endpoint", "ftp://x", "whoami"},
		{"--timeout", "0s", "whoami"},
		{"publish", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "{not json"},
		{"usage", "--from", "yesterday"},
		{"login", "--agent", "A"}, // no tenant
	} {
		code, _, errb := run(t, nil, "", args...)
		if code != ExitUsage || !strings.Contains(errb, "Error: ") {
			t.Errorf("%v: exit %d, stderr %q (want 2 with an error)", args, code, errb)
		}
	}
}

// The global flags come from the environment; a flag beats the variable; the token is
// never shown by --help.
func TestGlobalsFromEnvironment(t *testing.T) {
	var got http.Header
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, path = r.Header.Clone(), r.URL.Path
		_, _ = io.WriteString(w, `{"kind":"user","user_id":"u1"}`)
	}))
	defer srv.Close()
	env := map[string]string{EnvAPI: srv.URL + "/api/v1", EnvToken: "env-token", EnvTenant: "tenant-env"}
	code, out, errb := run(t, env, "", "whoami")
	if code != 0 || path != "/api/v1/me" || got.Get("Authorization") != "Bearer env-token" || got.Get("x-tenant-id") != "tenant-env" {
		t.Fatalf("exit %d path %s headers %v: %s %s", code, path, got, out, errb)
	}
	if !strings.Contains(out, "user_id:") || !strings.Contains(out, "u1") {
		t.Fatalf("whoami output:\n%s", out)
	}
	code, _, _ = run(t, env, "", "whoami", "--token", "art_key", "--tenant-id", "t2")
	if code != 0 || got.Get("x-api-key") != "art_key" || got.Get("Authorization") != "" || got.Get("x-tenant-id") != "t2" {
		t.Fatalf("flags over env: exit %d headers %v", code, got)
	}
	_, out, _ = run(t, env, "", "--help")
	if strings.Contains(out, "env-token") {
		t.Fatal("--help prints the token")
	}
}

// An error reply exits 1 with the API's detail, code and request id.
func TestAPIErrorExits1(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "rid-9")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"detail":"members only","code":"forbidden","request_id":"rid-9"}`)
	}))
	defer srv.Close()
	code, _, errb := run(t, map[string]string{EnvAPI: srv.URL + "/api/v1"}, "", "agents", "list")
	if code != ExitFail || !strings.Contains(errb, "members only") || !strings.Contains(errb, "forbidden (HTTP 403)") || !strings.Contains(errb, "rid-9") {
		t.Fatalf("exit %d stderr:\n%s", code, errb)
	}
}
