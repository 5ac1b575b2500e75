package run_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/services/kit/run"
)

// untilCancelled blocks until its context ends, records that it was stopped, and
// returns ctx.Err() the way a server's Serve does.
func untilCancelled(stopped *atomic.Int32) run.Func {
	return func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return ctx.Err()
	}
}

func until(t *testing.T, ctx context.Context, fns ...run.Func) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- run.Until(ctx, zerolog.New(io.Discard), fns...) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Until did not return")
		return nil
	}
}

func TestFirstErrorStopsTheRest(t *testing.T) {
	boom := errors.New("listener failed")
	var stopped atomic.Int32
	failed := make(chan struct{})
	err := until(t, context.Background(),
		untilCancelled(&stopped),
		func(context.Context) error { defer close(failed); return fmt.Errorf("http: %w", boom) },
		untilCancelled(&stopped),
		// A second failure, during the shutdown the first one caused, is not the one reported.
		func(ctx context.Context) error {
			<-failed
			<-ctx.Done()
			return errors.New("late failure while stopping")
		},
	)
	if !errors.Is(err, boom) {
		t.Errorf("Until = %v, want the first failure", err)
	}
	if n := stopped.Load(); n != 2 {
		t.Errorf("%d of 2 other functions were cancelled and waited for", n)
	}
}

func TestContextCancelIsACleanStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stopped atomic.Int32
	started := make(chan struct{})
	go func() { <-started; cancel() }()
	err := until(t, ctx,
		func(ctx context.Context) error { close(started); <-ctx.Done(); stopped.Add(1); return nil },
		untilCancelled(&stopped),
		// Wrapped cancellation counts as a clean stop too.
		func(ctx context.Context) error {
			<-ctx.Done()
			stopped.Add(1)
			return fmt.Errorf("consumer: %w", ctx.Err())
		},
	)
	if err != nil {
		t.Errorf("Until after cancel = %v, want nil", err)
	}
	if n := stopped.Load(); n != 3 {
		t.Errorf("%d of 3 functions stopped", n)
	}
}

// One function finishing cleanly still stops the binary: a component that is gone
// means the process should not pretend to be healthy.
func TestCleanReturnStopsTheRest(t *testing.T) {
	var stopped atomic.Int32
	err := until(t, context.Background(),
		func(context.Context) error { return nil },
		untilCancelled(&stopped),
	)
	if err != nil || stopped.Load() != 1 {
		t.Errorf("Until = %v, stopped = %d", err, stopped.Load())
	}
}

// SIGTERM is a clean stop. The signal is sent only while Until is listening for it, so
// it cannot reach the test binary's default handler.
func TestSIGTERMStops(t *testing.T) {
	var stopped atomic.Int32
	err := until(t, context.Background(),
		func(ctx context.Context) error {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
				return err
			}
			<-ctx.Done()
			stopped.Add(1)
			return ctx.Err()
		},
		untilCancelled(&stopped),
	)
	if err != nil || stopped.Load() != 2 {
		t.Errorf("Until after SIGTERM = %v, stopped = %d", err, stopped.Load())
	}
}
