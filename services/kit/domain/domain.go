// Package domain holds what every service's domain layer builds on: errors that are a
// sentinel kind (errors.Is) and carry a message meant for a person, which the natsapi
// layer sends on the wire (never a lower layer's error text); the jittered pause between
// retries of a conditional write that lost a race; the undo steps of a write sequence;
// monotonic ULIDs; and the port usage gauges are reported through.
package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
)

// detailed is a sentinel kind with a message meant for a person.
type detailed struct {
	kind   error
	detail string
}

func (e *detailed) Error() string  { return e.kind.Error() + ": " + e.detail }
func (e *detailed) Unwrap() error  { return e.kind }
func (e *detailed) Detail() string { return e.detail }

// Errorf returns an error that is kind and whose Detail is the formatted message.
func Errorf(kind error, format string, args ...any) error {
	return &detailed{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// Detail is the person-facing message of the first error in err's chain that has one
// (built by Errorf), else def.
func Detail(err error, def string) string {
	var d interface{ Detail() string }
	if errors.As(err, &d) {
		return d.Detail()
	}
	return def
}

// Backoff pauses 1 to 1+2·attempt milliseconds, at random, so writers retrying the same
// item spread out; it returns ctx's error if ctx ends first.
func Backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(time.Duration(mrand.IntN(1+attempt*2)+1) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// CompensateTimeout bounds the clean-up after a failed (or finished) write sequence; it
// runs even when the request's own context has ended.
const CompensateTimeout = 5 * time.Second

// Compensation collects the undo steps of a write sequence (there are no transactions:
// ARCHITECTURE.md); Run executes them newest first on a context that survives the
// request's, and logs what could not be undone.
type Compensation []func(ctx context.Context) error

// Run runs the steps, newest first.
func (c Compensation) Run(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CompensateTimeout)
	defer cancel()
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](cctx); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("compensating a failed write left state behind")
		}
	}
}

// IDs makes ULIDs that increase within this process, even within one millisecond.
type IDs struct {
	mu      sync.Mutex
	entropy *ulid.MonotonicEntropy
}

// NewIDs returns a ULID source seeded from crypto/rand.
func NewIDs() *IDs { return &IDs{entropy: ulid.Monotonic(rand.Reader, 0)} }

// Next returns a new ULID with t's timestamp.
func (g *IDs) Next(t time.Time) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, err := ulid.New(ulid.Timestamp(t), g.entropy)
	if err != nil {
		return "", fmt.Errorf("new id: %w", err)
	}
	return id.String(), nil
}

// Gauges receives a tenant's count of one kind after every change of it, for usage
// metering (kit/gauge.Reporter); Report must not block.
type Gauges interface {
	Report(tenantID, kind string, value int64)
}

// NoGauges reports nothing (a service built without usage metering, tests).
type NoGauges struct{}

// Report does nothing.
func (NoGauges) Report(string, string, int64) {}
