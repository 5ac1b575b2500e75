package tenant

import (
	"errors"

	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Sentinel errors of the tenant domain; natsapi maps each to one wire code.
var (
	// ErrNotFound: no such tenant or member (or the caller may not know it exists).
	ErrNotFound = errors.New("tenant: not found")
	// ErrConflict: the item exists already, or it changed under us too often.
	ErrConflict = errors.New("tenant: conflict")
	// ErrForbidden: the caller is known but not allowed to do this.
	ErrForbidden = errors.New("tenant: forbidden")
	// ErrLastOwner: the change would leave the tenant without an owner.
	ErrLastOwner = errors.New("tenant: last owner")
	// ErrTooManyTenants: the user owns MaxOwnedTenants already.
	ErrTooManyTenants = errors.New("tenant: too many owned tenants")
	// ErrInvalid: a request value breaks a rule that depends on the caller (ValidationError).
	ErrInvalid = errors.New("tenant: invalid")
	// ErrInvalidCursor: a list cursor this service did not produce.
	ErrInvalidCursor = errors.New("tenant: invalid cursor")
	// ErrUnavailable: the store or the event stream is unreachable; the caller may retry.
	ErrUnavailable = errors.New("tenant: unavailable")
)

// errorf builds a domain error: kind, with a message meant for a person.
var errorf = domain.Errorf

// ValidationError names the request field that breaks a rule (it is an ErrInvalid).
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "tenant: invalid " + e.Field + ": " + e.Message }
func (e *ValidationError) Unwrap() error { return ErrInvalid }
