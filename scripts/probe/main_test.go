package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if code := run([]string{srv.URL}); code != 0 {
		t.Fatalf("200: exit %d", code)
	}
	status = http.StatusServiceUnavailable
	if code := run([]string{srv.URL}); code != 1 {
		t.Fatalf("503: exit %d", code)
	}
	if code := run([]string{"http://127.0.0.1:1/"}); code != 1 {
		t.Fatalf("refused: exit %d", code)
	}
	if code := run(nil); code != 2 {
		t.Fatalf("no URL: exit %d", code)
	}
}
