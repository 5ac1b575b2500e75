package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// client drives the gateway's HTTP API. Its checking methods take the *testing.T of the
// (sub)test that calls them, so a failure stops the right goroutine.
type client struct {
	base string
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Timeout: 15 * time.Second}}
}

// reply is one HTTP response, read whole.
type reply struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%s %s → %d %s", r.Method, r.Path, r.Status, testkit.Tail(string(r.Body), 2000))
}

// decode unmarshals the body into v after zeroing it: json merges into existing maps, and
// a variable reused for a second reply must show only that reply.
func (r reply) decode(v any) error {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%s: body is not the expected JSON: %w", r, err)
	}
	return nil
}

// object decodes the body as a JSON object.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := r.decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// opt changes a request.
type opt func(*http.Request)

func bearer(tok string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func apiKey(key string) opt { return func(r *http.Request) { r.Header.Set("x-api-key", key) } }
func tenantHeader(id string) opt {
	return func(r *http.Request) { r.Header.Set("x-tenant-id", id) }
}
func header(k, v string) opt { return func(r *http.Request) { r.Header.Set(k, v) } }

// body is a JSON body (a string is sent as is, anything else is marshalled).
type body struct{ v any }

func jsonBody(v any) body { return body{v} }

func (c *client) try(method, path string, opts ...any) (reply, error) {
	var rd io.Reader
	var hasBody bool
	var ropts []opt
	for _, o := range opts {
		switch o := o.(type) {
		case body:
			hasBody = true
			if s, ok := o.v.(string); ok {
				rd = strings.NewReader(s)
			} else {
				b, err := json.Marshal(o.v)
				if err != nil {
					return reply{}, err
				}
				rd = bytes.NewReader(b)
			}
		case opt:
			ropts = append(ropts, o)
		default:
			return reply{}, fmt.Errorf("unknown option %T", o)
		}
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range ropts {
		o(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return reply{}, err
	}
	return reply{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// do sends a request; a transport error fails the test.
func (c *client) do(t *testing.T, method, path string, opts ...any) reply {
	t.Helper()
	r, err := c.try(method, path, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// expect sends a request and requires status; for JSON replies it decodes into out (if not nil).
func (c *client) expect(t *testing.T, status int, out any, method, path string, opts ...any) reply {
	t.Helper()
	r := c.do(t, method, path, opts...)
	if r.Status != status {
		t.Fatalf("want %d: %s", status, r)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Fatalf("no X-Request-Id: %s", r)
	}
	if out != nil {
		if err := r.decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// errorBody is the SPEC §4.1 error shape.
type errorBody struct {
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// checkError requires r to be the error status and code with a complete error body.
func checkError(t *testing.T, r reply, status int, code string) errorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want %d %s: %s", status, code, r)
	}
	var e errorBody
	if err := r.decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Code != code || e.Detail == "" || e.RequestID == "" {
		t.Fatalf("want {detail, code: %q, request_id}: %s", code, r)
	}
	if got := r.Header.Get("X-Request-Id"); got != e.RequestID {
		t.Fatalf("X-Request-Id %q differs from the body's request_id %q: %s", got, e.RequestID, r)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type %q: %s", ct, r)
	}
	if status == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without WWW-Authenticate: Bearer: %s", r)
	}
	return e
}

// expectError sends a request and checks the error reply.
func (c *client) expectError(t *testing.T, status int, code string, method, path string, opts ...any) errorBody {
	t.Helper()
	return checkError(t, c.do(t, method, path, opts...), status, code)
}

// The resources as SPEC §4.2 names them; decoded independently of contracts/ so a
// renamed JSON field fails here.
type tenantJSON struct {
	ID               string         `json:"id"`
	TenantID         string         `json:"tenant_id"`
	Name             string         `json:"name"`
	AdminEmail       string         `json:"admin_email"`
	SubscriptionTier string         `json:"subscription_tier"`
	Status           string         `json:"status"`
	PaymentStatus    string         `json:"payment_status"`
	Limits           map[string]any `json:"limits"`
	Metadata         map[string]any `json:"metadata"`
	CreatedAt        string         `json:"created_at"`
	UpdatedAt        string         `json:"updated_at"`
	Role             string         `json:"role"`
}

type tenantEnvelope struct {
	Tenant  tenantJSON `json:"tenant"`
	Success bool       `json:"success"`
}

type createReply struct {
	TenantID   string     `json:"tenant_id"`
	Tenant     tenantJSON `json:"tenant"`
	APIKey     string     `json:"api_key"`
	AdminToken string     `json:"admin_token"`
	Success    bool       `json:"success"`
}

type tenantList struct {
	Tenants   []tenantJSON `json:"tenants"`
	NextToken *string      `json:"next_token"`
}

type memberJSON struct {
	ID       string `json:"id"`
	UserID   string `json:"user_id"`
	Email    string `json:"email"`
	Role     string `json:"role"`
	JoinedAt string `json:"joined_at"`
}

type memberList struct {
	Members   []memberJSON `json:"members"`
	NextToken *string      `json:"next_token"`
}

type memberEnvelope struct {
	Member  memberJSON `json:"member"`
	Success bool       `json:"success"`
}

type meReply struct {
	Kind     string `json:"kind"`
	UserID   string `json:"user_id"`
	TenantID string `json:"tenant_id"`
	Role     string `json:"role"`
}
