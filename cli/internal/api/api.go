// Package api is the CLI's HTTP client of the ArtCafe PubSub API (SPEC §4): it sends
// the credentials and tenant the user chose, reads replies whole, and turns error
// replies into *Error with the API's detail, code and request id.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
)

// maxReply bounds a reply read into memory (a history page of 100 messages of 64 KiB
// fits).
const maxReply = 16 << 20

// Error is an error reply of the API: {detail, code, request_id, errors?} with the
// status and Retry-After (contracts/agentlogin's type: the login calls return it too).
type Error = agentlogin.APIError

// Client calls the API at Base (the /api/v1 prefix) as one caller.
type Client struct {
	// Base is the API prefix, e.g. http://127.0.0.1:8000/api/v1.
	Base string
	// Token is sent as Authorization: Bearer; an art_ token is sent as x-api-key instead.
	Token string
	// Tenant, when set, is sent as x-tenant-id.
	Tenant string
	HTTP   *http.Client
}

// New returns a client; base loses its trailing slash.
func New(base, token, tenant string, timeout time.Duration) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, Tenant: tenant, HTTP: &http.Client{Timeout: timeout}}
}

// With returns a copy of c acting with another token and tenant.
func (c *Client) With(token, tenant string) *Client {
	cp := *c
	cp.Token, cp.Tenant = token, tenant
	return &cp
}

// Reply is a successful reply, read whole.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the reply's JSON body into v.
func (r *Reply) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("the reply is not the expected JSON: %w", err)
	}
	return nil
}

// Request is one call. Body is marshalled to JSON unless it is a json.RawMessage or
// []byte, which are sent as they are.
type Request struct {
	Method string
	Path   string // below Base, e.g. /agents
	Query  url.Values
	Body   any
	Header http.Header
}

// Do sends r and returns the reply when its status is 2xx, else an *Error.
func (c *Client) Do(ctx context.Context, r Request) (*Reply, error) {
	var rd io.Reader
	if r.Body != nil {
		switch b := r.Body.(type) {
		case json.RawMessage:
			rd = bytes.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			raw, err := json.Marshal(b)
			if err != nil {
				return nil, err
			}
			rd = bytes.NewReader(raw)
		}
	}
	u := c.Base + r.Path
	if len(r.Query) > 0 {
		u += "?" + r.Query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "artcafe-cli")
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	SetAuth(req.Header, c.Token, c.Tenant)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("reading the reply of %s %s: %w", r.Method, r.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, ParseError(resp.StatusCode, resp.Header, body)
	}
	return &Reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Call is Do for a JSON reply decoded into out (nil: ignored).
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	rep, err := c.Do(ctx, Request{Method: method, Path: path, Query: query, Body: body})
	if err != nil {
		return err
	}
	if out == nil || len(rep.Body) == 0 {
		return nil
	}
	return rep.Decode(out)
}

// SetAuth puts the credentials and tenant on h: an API key (art_…) as x-api-key, any
// other token as a bearer token.
func SetAuth(h http.Header, token, tenant string) {
	switch {
	case strings.HasPrefix(token, "art_"):
		h.Set("x-api-key", token)
	case token != "":
		h.Set("Authorization", "Bearer "+token)
	}
	if tenant != "" {
		h.Set("x-tenant-id", tenant)
	}
}

// ParseError builds the *Error of a non-2xx reply; a body that is not the API's error
// JSON (a proxy's page) still gives a status, a code and a detail.
func ParseError(status int, h http.Header, body []byte) *Error {
	e := agentlogin.ParseAPIError(status, h, body)
	// A short page that is not JSON (a proxy's) says more than the status text.
	if s := strings.TrimSpace(string(body)); s != "" && len(s) < 200 && !strings.HasPrefix(s, "{") {
		e.Detail += ": " + s
	}
	return e
}

// IsStatus reports whether err is an API error with status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// WebSocketURL is the URL of GET /ws below base, with the query q.
func WebSocketURL(base string, q url.Values) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/ws")
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("the API endpoint %q is not an http(s) URL", base)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
