package natsrpc_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

func TestReplyErrorOnSuccessReply(t *testing.T) {
	for name, m := range map[string]*nats.Msg{
		"no headers":            {Data: []byte(`{"ok":true}`)},
		"unrelated headers":     {Header: nats.Header{"X-Other": []string{"1"}}, Data: []byte(`{}`)},
		"error text, no status": {Header: nats.Header{micro.ErrorHeader: []string{"x"}}},
	} {
		if e := natsrpc.ReplyError(m); e != nil {
			t.Errorf("%s: ReplyError = %v, want nil", name, e)
		}
	}
}

// Each status falls back to the SPEC code of its class when the body carries none.
func TestReplyErrorDefaultCodes(t *testing.T) {
	cases := map[int]string{
		400: natsrpc.CodeBadRequest,
		401: natsrpc.CodeUnauthorized,
		402: natsrpc.CodePlanLimitExceeded,
		403: natsrpc.CodeForbidden,
		404: natsrpc.CodeNotFound,
		409: natsrpc.CodeConflict,
		413: natsrpc.CodePayloadTooLarge,
		422: natsrpc.CodeValidationFailed,
		429: natsrpc.CodeRateLimited,
		500: natsrpc.CodeInternal,
		502: natsrpc.CodeBadGateway,
		503: natsrpc.CodeServiceUnavailable,
		504: natsrpc.CodeUpstreamTimeout,
		418: natsrpc.CodeInternal, // an unexpected status still gets a code
	}
	for status, code := range cases {
		m := &nats.Msg{Header: nats.Header{}, Data: []byte("not json")}
		m.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(status))
		m.Header.Set(micro.ErrorHeader, "desc")
		e := natsrpc.ReplyError(m)
		if e == nil || e.Status != status || e.Code != code || e.Detail != "desc" {
			t.Errorf("status %d: got %+v, want code %s", status, e, code)
		}
	}
}

// The body's code wins over the default; the header's status wins over anything else.
func TestReplyErrorBodyAndHeader(t *testing.T) {
	m := &nats.Msg{Header: nats.Header{}, Data: []byte(`{"code":"tenant_suspended","detail":"suspended","errors":[{"field":"a","message":"b"}]}`)}
	m.Header.Set(micro.ErrorCodeHeader, "403")
	e := natsrpc.ReplyError(m)
	if e == nil || e.Status != 403 || e.Code != natsrpc.CodeTenantSuspended || e.Detail != "suspended" ||
		len(e.Errors) != 1 || e.Errors[0] != (natsrpc.FieldError{Field: "a", Message: "b"}) {
		t.Errorf("got %+v", e)
	}
}

// The status travels in the header only; the body is {code, detail, errors?}.
func TestErrorJSON(t *testing.T) {
	b, err := json.Marshal(natsrpc.NotFound("gone"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"code":"not_found","detail":"gone"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	b, _ = json.Marshal(natsrpc.Invalid(natsrpc.FieldError{Field: "name", Message: "is required"}))
	if got, want := string(b), `{"code":"validation_failed","detail":"name: is required","errors":[{"field":"name","message":"is required"}]}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestConstructors(t *testing.T) {
	cases := []struct {
		e      *natsrpc.Error
		status int
		code   string
	}{
		{natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "x"), http.StatusBadRequest, natsrpc.CodeInvalidNextToken},
		{natsrpc.Forbidden("x"), http.StatusForbidden, natsrpc.CodeForbidden},
		{natsrpc.NotFound("x"), http.StatusNotFound, natsrpc.CodeNotFound},
		{natsrpc.Conflict("x"), http.StatusConflict, natsrpc.CodeConflict},
		{natsrpc.Internal(), http.StatusInternalServerError, natsrpc.CodeInternal},
		{natsrpc.Unavailable("x"), http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable},
		{natsrpc.PlanLimit("x"), http.StatusPaymentRequired, natsrpc.CodePlanLimitExceeded},
		{natsrpc.Invalid(), http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed},
	}
	for _, c := range cases {
		if c.e.Status != c.status || c.e.Code != c.code || c.e.Detail == "" {
			t.Errorf("%+v: want %d %s with a detail", c.e, c.status, c.code)
		}
	}
	multi := natsrpc.Invalid(natsrpc.FieldError{Field: "a", Message: "x"}, natsrpc.FieldError{Field: "b", Message: "y"})
	if multi.Detail != "request validation failed" || len(multi.Errors) != 2 {
		t.Errorf("Invalid with two fields = %+v", multi)
	}
}

func TestAsError(t *testing.T) {
	wrapped := fmt.Errorf("ctx: %w", natsrpc.Conflict("dup"))
	e, ok := natsrpc.AsError(wrapped)
	if !ok || e.Code != natsrpc.CodeConflict {
		t.Errorf("AsError(wrapped) = %v, %v", e, ok)
	}
	if e, ok := natsrpc.AsError(errors.New("plain")); ok || e != nil {
		t.Errorf("AsError(plain) = %v, %v", e, ok)
	}
	if _, ok := natsrpc.AsError(nil); ok {
		t.Error("AsError(nil) reported an error")
	}
}

func TestRoleRank(t *testing.T) {
	order := []string{natsrpc.RoleViewer, natsrpc.RoleMember, natsrpc.RoleAdmin, natsrpc.RoleOwner}
	for i := 1; i < len(order); i++ {
		if natsrpc.RoleRank(order[i]) <= natsrpc.RoleRank(order[i-1]) {
			t.Errorf("RoleRank(%s) <= RoleRank(%s)", order[i], order[i-1])
		}
	}
	if natsrpc.RoleRank(natsrpc.RoleViewer) <= 0 {
		t.Error("viewer must outrank an unknown role")
	}
	for _, unknown := range []string{"", "Owner", "root", "platform_admin"} {
		if got := natsrpc.RoleRank(unknown); got != 0 {
			t.Errorf("RoleRank(%q) = %d, want 0", unknown, got)
		}
	}
}
