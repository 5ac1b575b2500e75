package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// Client calls micro endpoints. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	timeout time.Duration
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithDefaultTimeout sets the deadline used when the context has none.
func WithDefaultTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.timeout = d }
}

// NewClient returns a client on nc.
func NewClient(nc *nats.Conn, opts ...ClientOption) *Client {
	c := &Client{nc: nc, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Call sends req (JSON; nil sends an empty body) to subject with the identity of ctx as
// headers and decodes the reply into resp (nil discards it).
//
// Failures come back as *Error: no responders → 503 service_unavailable, deadline →
// 504 upstream_timeout, an error reply → its own status and code, a reply that cannot be
// decoded → 502 bad_gateway.
func (c *Client) Call(ctx context.Context, subject string, req, resp any) error {
	data, err := c.CallRaw(ctx, subject, req)
	if err != nil || resp == nil {
		return err
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return NewError(http.StatusBadGateway, CodeBadGateway, "upstream reply could not be decoded")
	}
	return nil
}

// CallRaw is Call returning the success reply's JSON undecoded, for callers that relay
// it (the gateway). Failures are the same *Error values as Call's.
func (c *Client) CallRaw(ctx context.Context, subject string, req any) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: subject, Header: make(nats.Header, identityHeaders)}
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err // a programming error on the caller's side
		}
		msg.Data = b
	}
	deadline, _ := ctx.Deadline()
	IdentityFrom(ctx).writeHeaders(msg.Header, time.Until(deadline))

	reply, err := c.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, transportError(err)
	}
	if e := ReplyError(reply); e != nil {
		return nil, e
	}
	return reply.Data, nil
}

// transportError classifies a failed request: nobody listening is 503, anything that
// ran out of time is 504.
func transportError(err error) *Error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Unavailable("service unavailable, try again shortly")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.Canceled):
		return NewError(http.StatusGatewayTimeout, CodeUpstreamTimeout, "upstream did not answer in time")
	default: // closed or reconnecting connection and the like
		return Unavailable("messaging unavailable, try again shortly")
	}
}

// ReplyError returns the *Error carried by a reply's micro error headers, or nil for a
// success reply.
func ReplyError(reply *nats.Msg) *Error {
	codeHdr := reply.Header.Get(micro.ErrorCodeHeader)
	if codeHdr == "" {
		return nil
	}
	status, err := strconv.Atoi(codeHdr)
	if err != nil || status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	e := &Error{}
	if json.Unmarshal(reply.Data, e) != nil || e.Code == "" {
		e = &Error{Code: defaultCode(status), Detail: reply.Header.Get(micro.ErrorHeader)}
	}
	e.Status = status
	return e
}
