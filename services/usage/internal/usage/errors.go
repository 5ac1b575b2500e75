package usage

import (
	"errors"

	"github.com/artcafe-ai/pubsub/services/kit/domain"
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

// errorf builds a domain error: kind, with a message meant for a person.
var errorf = domain.Errorf
