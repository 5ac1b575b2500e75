package natsrpc

import (
	"errors"
	"fmt"
	"net/http"
)

// Stable error codes (SPEC §13). The HTTP status travels beside the code; the gateway
// renders both unchanged.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeInvalidNextToken     = "invalid_next_token"
	CodeInvalidTenantID      = "invalid_tenant_id"
	CodeTenantRequired       = "tenant_required"
	CodeAmbiguousCredentials = "ambiguous_credentials"
	CodeBadRequest           = "bad_request"
	CodeUnauthorized         = "unauthorized"
	CodeTokenExpired         = "token_expired"
	CodeTokenRevoked         = "token_revoked"
	CodeInvalidSignature     = "invalid_signature"
	CodePlanLimitExceeded    = "plan_limit_exceeded"
	CodeForbidden            = "forbidden"
	CodeTenantSuspended      = "tenant_suspended"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeConflict             = "conflict"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeValidationFailed     = "validation_failed"
	CodePrivateKeyRejected   = "private_key_rejected"
	CodeRateLimited          = "rate_limited"
	CodeMessageQuota         = "message_quota_exceeded"
	CodeConnectionLimit      = "connection_limit_exceeded"
	CodeInternal             = "internal"
	CodeBadGateway           = "bad_gateway"
	CodeServiceUnavailable   = "service_unavailable"
	CodeAuthUnavailable      = "auth_unavailable"
	CodeUpstreamTimeout      = "upstream_timeout"
)

// FieldError names one invalid field of a request body.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the one error type of the wire. Status is HTTP-class and travels in the
// Nats-Service-Error-Code header; Code, Detail and Errors travel in the JSON body.
type Error struct {
	Status int          `json:"-"`
	Code   string       `json:"code"`
	Detail string       `json:"detail"`
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, tells a rate-limited caller when to try again; the gateway
	// sends it as the Retry-After header.
	RetryAfter int `json:"retry_after,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail)
}

// NewError builds an Error; detail is meant for a person.
func NewError(status int, code, detail string) *Error {
	return &Error{Status: status, Code: code, Detail: detail}
}

// AsError unwraps err into an *Error when it carries one.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// Constructors for the common cases, so call sites read as what they mean.

func BadRequest(code, detail string) *Error { return NewError(http.StatusBadRequest, code, detail) }
func Forbidden(detail string) *Error        { return NewError(http.StatusForbidden, CodeForbidden, detail) }
func NotFound(detail string) *Error         { return NewError(http.StatusNotFound, CodeNotFound, detail) }
func Conflict(detail string) *Error         { return NewError(http.StatusConflict, CodeConflict, detail) }
func Internal() *Error {
	return NewError(http.StatusInternalServerError, CodeInternal, "internal error")
}
func Unavailable(detail string) *Error {
	return NewError(http.StatusServiceUnavailable, CodeServiceUnavailable, detail)
}
func PlanLimit(detail string) *Error {
	return NewError(http.StatusPaymentRequired, CodePlanLimitExceeded, detail)
}

// RateLimited is a 429 rate_limited that may be retried after retryAfter seconds.
func RateLimited(detail string, retryAfter int) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Detail: detail, RetryAfter: retryAfter}
}

// Invalid is a 422 validation failure listing the offending fields.
func Invalid(fields ...FieldError) *Error {
	detail := "request validation failed"
	if len(fields) == 1 {
		detail = fields[0].Field + ": " + fields[0].Message
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed, Detail: detail, Errors: fields}
}

// defaultCode is the code used when a reply carries a status but no parsable body.
func defaultCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusPaymentRequired:
		return CodePlanLimitExceeded
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodePayloadTooLarge
	case http.StatusUnprocessableEntity:
		return CodeValidationFailed
	case http.StatusTooManyRequests:
		return CodeRateLimited
	case http.StatusServiceUnavailable:
		return CodeServiceUnavailable
	case http.StatusGatewayTimeout:
		return CodeUpstreamTimeout
	case http.StatusBadGateway:
		return CodeBadGateway
	}
	return CodeInternal
}
