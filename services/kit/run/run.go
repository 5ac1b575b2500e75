// Package run is the graceful run loop of a binary: it runs a set of long-lived
// functions until SIGINT/SIGTERM or the first of them fails, then cancels the others and
// waits for them.
package run

import (
	"context"
	"errors"
	"os/signal"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
)

// Func runs until ctx is cancelled and then returns after cleaning up (nil for a clean
// stop).
type Func func(ctx context.Context) error

// Until runs fns until a signal arrives or one of them returns, then cancels ctx for the
// rest and waits for all. It returns the first error that was not context.Canceled.
func Until(ctx context.Context, log zerolog.Logger, fns ...Func) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() { first = err })
			}
			cancel()
		}()
	}
	<-ctx.Done()
	log.Info().Msg("stopping")
	wg.Wait()
	return first
}
