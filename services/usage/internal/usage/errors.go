package usage

import (
	"errors"
	"fmt"
)

// Sentinel errors of the usage domain; natsapi maps each to one wire code.
var (
	// ErrNotFound: no such item (repository level; reads turn it into zeros).
	ErrNotFound = errors.New("usage: not found")
	// ErrConflict: the item changed under us (a concurrent writer); re-read and retry.
	ErrConflict = errors.New("usage: conflict")
	// ErrForbidden: the caller is known but not allowed to read usage.
	ErrForbidden = errors.New("usage: forbidden")
	// ErrUnavailable: the store is unreachable or throttling; the caller may retry.
	ErrUnavailable = errors.New("usage: unavailable")
	// ErrMalformed: an event that no retry can make valid.
	ErrMalformed = errors.New("usage: malformed event")
)

// detailed is a sentinel with a message meant for a person; natsapi sends Detail() on
// the wire, so only domain code builds one.
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
