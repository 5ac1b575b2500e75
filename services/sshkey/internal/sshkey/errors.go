package sshkey

import (
	"errors"
	"fmt"

	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"time"
)

// Sentinel errors of the sshkey domain; natsapi maps each to one wire code.
var (
	// ErrNotFound: no such key (or agent, or challenge) in the tenant.
	ErrNotFound = errors.New("sshkey: not found")
	// ErrConflict: the item exists already (a fingerprint taken), or it changed under us
	// too often.
	ErrConflict = errors.New("sshkey: conflict")
	// ErrInvalid: a request value breaks a rule (ValidationError names the field).
	ErrInvalid = errors.New("sshkey: invalid")
	// ErrPrivateKey: a private key was sent where a public key belongs. Its text is never
	// kept, echoed or logged.
	ErrPrivateKey = errors.New("sshkey: private key rejected")
	// ErrPlanLimit: the tenant has as many keys as its plan allows.
	ErrPlanLimit = errors.New("sshkey: plan limit exceeded")
	// ErrLoginFailed: a login attempt failed. Every reason gives the caller the same
	// answer, so the reason stays in the error chain for debugging only.
	ErrLoginFailed = errors.New("sshkey: login failed")
	// ErrRateLimited: too many login requests; RateLimitError says when to retry.
	ErrRateLimited = errors.New("sshkey: rate limited")
	// ErrInvalidCursor: a list cursor this service did not produce for this query.
	ErrInvalidCursor = errors.New("sshkey: invalid cursor")
	// ErrUnavailable: the store or another service is unreachable; the caller may retry.
	ErrUnavailable = errors.New("sshkey: unavailable")
	// ErrScope: the request's identity lacks a valid tenant or plan. The gateway always
	// sends them, so this is a programming error (500, logged), never a client's.
	ErrScope = errors.New("sshkey: request scope missing or invalid")
)

// errorf builds a domain error: kind, with a message meant for a person.
var errorf = domain.Errorf

// ValidationError names the request field that breaks a rule (it is an ErrInvalid).
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string { return "sshkey: invalid " + e.Field + ": " + e.Message }
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// RateLimitError is an ErrRateLimited with the time left until the window ends.
type RateLimitError struct {
	Detail     string
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string { return "sshkey: rate limited: " + e.Detail }
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

// loginFailed is the one failure of a login attempt; why says which step failed, for
// tests and debug logs, never for the caller.
func loginFailed(why string) error {
	return fmt.Errorf("%w: %s", ErrLoginFailed, why)
}
