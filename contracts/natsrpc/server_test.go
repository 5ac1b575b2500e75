package natsrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

type echoReq struct {
	Text string `json:"text"`
}

type echoResp struct {
	Text string `json:"text"`
}

func echo(_ context.Context, req *echoReq) (*echoResp, error) {
	return &echoResp{Text: strings.ToUpper(req.Text)}, nil
}

// 1. A typed request reaches the handler with the caller's identity, a deadline and a
// request logger; the typed reply comes back.
func TestCallRoundTrip(t *testing.T) {
	r := newRig(t)
	srv := r.server()

	type seen struct {
		id          natsrpc.Identity
		hasDeadline bool
		req         echoReq
	}
	seenCh := make(chan seen, 1)
	r.service(t, map[string]micro.Handler{
		"echo": natsrpc.Handle(srv, "echo", func(ctx context.Context, req *echoReq) (*echoResp, error) {
			_, ok := ctx.Deadline()
			zerolog.Ctx(ctx).Info().Msg("inside handler")
			seenCh <- seen{id: natsrpc.IdentityFrom(ctx), hasDeadline: ok, req: *req}
			return echo(ctx, req)
		}),
	})

	id := natsrpc.Identity{
		RequestID:     "req-round-trip",
		TenantID:      "3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c",
		Kind:          natsrpc.KindUser,
		PrincipalID:   "user-42",
		Role:          natsrpc.RoleAdmin,
		Email:         "someone@example.com",
		PlatformAdmin: true,
		Plan:          "pro",
		ClientIP:      "192.0.2.7",
	}
	ctx := natsrpc.WithIdentity(ctxTimeout(t, 10*time.Second), id)
	var resp echoResp
	if err := r.client.Call(ctx, subject("echo"), echoReq{Text: "hello"}, &resp); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if resp.Text != "HELLO" {
		t.Fatalf("resp = %+v, want HELLO", resp)
	}

	got := receive(t, seenCh, "handler")
	if got.id != id {
		t.Errorf("handler identity = %+v, want %+v", got.id, id)
	}
	if !got.hasDeadline {
		t.Error("handler context has no deadline")
	}
	if got.req.Text != "hello" {
		t.Errorf("handler req = %+v", got.req)
	}

	var inside, access map[string]any
	for _, l := range r.logs.lines(t) {
		switch l["message"] {
		case "inside handler":
			inside = l
		case "request":
			access = l
		}
	}
	if inside == nil {
		t.Fatal("zerolog.Ctx(ctx) in the handler did not log through the server's logger")
	}
	for k, want := range map[string]any{"request_id": id.RequestID, "op": "echo", "tenant_id": id.TenantID} {
		if inside[k] != want {
			t.Errorf("handler log %s = %v, want %v", k, inside[k], want)
		}
	}
	if access == nil {
		t.Fatal("no per-request log line")
	}
	if access["status"] != float64(http.StatusOK) || access["request_id"] != id.RequestID || access["duration"] == nil {
		t.Errorf("request log line = %v", access)
	}
}

