package httpapi

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/oklog/ulid/v2"
)

// HeaderRequestID is echoed on every response.
const HeaderRequestID = "X-Request-Id"

// Route labels for requests that match no route template (never the raw path: it would
// blow up the metrics' cardinality).
const (
	routeUnmatched = "unmatched"
	routePreflight = "cors_preflight"
)

// reqInfo is what the access log and the metrics need to know about a request. The
// middleware creates it; the route wrapper fills in the template, tenant and principal.
type reqInfo struct {
	requestID string
	start     time.Time
	route     string
	tenantID  string
	kind      string
	clientIP  string // the caller's address (trustedProxies.clientIP)
	metered   bool   // an insider's call of the tenant: counts as usage
}

type infoKey struct{}

func infoOf(c *fiber.Ctx) *reqInfo {
	info, _ := c.Locals(infoKey{}).(*reqInfo)
	return info
}

// newInfo starts the bookkeeping of a request: its id (a sane incoming X-Request-Id is
// kept so a caller can correlate, anything else is replaced by a ULID) and start time.
func (a *api) newInfo(c *fiber.Ctx) *reqInfo {
	id := c.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = ulid.Make().String()
	} else {
		id = strings.Clone(id) // fasthttp reuses the header buffer after the request
	}
	info := &reqInfo{requestID: id, start: time.Now(), route: routeUnmatched, clientIP: a.proxies.clientIP(c)}
	c.Locals(infoKey{}, info)
	c.Set(HeaderRequestID, id)
	return info
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// recoverPanics is the outermost safety net: a panic anywhere becomes a 500 (logged
// with its stack) instead of a dead process.
func (a *api) recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			rid := ""
			if info := infoOf(c); info != nil {
				rid = info.requestID
			}
			a.log.Error().Str("request_id", rid).Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handler panicked")
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return c.Next()
}

// observe assigns the request id, runs the rest of the chain, renders any error with the
// one error handler (so the status is known here), then writes the access log line and
// the metrics. Panics below are recovered here too, so they are logged and counted.
func (a *api) observe(c *fiber.Ctx) error {
	info := a.newInfo(c)
	err := a.recoverPanics(c)
	if err != nil {
		if herr := a.handleError(c, err); herr != nil {
			c.Status(fiber.StatusInternalServerError)
		}
	}
	a.meter(c.Response().StatusCode(), info, len(c.Request().Body()), len(c.Response().Body()))
	a.finish(c, info)
	return nil
}

// finish writes one access log line and the metrics of a request. The path is logged
// without its query string (tokens may travel there); headers and bodies never are.
func (a *api) finish(c *fiber.Ctx, info *reqInfo) {
	status := c.Response().StatusCode()
	d := time.Since(info.start)
	method := methodLabel(c.Method())
	a.metrics.observe(method, info.route, status, d)

	path := c.Path()
	if len(path) > 256 {
		path = path[:256] + "…"
	}
	ev := a.log.Info()
	if status >= 500 {
		ev = a.log.Warn()
	}
	ev = ev.Str("request_id", info.requestID).
		Str("method", method).
		Str("route", info.route).
		Str("path", path).
		Int("status", status).
		Dur("duration", d).
		Str("ip", info.clientIP)
	if info.tenantID != "" {
		ev = ev.Str("tenant_id", info.tenantID)
	}
	if info.kind != "" {
		ev = ev.Str("principal", info.kind)
	}
	ev.Msg("request")
}

// methodLabel maps the request method to a constant string: Fiber's method string points
// into a buffer that is reused after the request, and metrics keep their label values.
func methodLabel(m string) string {
	switch m {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodOptions:
		return fiber.MethodOptions
	}
	return "OTHER"
}

// withDeadline bounds the whole request: every upstream call made for it inherits this
// deadline through the request context.
func (a *api) withDeadline(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.requestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// securityHeaders are cheap and apply to every response.
func securityHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Next()
}

// cors answers browsers for the exact origins configured, and nobody else. Credentials
// are never allowed (SPEC §13 "Hygiene"): browsers send tokens explicitly in headers.
type cors struct {
	origins map[string]bool
}

const (
	corsAllowMethods  = "GET, POST, PUT, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, X-API-Key, X-Tenant-Id, X-Request-Id, Idempotency-Key"
	corsExposeHeaders = "X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, Idempotent-Replayed"
	corsMaxAge        = "600"
)

func newCORS(origins []string) *cors {
	if len(origins) == 0 {
		return nil
	}
	m := make(map[string]bool, len(origins))
	for _, o := range origins {
		m[o] = true
	}
	return &cors{origins: m}
}

func (cs *cors) handle(c *fiber.Ctx) error {
	c.Vary(fiber.HeaderOrigin)
	origin := c.Get(fiber.HeaderOrigin)
	allowed := origin != "" && cs.origins[origin]
	if allowed {
		c.Set(fiber.HeaderAccessControlAllowOrigin, strings.Clone(origin))
	}
	preflight := c.Method() == fiber.MethodOptions && c.Get(fiber.HeaderAccessControlRequestMethod) != ""
	if !preflight {
		if allowed {
			c.Set(fiber.HeaderAccessControlExposeHeaders, corsExposeHeaders)
		}
		return c.Next()
	}
	if info := infoOf(c); info != nil {
		info.route = routePreflight
	}
	if allowed {
		c.Set(fiber.HeaderAccessControlAllowMethods, corsAllowMethods)
		c.Set(fiber.HeaderAccessControlAllowHeaders, corsAllowHeaders)
		c.Set(fiber.HeaderAccessControlMaxAge, corsMaxAge)
	}
	// A refused origin gets the same 204 without CORS headers: the browser then blocks the
	// real request, and nothing about the route is revealed.
	return c.SendStatus(fiber.StatusNoContent)
}

// allowHeader lists the methods of a path for 405 answers.
func allowHeader(methods []string) string {
	return strings.Join(methods, ", ")
}
