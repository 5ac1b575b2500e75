package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// ErrorBody is every error response (SPEC §4.1).
type ErrorBody struct {
	Detail    string               `json:"detail" doc:"message for a person"`
	Code      string               `json:"code" doc:"stable snake_case code (SPEC §13)"`
	RequestID string               `json:"request_id" doc:"the X-Request-Id of this request"`
	Errors    []natsrpc.FieldError `json:"errors,omitempty" doc:"the invalid fields (422 only)"`
}

// handleError is the app's one ErrorHandler: it picks the status and renders the body
// for any error a handler or middleware returns. Fiber also calls it for requests that
// fail before routing (body over the limit, malformed request line), so it must not
// rely on the middleware having run.
func (a *api) handleError(c *fiber.Ctx, err error) error {
	info := infoOf(c)
	if info == nil { // failed before the middleware chain: give it an id and a log line
		info = a.newInfo(c)
		defer a.finish(c, info)
	}
	e := a.classify(err)
	if e.Status >= 500 {
		ev := a.log.Error()
		if e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout {
			ev = a.log.Warn() // upstream down or slow: expected now and then, not a bug here
		}
		ev.Err(err).Str("request_id", info.requestID).Str("route", info.route).Int("status", e.Status).Msg("request failed")
	}
	switch e.Status {
	case http.StatusUnauthorized:
		c.Set(fiber.HeaderWWWAuthenticate, "Bearer")
	case http.StatusTooManyRequests:
		// Every 429 says when to come back (SPEC §6); a service that did not say gets 1 s.
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(e.RetryAfter, 1)))
	}
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Status(e.Status).JSON(ErrorBody{Detail: e.Detail, Code: e.Code, RequestID: info.requestID, Errors: e.Errors})
}

// classify maps any error to a wire error. Only *natsrpc.Error and *fiber.Error carry a
// client-facing meaning; everything else is a 500 whose real cause is logged, never sent.
func (a *api) classify(err error) *natsrpc.Error {
	if e, ok := natsrpc.AsError(err); ok {
		if e.Status < 400 || e.Status > 599 {
			return natsrpc.Internal()
		}
		if e.Status == http.StatusInternalServerError {
			return natsrpc.Internal() // never pass an upstream's internal detail through
		}
		return e
	}
	var fe *fiber.Error
	if errors.As(err, &fe) {
		return a.fiberError(fe)
	}
	return natsrpc.Internal()
}

// fiberError turns Fiber's own errors (routing, limits, parse failures) into wire errors
// with a stable code; Fiber's messages can echo the request, so they are not reused.
func (a *api) fiberError(fe *fiber.Error) *natsrpc.Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return natsrpc.NotFound("no such route")
	case fiber.StatusMethodNotAllowed:
		return natsrpc.NewError(fe.Code, natsrpc.CodeMethodNotAllowed, "method not allowed on this route")
	case fiber.StatusRequestEntityTooLarge:
		return natsrpc.NewError(fe.Code, natsrpc.CodePayloadTooLarge, "request body is larger than "+strconv.Itoa(a.bodyLimit)+" bytes")
	case fiber.StatusUnsupportedMediaType:
		return natsrpc.NewError(fe.Code, natsrpc.CodeUnsupportedMediaType, "send the body as application/json")
	case fiber.StatusRequestTimeout:
		return natsrpc.NewError(fe.Code, "request_timeout", "the request was not received in time")
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return natsrpc.NewError(fe.Code, "headers_too_large", "request headers are too large")
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return natsrpc.BadRequest(natsrpc.CodeBadRequest, "malformed request")
	}
	return natsrpc.Internal()
}
