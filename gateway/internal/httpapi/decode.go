package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// validator is implemented by every contract request body: the same rules the service
// runs, written once in contracts.
type validator interface {
	Validate() error
}

// decodeBody reads a JSON request body into dst and validates it (SPEC §4.1, §13
// "Requests"): JSON when Content-Type is application/json (parameters allowed) or absent,
// else 415; an empty body is {}; malformed JSON is 400 invalid_json; a wrong type is 422
// naming the field; unknown fields are ignored. The body limit (413) is enforced by the
// server before the handler runs.
func decodeBody(c *fiber.Ctx, dst validator) error {
	if err := decodeJSON(c, dst); err != nil {
		return err
	}
	return validate(dst)
}

// decodeJSON is decodeBody without the validation, for handlers that complete the body
// from elsewhere (a header) before validating it.
func decodeJSON(c *fiber.Ctx, dst any) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	body := bytes.TrimSpace(c.Body())
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		if !json.Valid(body) {
			return invalidJSON()
		}
		return natsrpc.Invalid(natsrpc.FieldError{Field: "body", Message: "must be a JSON object"})
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "body"
			}
			return natsrpc.Invalid(natsrpc.FieldError{Field: field, Message: "must be " + jsonKind(te.Type)})
		}
		return invalidJSON()
	}
	return nil
}

// requireJSON accepts a body sent as application/json (parameters allowed) or without a
// Content-Type; anything else is 415.
func requireJSON(c *fiber.Ctx) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != fiber.MIMEApplicationJSON {
			return natsrpc.NewError(http.StatusUnsupportedMediaType, natsrpc.CodeUnsupportedMediaType, "send the body as application/json")
		}
	}
	return nil
}

// validate runs the contract's rules; they return 422s, anything else is wrapped as one.
func validate(v validator) error {
	if err := v.Validate(); err != nil {
		if _, ok := natsrpc.AsError(err); !ok {
			return natsrpc.Invalid(natsrpc.FieldError{Field: "body", Message: err.Error()})
		}
		return err
	}
	return nil
}

func invalidJSON() error {
	return natsrpc.BadRequest(natsrpc.CodeInvalidJSON, "request body is not valid JSON")
}

// jsonKind names the JSON type a Go type decodes from, for field messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of another type"
}

// Page sizes of every list (SPEC §4.1).
const (
	defaultLimit = 50
	maxLimit     = 100
)

// queryLimit reads ?limit=: absent means the default; anything but an integer in 1–100
// is 422.
func queryLimit(c *fiber.Ctx) (int, error) {
	args := c.Context().QueryArgs()
	if !args.Has("limit") {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(string(args.Peek("limit")))
	if err != nil || n < 1 || n > maxLimit {
		return 0, natsrpc.Invalid(natsrpc.FieldError{Field: "limit", Message: "must be an integer between 1 and 100"})
	}
	return n, nil
}
