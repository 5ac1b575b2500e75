package channel

import (
	"errors"
	"fmt"

	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Sentinel errors of the channel domain; natsapi maps each to one wire code.
var (
	// ErrNotFound: no such channel (or subscription) in the caller's tenant, or the caller
	// may not know that it exists.
	ErrNotFound = errors.New("channel: not found")
	// ErrConflict: the item exists already, or changed under us too often.
	ErrConflict = errors.New("channel: conflict")
	// ErrForbidden: the caller is known but not allowed to do this.
	ErrForbidden = errors.New("channel: forbidden")
	// ErrLimit: the tenant's plan allows no more channels.
	ErrLimit = errors.New("channel: plan limit")
	// ErrInvalid: a request value breaks a rule the contract cannot check (ValidationError).
	ErrInvalid = errors.New("channel: invalid")
	// ErrInvalidCursor: a list cursor this service did not produce for this query.
	ErrInvalidCursor = errors.New("channel: invalid cursor")
	// ErrUnavailable: the store, the stream or a service we call is unreachable or
	// throttling; the caller may retry.
	ErrUnavailable = errors.New("channel: unavailable")
)

// errorf builds a domain error: kind, with a message meant for a person.
var errorf = domain.Errorf

// FieldError names one request field that breaks a rule.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists the request fields that break rules (it is an ErrInvalid).
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	s := "channel: invalid"
	for _, f := range e.Fields {
		s += " " + f.Field + ": " + f.Message + ";"
	}
	return s
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// add appends a field error.
func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// err returns e when it lists a field, else nil.
func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// notFound is the one answer for a channel the caller cannot see.
func notFound() error { return errorf(ErrNotFound, "channel not found") }

func notFoundIf(err error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound()
	}
	return err
}
