package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// The errors this package returns. Each call builds a fresh *natsrpc.Error so no caller
// can change another's. Details never echo the credential.

func errAmbiguous() *natsrpc.Error {
	return natsrpc.BadRequest(natsrpc.CodeAmbiguousCredentials,
		"send either an Authorization bearer token or an x-api-key, not both")
}

func errUnauthenticated() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeUnauthorized, "authentication required")
}

func errBadToken() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeUnauthorized, "invalid bearer token")
}

func errExpired() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeTokenExpired, "token has expired")
}

func errBadAPIKey() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeUnauthorized, "invalid API key")
}

func errAuthUnavailable() *natsrpc.Error {
	return natsrpc.NewError(http.StatusServiceUnavailable, natsrpc.CodeAuthUnavailable,
		"the identity provider's signing keys are unavailable; try again shortly")
}

func errInvalidTenantID() *natsrpc.Error {
	return natsrpc.BadRequest(natsrpc.CodeInvalidTenantID, "x-tenant-id must be one lower-case UUID")
}

func errInvalidTenantClaim() *natsrpc.Error {
	return natsrpc.BadRequest(natsrpc.CodeInvalidTenantID, "the token's tenant_id claim is not a lower-case UUID")
}

func errTenantRequired(several bool) *natsrpc.Error {
	if several {
		return natsrpc.BadRequest(natsrpc.CodeTenantRequired,
			"you belong to several tenants: choose one with the x-tenant-id header")
	}
	return natsrpc.BadRequest(natsrpc.CodeTenantRequired,
		"you belong to no tenant: create one or name one with the x-tenant-id header")
}

func errNotMember() *natsrpc.Error {
	return natsrpc.Forbidden("you are not a member of this tenant")
}

func errBoundElsewhere() *natsrpc.Error {
	return natsrpc.Forbidden("this credential belongs to another tenant than x-tenant-id names")
}

func errTenantNotFound() *natsrpc.Error {
	return natsrpc.NotFound("tenant not found")
}

func errTenantGone() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeTokenRevoked, "this token's tenant no longer exists")
}

func errCredentialRevoked() *natsrpc.Error {
	return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeTokenRevoked,
		"this token's SSH key was revoked or deleted, or its agent was deleted")
}

// lookupError keeps a lookup's error as it is (an outage stays a 503/504, never a
// 401/403/404) and classifies anything else; service names the one that was asked.
func lookupError(err error, service string) error {
	if e, ok := natsrpc.AsError(err); ok {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, service+" service timed out")
	}
	return natsrpc.Unavailable(service + " service unavailable")
}

// waitError is what a request gets when its own context ends while it waits for a lookup.
func waitError() error {
	return natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "request ended while waiting for a lookup")
}

func isNotFound(err error) bool {
	e, ok := natsrpc.AsError(err)
	return ok && e.Status == http.StatusNotFound
}
