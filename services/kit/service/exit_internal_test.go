package service

import (
	"context"
	"io"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
)

// Main's exit codes: 0 after a stop, 1 when the service fails.
func TestExitCodes(t *testing.T) {
	ns := natsrpctest.Server(t)
	t.Setenv("NATS_URL", ns.ClientURL())
	t.Setenv("DYNAMODB_ENDPOINT", "") // the embedded store, even in the DynamoDB leg
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("METRICS_ADDR", "127.0.0.1:0")
	t.Setenv("LOG_LEVEL", "disabled")

	// exit runs a service that stops (as on a signal) as soon as it has started.
	exit := func() int {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		return exitCode(ctx, Spec{Name: "demo", Table: "demo", Setup: func(Deps) (cascade.Purger, error) {
			cancel()
			return func(context.Context, string) error { return nil }, nil
		}}, io.Discard)
	}

	t.Setenv("STORE", "embedded")
	if code := exit(); code != 0 {
		t.Fatalf("exit code after a stop: %d, want 0", code)
	}
	t.Setenv("STORE", "no-such-backend")
	if code := exit(); code != exitFailure {
		t.Fatalf("exit code of a failure: %d, want %d", code, exitFailure)
	}
}