// The identity travels as the documented headers, and an unset field sends no header.
func TestIdentityHeadersOnTheWire(t *testing.T) {
	r := newRig(t)
	hdrs := make(chan nats.Header, 2)
	sub, err := r.svcNC.Subscribe(subject("raw"), func(m *nats.Msg) {
		hdrs <- m.Header
		_ = m.Respond([]byte(`{}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := r.svcNC.Flush(); err != nil {
		t.Fatal(err)
	}

	full := natsrpc.Identity{
		RequestID: "r1", TenantID: "t1", Kind: natsrpc.KindAgent, PrincipalID: "agent-1",
		Role: natsrpc.RoleMember, Email: "e@x.io", PlatformAdmin: true,
	}
	if err := r.client.Call(natsrpc.WithIdentity(ctxTimeout(t, 10*time.Second), full), subject("raw"), nil, nil); err != nil {
		t.Fatal(err)
	}
	h := receive(t, hdrs, "headers")
	for k, want := range map[string]string{
		natsrpc.HeaderRequestID:     "r1",
		natsrpc.HeaderTenantID:      "t1",
		natsrpc.HeaderPrincipalKind: "agent",
		natsrpc.HeaderPrincipalID:   "agent-1",
		natsrpc.HeaderRole:          "member",
		natsrpc.HeaderEmail:         "e@x.io",
		natsrpc.HeaderPlatformAdmin: "true",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if h.Get(natsrpc.HeaderBudget) == "" {
		t.Error("no budget header although the call has a deadline")
	}

	// No identity: only the budget header goes out.
	if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("raw"), nil, nil); err != nil {
		t.Fatal(err)
	}
	h = receive(t, hdrs, "headers")
	for _, k := range []string{natsrpc.HeaderRequestID, natsrpc.HeaderTenantID, natsrpc.HeaderPrincipalKind,
		natsrpc.HeaderPrincipalID, natsrpc.HeaderRole, natsrpc.HeaderEmail, natsrpc.HeaderPlatformAdmin} {
		if _, ok := h[k]; ok {
			t.Errorf("header %s sent for the zero identity: %q", k, h.Get(k))
		}
	}
}

// 2. Nobody serving the subject is a 503 at once, not a 504 after the deadline.
func TestCallNoResponders(t *testing.T) {
	r := newRig(t)
	// A long deadline: had the client waited for it, the result would be 504 instead.
	err := r.client.Call(ctxTimeout(t, time.Minute), subject("nobody"), echoReq{Text: "x"}, &echoResp{})
	wantError(t, err, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
}

// 3a. A handler slower than the caller's deadline: the caller gets 504.
func TestCallCallerDeadline(t *testing.T) {
	r := newRig(t)
	srv := r.server(natsrpc.WithTimeout(time.Minute))
	release := make(chan struct{})
	r.service(t, map[string]micro.Handler{
		"slow": natsrpc.Handle(srv, "slow", func(context.Context, *echoReq) (*echoResp, error) {
			<-release // ignores its context on purpose: only the caller's deadline can end the call
			return &echoResp{}, nil
		}),
	})
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := r.client.Call(ctx, subject("slow"), echoReq{}, &echoResp{})
	wantError(t, err, http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
}

// 3b. The server's own timeout cancels the handler's context; returning ctx.Err() is a 504.
func TestServerTimeoutCancelsHandler(t *testing.T) {
	r := newRig(t)
	srv := r.server(natsrpc.WithTimeout(100 * time.Millisecond))
	ctxErr := make(chan error, 1)
	r.service(t, map[string]micro.Handler{
		"wait": natsrpc.Handle(srv, "wait", func(ctx context.Context, _ *echoReq) (*echoResp, error) {
			<-ctx.Done()
			ctxErr <- ctx.Err()
			return nil, ctx.Err()
		}),
	})

	// The caller waits much longer than the server allows, so the 504 must be the server's.
	err := r.client.Call(ctxTimeout(t, time.Minute), subject("wait"), echoReq{}, &echoResp{})
	e := wantError(t, err, http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
	if got := receive(t, ctxErr, "handler ctx"); !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("handler ctx.Err() = %v, want DeadlineExceeded", got)
	}
	if e.Detail == "" {
		t.Error("504 without detail")
	}
}

// 3c. The caller's remaining budget travels in a header and bounds the handler's
// context even when the server allows much more; the server's bound wins when smaller.
func TestBudgetBoundsHandlerDeadline(t *testing.T) {
	r := newRig(t)
	remaining := make(chan time.Duration, 1)
	capture := func(ctx context.Context, req *echoReq) (*echoResp, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			remaining <- -1
		} else {
			remaining <- time.Until(dl)
		}
		return echo(ctx, req)
	}
	srvLong := r.server(natsrpc.WithTimeout(5 * time.Second))
	r.service(t, map[string]micro.Handler{"capture": natsrpc.Handle(srvLong, "capture", capture)})

	// 500ms rather than less: the call itself must still succeed on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := r.client.Call(ctx, subject("capture"), echoReq{}, &echoResp{}); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got := receive(t, remaining, "deadline"); got <= 0 || got > 500*time.Millisecond {
		t.Errorf("handler budget = %v, want within (0, 500ms] (caller's deadline, not the server's 5s)", got)
	}

	// The other way round: a caller willing to wait a minute still gets the server's bound.
	r2 := newRig(t)
	srvShort := r2.server(natsrpc.WithTimeout(300 * time.Millisecond))
	r2.service(t, map[string]micro.Handler{"capture": natsrpc.Handle(srvShort, "capture", capture)})
	if err := r2.client.Call(ctxTimeout(t, time.Minute), subject("capture"), echoReq{}, &echoResp{}); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got := receive(t, remaining, "deadline"); got <= 0 || got > 300*time.Millisecond {
		t.Errorf("handler budget = %v, want within (0, 300ms] (server timeout)", got)
	}
}

// 4. Errors returned by a handler reach the caller intact; anything that is not a
// *natsrpc.Error becomes a 500 that does not leak its text.
func TestHandlerErrors(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	const secret = "dial tcp 10.0.0.7:8000: password=hunter2"
	cases := []struct {
		op   string
		err  error
		want *natsrpc.Error
	}{
		{"not_found", natsrpc.NotFound("agent not found"), natsrpc.NotFound("agent not found")},
		{"conflict", natsrpc.Conflict("fingerprint already registered"), natsrpc.Conflict("fingerprint already registered")},
		{"invalid", natsrpc.Invalid(
			natsrpc.FieldError{Field: "name", Message: "is required"},
			natsrpc.FieldError{Field: "website", Message: "must be an https URL"},
		), natsrpc.Invalid(
			natsrpc.FieldError{Field: "name", Message: "is required"},
			natsrpc.FieldError{Field: "website", Message: "must be an https URL"},
		)},
		{"invalid_one", natsrpc.Invalid(natsrpc.FieldError{Field: "role", Message: "must be one of a, b"}),
			natsrpc.Invalid(natsrpc.FieldError{Field: "role", Message: "must be one of a, b"})},
		{"plan_limit", natsrpc.PlanLimit("agents: 5 of 5 (basic)"), natsrpc.PlanLimit("agents: 5 of 5 (basic)")},
		{"forbidden", natsrpc.Forbidden("owners only"), natsrpc.Forbidden("owners only")},
		{"wrapped", fmt.Errorf("repo: %w", natsrpc.NotFound("channel not found")), natsrpc.NotFound("channel not found")},
		{"plain", errors.New(secret), natsrpc.Internal()},
	}
	handlers := map[string]micro.Handler{}
	for _, c := range cases {
		handlers[c.op] = natsrpc.Handle(srv, c.op, func(context.Context, *echoReq) (*echoResp, error) {
			return nil, c.err
		})
	}
	r.service(t, handlers)

	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			err := r.client.Call(ctxTimeout(t, 10*time.Second), subject(c.op), echoReq{}, &echoResp{})
			e := wantError(t, err, c.want.Status, c.want.Code)
			if e.Detail != c.want.Detail {
				t.Errorf("detail = %q, want %q", e.Detail, c.want.Detail)
			}
			if !slices.Equal(e.Errors, c.want.Errors) {
				t.Errorf("errors = %+v, want %+v", e.Errors, c.want.Errors)
			}
			if strings.Contains(e.Detail, "hunter2") || strings.Contains(e.Detail, "10.0.0.7") {
				t.Errorf("detail leaks the internal error: %q", e.Detail)
			}
		})
	}
	// The real error is logged (under the request id) where it was handled.
	var logged bool
	for _, l := range r.logs.lines(t) {
		if l["op"] == "plain" && l["error"] == secret {
			logged = true
		}
	}
	if !logged {
		t.Error("the internal error was not logged")
	}
}

// 5. Replies that do not follow the protocol still come back as typed errors.
func TestMalformedReplies(t *testing.T) {
	r := newRig(t)
	raw := func(code, desc string, body []byte) micro.Handler {
		return micro.HandlerFunc(func(req micro.Request) {
			if code == "" {
				_ = req.Respond(body)
				return
			}
			_ = req.Error(code, desc, body)
		})
	}
	r.service(t, map[string]micro.Handler{
		"garbage_404":     raw("404", "gone away", []byte("<<garbage>>")),
		"no_code_409":     raw("409", "clash", []byte(`{"detail":"only a detail"}`)),
		"empty_503":       raw("503", "down", nil),
		"non_numeric":     raw("teapot", "weird", []byte("x")),
		"out_of_range":    raw("200", "not an error status", []byte("x")),
		"garbage_success": raw("", "", []byte("<<not json>>")),
	})

	cases := []struct {
		op     string
		status int
		code   string
		detail string
	}{
		{"garbage_404", http.StatusNotFound, natsrpc.CodeNotFound, "gone away"},
		{"no_code_409", http.StatusConflict, natsrpc.CodeConflict, "clash"},
		{"empty_503", http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable, "down"},
		{"non_numeric", http.StatusBadGateway, natsrpc.CodeBadGateway, "weird"},
		{"out_of_range", http.StatusBadGateway, natsrpc.CodeBadGateway, "not an error status"},
		{"garbage_success", http.StatusBadGateway, natsrpc.CodeBadGateway, ""},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			err := r.client.Call(ctxTimeout(t, 10*time.Second), subject(c.op), echoReq{}, &echoResp{})
			e := wantError(t, err, c.status, c.code)
			if c.detail != "" && e.Detail != c.detail {
				t.Errorf("detail = %q, want %q", e.Detail, c.detail)
			}
		})
	}

	// A caller that discards the reply does not care whether it decodes.
	if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("garbage_success"), nil, nil); err != nil {
		t.Errorf("Call with nil resp = %v, want nil", err)
	}
}

// 6. A panic is a 500 and the service goes on answering.
func TestHandlerPanic(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	r.service(t, map[string]micro.Handler{
		"boom": natsrpc.Handle(srv, "boom", func(_ context.Context, req *echoReq) (*echoResp, error) {
			if req.Text == "panic" {
				panic("something broke")
			}
			return &echoResp{Text: "fine"}, nil
		}),
	})

	err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("boom"), echoReq{Text: "panic"}, &echoResp{})
	e := wantError(t, err, http.StatusInternalServerError, natsrpc.CodeInternal)
	if strings.Contains(e.Detail, "something broke") {
		t.Errorf("panic value leaked: %q", e.Detail)
	}

	for i := range 3 { // the same endpoint, and the process, survive
		var resp echoResp
		if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("boom"), echoReq{Text: "ok"}, &resp); err != nil || resp.Text != "fine" {
			t.Fatalf("call %d after the panic: %v %+v", i, err, resp)
		}
	}
	var logged bool
	for _, l := range r.logs.lines(t) {
		if l["message"] == "handler panicked" && l["panic"] == "something broke" && l["stack"] != nil {
			logged = true
		}
	}
	if !logged {
		t.Error("the panic was not logged with its stack")
	}
}

// checkedReq validates itself: a missing name is a field error, mode "bad" a plain error.
type checkedReq struct {
	Name  string `json:"name"`
	Mode  string `json:"mode"`
	Count int    `json:"count"`
}

func (c *checkedReq) Validate() error {
	if c.Mode == "bad" {
		return errors.New("mode is not supported")
	}
	if c.Name == "" {
		return natsrpc.Invalid(natsrpc.FieldError{Field: "name", Message: "is required"})
	}
	return nil
}

// 7. Request decoding and validation happen before the handler runs.
func TestDecodeAndValidate(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	var called atomic.Int32
	zeroSeen := make(chan echoReq, 1)
	r.service(t, map[string]micro.Handler{
		"echo": natsrpc.Handle(srv, "echo", func(_ context.Context, req *echoReq) (*echoResp, error) {
			zeroSeen <- *req
			return &echoResp{Text: "empty:" + req.Text}, nil
		}),
		"checked": natsrpc.Handle(srv, "checked", func(_ context.Context, req *checkedReq) (*echoResp, error) {
			called.Add(1)
			return &echoResp{Text: req.Name}, nil
		}),
	})

	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{`{not json`, `[1,2]`, `{"name": 5}`, `"str"`} {
			reply, err := r.callNC.Request(subject("checked"), []byte(body), 10*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if got := reply.Header.Get(micro.ErrorCodeHeader); got != "400" {
				t.Errorf("%s: error code header = %q, want 400", body, got)
			}
			e := natsrpc.ReplyError(reply)
			if e == nil || e.Status != http.StatusBadRequest || e.Code != natsrpc.CodeInvalidJSON {
				t.Errorf("%s: got %v, want 400 invalid_json", body, e)
			}
		}
	})

	t.Run("empty body is the zero request", func(t *testing.T) {
		var resp echoResp
		if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("echo"), nil, &resp); err != nil {
			t.Fatal(err)
		}
		if got := receive(t, zeroSeen, "handler"); got != (echoReq{}) {
			t.Errorf("handler got %+v, want zero", got)
		}
		if resp.Text != "empty:" {
			t.Errorf("resp = %+v", resp)
		}
	})

	t.Run("Validate returns a field error", func(t *testing.T) {
		err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("checked"), checkedReq{}, &echoResp{})
		e := wantError(t, err, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
		want := []natsrpc.FieldError{{Field: "name", Message: "is required"}}
		if !slices.Equal(e.Errors, want) {
			t.Errorf("errors = %+v, want %+v", e.Errors, want)
		}
	})

	t.Run("Validate returns a plain error", func(t *testing.T) {
		err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("checked"), checkedReq{Name: "n", Mode: "bad"}, &echoResp{})
		e := wantError(t, err, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
		if len(e.Errors) != 1 || !strings.Contains(e.Errors[0].Message, "mode is not supported") {
			t.Errorf("errors = %+v", e.Errors)
		}
	})

	t.Run("empty body is validated too", func(t *testing.T) {
		err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("checked"), nil, &echoResp{})
		wantError(t, err, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	})

	if n := called.Load(); n != 0 {
		t.Errorf("handler ran %d times for requests that failed decoding or validation", n)
	}

	var resp echoResp
	if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("checked"), checkedReq{Name: "ok", Mode: "good"}, &resp); err != nil || resp.Text != "ok" {
		t.Fatalf("valid request: %v %+v", err, resp)
	}
}

// 8a. No more than WithMaxConcurrency handlers run at once; the rest wait and then finish.
func TestMaxConcurrency(t *testing.T) {
	const limit, calls = 4, 10
	r := newRig(t)
	srv := r.server(natsrpc.WithMaxConcurrency(limit), natsrpc.WithTimeout(time.Minute))
	var running, peak atomic.Int32
	started := make(chan struct{}, calls)
	release := make(chan struct{})
	r.service(t, map[string]micro.Handler{
		"block": natsrpc.Handle(srv, "block", func(_ context.Context, req *echoReq) (*echoResp, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			started <- struct{}{}
			<-release
			running.Add(-1)
			return &echoResp{Text: req.Text}, nil
		}),
	})
	// A plain subscriber on the same subject sees every request as the server routes it,
	// so we know when all of them have reached the service's connection.
	arrived := make(chan struct{}, calls)
	spy, err := r.callNC.Subscribe(subject("block"), func(*nats.Msg) { arrived <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spy.Unsubscribe() })
	if err := r.callNC.Flush(); err != nil {
		t.Fatal(err)
	}

	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			var resp echoResp
			err := r.client.Call(ctxTimeout(t, time.Minute), subject("block"), echoReq{Text: fmt.Sprint(i)}, &resp)
			if err == nil && resp.Text != fmt.Sprint(i) {
				err = fmt.Errorf("call %d got %q", i, resp.Text)
			}
			errs <- err
		}()
	}
	for range limit {
		receive(t, started, "a handler to start")
	}
	for range calls {
		receive(t, arrived, "every request to be routed")
	}
	// Give a wrongly admitted fifth handler a chance to show up before checking.
	time.Sleep(100 * time.Millisecond)
	if n := running.Load(); n != limit {
		t.Fatalf("%d handlers running with every slot taken, want %d", n, limit)
	}

	close(release)
	for range calls {
		if err := receive(t, errs, "a call to finish"); err != nil {
			t.Errorf("call: %v", err)
		}
	}
	if p := peak.Load(); p != limit {
		t.Errorf("peak concurrency = %d, want %d", p, limit)
	}
}

// 8b. A slow request does not hold up a fast one on the same endpoint.
func TestSlowRequestDoesNotBlockFast(t *testing.T) {
	r := newRig(t)
	srv := r.server(natsrpc.WithMaxConcurrency(4), natsrpc.WithTimeout(time.Minute))
	slowStarted := make(chan struct{})
	release := make(chan struct{})
	r.service(t, map[string]micro.Handler{
		"mixed": natsrpc.Handle(srv, "mixed", func(_ context.Context, req *echoReq) (*echoResp, error) {
			if req.Text == "slow" {
				close(slowStarted)
				<-release
			}
			return &echoResp{Text: req.Text}, nil
		}),
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	slowDone := make(chan error, 1)
	go func() {
		slowDone <- r.client.Call(ctxTimeout(t, time.Minute), subject("mixed"), echoReq{Text: "slow"}, &echoResp{})
	}()
	receive(t, slowStarted, "the slow handler")

	var resp echoResp
	if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("mixed"), echoReq{Text: "fast"}, &resp); err != nil || resp.Text != "fast" {
		t.Fatalf("fast call: %v %+v", err, resp)
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow call finished before it was released: %v", err)
	default:
	}
	close(release)
	if err := receive(t, slowDone, "the slow call"); err != nil {
		t.Fatalf("slow call: %v", err)
	}
}

// 9. Wait returns once the requests in flight have been answered.
func TestServerWait(t *testing.T) {
	r := newRig(t)
	srv := r.server(natsrpc.WithTimeout(time.Minute))
	started := make(chan struct{})
	release := make(chan struct{})
	svc := r.service(t, map[string]micro.Handler{
		"block": natsrpc.Handle(srv, "block", func(context.Context, *echoReq) (*echoResp, error) {
			close(started)
			<-release
			return &echoResp{Text: "done"}, nil
		}),
	})

	// Nothing in flight: Wait returns at once.
	if err := srv.Wait(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatalf("Wait with nothing in flight: %v", err)
	}

	callDone := make(chan error, 1)
	var resp echoResp
	go func() {
		callDone <- r.client.Call(ctxTimeout(t, time.Minute), subject("block"), echoReq{}, &resp)
	}()
	receive(t, started, "the handler")
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}

	// A Wait bounded by a short context gives up with the context's error.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a request in flight and an expired ctx = %v, want DeadlineExceeded", err)
	}

	waitDone := make(chan error, 1)
	go func() { waitDone <- srv.Wait(ctxTimeout(t, time.Minute)) }()
	select {
	case err := <-waitDone:
		t.Fatalf("Wait returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := receive(t, waitDone, "Wait"); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	// The reply went out before Wait returned, so the caller gets it.
	if err := receive(t, callDone, "the call"); err != nil || resp.Text != "done" {
		t.Fatalf("in-flight call: %v %+v", err, resp)
	}
}

// Wait may run while requests start (micro's Stop drains asynchronously, so delivered
// messages still reach Handle after it): -race must stay quiet and every Wait returns.
func TestServerWaitConcurrentWithNewRequests(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	r.service(t, map[string]micro.Handler{"echo": natsrpc.Handle(srv, "echo", echo)})
	for range 100 {
		waited := make(chan error, 1)
		go func() { waited <- srv.Wait(ctxTimeout(t, 10*time.Second)) }()
		if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("echo"), echoReq{}, &echoResp{}); err != nil {
			t.Fatal(err)
		}
		if err := receive(t, waited, "Wait"); err != nil {
			t.Fatal(err)
		}
	}
}

// A zero or negative limit (say, an unset config value) keeps the default instead of
// stalling or panicking.
func TestMaxConcurrencyNonPositive(t *testing.T) {
	for _, n := range []int{0, -1} {
		r := newRig(t)
		srv := r.server(natsrpc.WithMaxConcurrency(n))
		r.service(t, map[string]micro.Handler{"echo": natsrpc.Handle(srv, "echo", echo)})
		var resp echoResp
		if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("echo"), echoReq{Text: "a"}, &resp); err != nil || resp.Text != "A" {
			t.Errorf("WithMaxConcurrency(%d): %v %+v", n, err, resp)
		}
	}
}

// 10. Services built on these handlers are discoverable through micro's $SRV subjects.
func TestMicroDiscovery(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	svc := r.service(t, map[string]micro.Handler{
		"echo": natsrpc.Handle(srv, "echo", echo),
		"ping": natsrpc.Handle(srv, "ping", echo),
	})
	if err := r.client.Call(ctxTimeout(t, 10*time.Second), subject("echo"), echoReq{Text: "x"}, &echoResp{}); err != nil {
		t.Fatal(err)
	}

	reply, err := r.callNC.Request("$SRV.PING.test", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("$SRV.PING: %v", err)
	}
	var ping micro.Ping
	if err := json.Unmarshal(reply.Data, &ping); err != nil {
		t.Fatal(err)
	}
	if ping.Name != "test" || ping.Version != "1.2.3" || ping.ID != svc.Info().ID {
		t.Errorf("ping = %+v", ping)
	}

	reply, err = r.callNC.Request("$SRV.INFO.test", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("$SRV.INFO: %v", err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "1.2.3" || info.Description != "natsrpc test service" ||
		info.Metadata["git_sha"] != "abc123" || info.Metadata["contract_version"] != "1.0.0" {
		t.Errorf("info = %+v", info)
	}
	var subjects []string
	for _, e := range info.Endpoints {
		subjects = append(subjects, e.Subject)
	}
	slices.Sort(subjects)
	if want := []string{subject("echo"), subject("ping")}; !slices.Equal(subjects, want) {
		t.Errorf("endpoint subjects = %v, want %v", subjects, want)
	}

	// micro counts a request once the endpoint's handler returns, which may be just after
	// the reply went out; poll briefly.
	var echoed int
	for range 50 {
		reply, err = r.callNC.Request("$SRV.STATS.test", nil, 10*time.Second)
		if err != nil {
			t.Fatalf("$SRV.STATS: %v", err)
		}
		var stats micro.Stats
		if err := json.Unmarshal(reply.Data, &stats); err != nil {
			t.Fatal(err)
		}
		for _, e := range stats.Endpoints {
			if e.Subject == subject("echo") {
				echoed = e.NumRequests
			}
		}
		if echoed == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if echoed != 1 {
		t.Errorf("stats num_requests for echo = %d, want 1", echoed)
	}
}

// 11. The observer sees every handled request with its op, status and duration.
func TestObserver(t *testing.T) {
	type observation struct {
		op     string
		status int
		d      time.Duration
	}
	var mu sync.Mutex
	var seen []observation
	got := make(chan struct{}, 10)
	obs := func(op string, status int, d time.Duration) {
		mu.Lock()
		seen = append(seen, observation{op, status, d})
		mu.Unlock()
		got <- struct{}{}
	}
	r := newRig(t)
	srv := r.server(natsrpc.WithObserver(obs))
	r.service(t, map[string]micro.Handler{
		"ok": natsrpc.Handle(srv, "ok", func(context.Context, *echoReq) (*echoResp, error) {
			time.Sleep(5 * time.Millisecond) // so the duration cannot be zero
			return &echoResp{}, nil
		}),
		"missing": natsrpc.Handle(srv, "missing", func(context.Context, *echoReq) (*echoResp, error) {
			return nil, natsrpc.NotFound("nope")
		}),
		"broken": natsrpc.Handle(srv, "broken", func(context.Context, *echoReq) (*echoResp, error) {
			return nil, errors.New("disk on fire")
		}),
	})
	for _, op := range []string{"ok", "missing", "broken"} {
		_ = r.client.Call(ctxTimeout(t, 10*time.Second), subject(op), echoReq{}, &echoResp{})
		receive(t, got, "observation of "+op)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"ok": http.StatusOK, "missing": http.StatusNotFound, "broken": http.StatusInternalServerError}
	if len(seen) != len(want) {
		t.Fatalf("observations = %+v", seen)
	}
	for _, o := range seen {
		if want[o.op] != o.status {
			t.Errorf("%s observed with status %d, want %d", o.op, o.status, want[o.op])
		}
	}
	if seen[0].op != "ok" || seen[0].d < 5*time.Millisecond {
		t.Errorf("ok observed with duration %v, want at least the handler's 5ms", seen[0].d)
	}
}

// preEncoded is a reply that already holds its JSON.
type preEncoded struct{ json []byte }

func (p *preEncoded) EncodedJSON() []byte { return p.json }

func TestEncodedReplyAndCallRaw(t *testing.T) {
	r := newRig(t)
	srv := r.server()
	const stored = `{"agent":{"id":"X","n":12345678901234567890}}`
	r.service(t, map[string]micro.Handler{
		"raw": natsrpc.Handle(srv, "raw", func(ctx context.Context, _ *echoReq) (*preEncoded, error) {
			return &preEncoded{json: []byte(stored)}, nil
		}),
	})
	ctx := ctxTimeout(t, 10*time.Second)
	got, err := r.client.CallRaw(ctx, subject("raw"), echoReq{Text: "x"})
	if err != nil {
		t.Fatalf("CallRaw: %v", err)
	}
	if string(got) != stored {
		t.Fatalf("CallRaw = %s, want the bytes as the handler encoded them: %s", got, stored)
	}
	_, err = r.client.CallRaw(ctx, subject("missing"), nil)
	wantError(t, err, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
}
