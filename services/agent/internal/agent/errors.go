package agent

import (
	"errors"
	"fmt"
)

// Sentinel errors of the agent domain; natsapi maps each to one wire code.
var (
	// ErrNotFound: no such live agent in the caller's tenant (or the caller may not know
	// that it exists).
	ErrNotFound = errors.New("agent: not found")
	// ErrConflict: the item changed under us too often, or exists already.
	ErrConflict = errors.New("agent: conflict")
	// ErrForbidden: the caller is known but not allowed to do this.
	ErrForbidden = errors.New("agent: forbidden")
	// ErrLimit: the tenant's plan allows no more agents.
	ErrLimit = errors.New("agent: plan limit")
	// ErrInvalid: a request value breaks a rule the contract cannot check (ValidationError).
	ErrInvalid = errors.New("agent: invalid")
	// ErrInvalidCursor: a list cursor this service did not produce for this query.
	ErrInvalidCursor = errors.New("agent: invalid cursor")
	// ErrUnavailable: the store is unreachable or throttling; the caller may retry.
	ErrUnavailable = errors.New("agent: unavailable")
)

// detailed is a sentinel with a message meant for a person; natsapi sends Detail() on
// the wire, so only domain code (never a lower layer's error text) builds one.
type detailed struct {
	kind   error
	detail string
}

func (e *detailed) Error() string  { return e.kind.Error() + ": " + e.detail }
func (e *detailed) Unwrap() error  { return e.kind }
func (e *detailed) Detail() string { return e.detail }

func errorf(kind error, format string, args ...any) error {
	return &detailed{kind: kind, detail: fmt.Sprintf(format, args...)}
}

// ValidationError names the request field that breaks a rule (it is an ErrInvalid).
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "agent: invalid " + e.Field + ": " + e.Message }
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// notFound is the one answer for an agent the caller cannot see.
func notFound() error { return errorf(ErrNotFound, "agent not found") }
