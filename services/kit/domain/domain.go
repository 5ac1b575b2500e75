// Package domain holds what every service's domain layer builds on: errors that are a
// sentinel kind (errors.Is) and carry a message meant for a person, which the natsapi
// layer sends on the wire (never a lower layer's error text); and the jittered pause
// between retries of a conditional write that lost a race.
package domain

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"
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
