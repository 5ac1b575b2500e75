package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no tenant", []string{"-key-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "-tenant is required"},
		{"no key or agent", []string{"-tenant", "t"}, "give -key-id or -agent-id"},
		{"stray argument", []string{"-tenant", "t", "-agent-id", "a", "extra"}, `unexpected argument "extra"`},
		{"bad timeout", []string{"-tenant", "t", "-agent-id", "a", "-timeout", "0s"}, "-timeout must be positive"},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, env(nil), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
			if stdout.Len() != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stdout %q, stderr %q; want %q on stderr", stdout.String(), stderr.String(), tc.want)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, env(nil), &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-passphrase-env") {
		t.Fatalf("-h: exit %d, stderr %q", code, stderr.String())
	}
}

func TestDefaultsFromEnvironment(t *testing.T) {
	o, err := parse([]string{"-agent-id", "a"}, env(map[string]string{"ARTCAFE_API": "https://api.example/api/v1", "ARTCAFE_TENANT": "t1"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.api != "https://api.example/api/v1" || o.tenant != "t1" || o.keyPath != "~/.ssh/id_ed25519" || o.legacyRSA || o.export {
		t.Fatalf("options %+v", o)
	}
	o, err = parse([]string{"-agent-id", "a", "-tenant", "t2"}, env(nil), &bytes.Buffer{})
	if err != nil || o.api != "http://127.0.0.1:8000/api/v1" || o.tenant != "t2" {
		t.Fatalf("options %+v, %v", o, err)
	}
}

func TestExpandHome(t *testing.T) {
	got, err := expandHome("~/.ssh/id_ed25519", env(map[string]string{"HOME": "/home/agent"}))
	if err != nil || got != filepath.Join("/home/agent", ".ssh", "id_ed25519") {
		t.Fatalf("got %q, %v", got, err)
	}
	if got, _ := expandHome("/keys/k", env(nil)); got != "/keys/k" {
		t.Fatalf("an absolute path changed: %q", got)
	}
}

// A key that cannot be read fails before any request: exit 1, nothing on stdout.
func TestKeyErrorsSendNothing(t *testing.T) {
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		http.Error(w, "unexpected", http.StatusTeapot)
	}))
	defer srv.Close()
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"missing file", []string{"-key", filepath.Join(dir, "absent")}, nil},
		{"not a key", []string{"-key", junk}, nil},
		{"empty passphrase variable", []string{"-key", junk, "-passphrase-env", "PASS"}, nil},
		{"legacy with a junk key", []string{"-key", junk, "-legacy-rsa"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-api", srv.URL + "/api/v1", "-tenant", "t", "-agent-id", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, tc.args...)
			if code := run(context.Background(), args, env(tc.env), &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1 (stderr %q)", code, stderr.String())
			}
			if stdout.Len() != 0 || stderr.Len() == 0 {
				t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		})
	}
	if requests != 0 {
		t.Fatalf("%d requests sent with an unusable key", requests)
	}
}
