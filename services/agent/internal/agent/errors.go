package agent

import (
	"errors"

	"github.com/artcafe-ai/pubsub/services/kit/domain"
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

// errorf builds a domain error: kind, with a message meant for a person.
var errorf = domain.Errorf

// ValidationError names the request field that breaks a rule (it is an ErrInvalid).
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "agent: invalid " + e.Field + ": " + e.Message }
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// notFound is the one answer for an agent the caller cannot see.
func notFound() error { return errorf(ErrNotFound, "agent not found") }
