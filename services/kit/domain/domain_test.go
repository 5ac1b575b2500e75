package domain

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

var errKind = errors.New("thing: not found")

func TestErrorf(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", Errorf(errKind, "thing %s not found", "x"))
	if !errors.Is(err, errKind) {
		t.Fatal("the kind is lost")
	}
	if got := Detail(err, "default"); got != "thing x not found" {
		t.Fatalf("Detail = %q", got)
	}
	if got := Detail(errKind, "default"); got != "default" {
		t.Fatalf("Detail of a bare sentinel = %q, want the default", got)
	}
}

func TestBackoffStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Backoff(ctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("Backoff after cancel = %v", err)
	}
	if err := Backoff(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}
