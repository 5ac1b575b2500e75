// Package httpapi is the gateway's public HTTP layer: the Fiber app, its middleware, the
// route table (which also produces the OpenAPI document), the one error handler, and the
// handlers that turn REST calls into natsrpc requests.
package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// Header names read from clients.
const (
	headerAPIKey   = "X-Api-Key"
	headerTenantID = "X-Tenant-Id"
)

// Defaults for the zero values of Deps.
const (
	DefaultBodyLimit       = 1 << 20
	DefaultRequestTimeout  = 10 * time.Second
	DefaultUpstreamTimeout = 5 * time.Second
	healthWindow           = 150 * time.Millisecond
	healthCacheTTL         = 2 * time.Second
)

// Deps is what the app needs; main builds them from the configuration.
type Deps struct {
	Log     zerolog.Logger
	NATS    *nats.Conn      // for /health (micro discovery and connection state)
	RPC     *natsrpc.Client // upstream calls
	Auth    *auth.Authenticator
	Metrics prometheus.Registerer // nil: metrics are kept but not exported
	// Channels is the channel cache and Publisher the message publisher, shared with the
	// WebSocket sessions.
	Channels  *messaging.Channels
	Publisher *messaging.Publisher
	// Realtime serves GET /api/v1/ws; nil answers it with 503.
	Realtime *realtime.Hub
	// RateLimits holds the plan's API calls per minute (nil: no limit); Usage meters
	// API calls (nil: not metered).
	RateLimits RateLimiter
	Usage      UsageRecorder
	Version    string

	// JWTSecret keys the signature of list next_tokens (a key is derived from it).
	JWTSecret          []byte
	CORSAllowedOrigins []string
	TrustedProxies     []string
	BodyLimit          int
	RequestTimeout     time.Duration // the whole request
	UpstreamTimeout    time.Duration // each upstream call
}

// api holds the app's dependencies for its handlers and middleware.
type api struct {
	log             zerolog.Logger
	rpc             *natsrpc.Client
	auth            *auth.Authenticator
	channels        *messaging.Channels
	publisher       *messaging.Publisher
	realtime        *realtime.Hub
	rate            RateLimiter
	usage           UsageRecorder
	metrics         *httpMetrics
	tokens          *pageTokens
	proxies         trustedProxies
	probe           *healthProbe
	version         string
	bodyLimit       int
	requestTimeout  time.Duration
	upstreamTimeout time.Duration
	openapi         []byte
	docs            map[string]asset
}

// New builds the gateway's Fiber app.
func New(d Deps) (*fiber.App, error) {
	return newApp(d, nil)
}

// newApp is New with extra routes appended to the table (tests use it to exercise
// policies no route of the table has yet).
func newApp(d Deps, extra func(*api) []route) (*fiber.App, error) {
	if d.RPC == nil || d.Auth == nil || d.NATS == nil || d.Channels == nil || d.Publisher == nil {
		return nil, errors.New("httpapi: NATS, RPC, Auth, Channels and Publisher are required")
	}
	if len(d.JWTSecret) == 0 {
		return nil, errors.New("httpapi: JWTSecret is required")
	}
	if d.BodyLimit <= 0 {
		d.BodyLimit = DefaultBodyLimit
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = DefaultRequestTimeout
	}
	if d.UpstreamTimeout <= 0 {
		d.UpstreamTimeout = DefaultUpstreamTimeout
	}
	m, err := newHTTPMetrics(d.Metrics)
	if err != nil {
		return nil, err
	}
	docs, err := loadDocs()
	if err != nil {
		return nil, err
	}
	proxies, err := newTrustedProxies(d.TrustedProxies)
	if err != nil {
		return nil, err
	}
	a := &api{
		log:             d.Log,
		rpc:             d.RPC,
		auth:            d.Auth,
		channels:        d.Channels,
		publisher:       d.Publisher,
		realtime:        d.Realtime,
		rate:            d.RateLimits,
		usage:           d.Usage,
		metrics:         m,
		tokens:          newPageTokens(d.JWTSecret),
		proxies:         proxies,
		probe:           newHealthProbe(d.NATS, healthWindow, healthCacheTTL),
		version:         d.Version,
		bodyLimit:       d.BodyLimit,
		requestTimeout:  d.RequestTimeout,
		upstreamTimeout: d.UpstreamTimeout,
		docs:            docs,
	}
	routes := append(append(append(a.routes(), a.channelRoutes()...), a.realtimeRoutes()...), a.usageRoutes()...)
	if extra != nil {
		routes = append(routes, extra(a)...)
	}
	if a.openapi, err = buildOpenAPI(routes, d.Version); err != nil {
		return nil, err
	}

	app := fiber.New(fiber.Config{
		AppName:               ServiceName,
		DisableStartupMessage: true,
		ErrorHandler:          a.handleError,
		BodyLimit:             d.BodyLimit,
		// Case-sensitive so path parameters keep their case: user ids are case-sensitive.
		CaseSensitive:  true,
		ReadTimeout:    30 * time.Second, // slow clients cannot hold connections forever
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    90 * time.Second,
		ReadBufferSize: 8192,
		// Buffers go back to their pools between requests: an idle keep-alive connection,
		// and a WebSocket session (fasthttp hands a hijacked connection its read buffer),
		// does not keep 8 KiB of them (realtime: BenchmarkIdleSessionMemory).
		ReduceMemoryUsage: true,
		// The gateway reads the client's address with trustedProxies.clientIP (rightmost
		// untrusted hop), not c.IP() (leftmost); this keeps Fiber's own view closed too:
		// with an empty list, X-Forwarded-For is never believed.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          d.TrustedProxies,
		ProxyHeader:             fiber.HeaderXForwardedFor,
		EnableIPValidation:      true,
	})

	app.Use(a.recoverPanics, a.observe, securityHeaders)
	if cs := newCORS(d.CORSAllowedOrigins); cs != nil {
		app.Use(cs.handle)
	}
	app.Use(a.withDeadline)

	methods := map[string][]string{} // fiber path → methods, for 405
	var order []string
	for i := range routes {
		rt := &routes[i]
		fp := fiberPath(rt.path)
		app.Add(rt.method, fp, a.handler(rt)).Name(rt.op)
		if _, ok := methods[fp]; !ok {
			order = append(order, fp)
		}
		methods[fp] = append(methods[fp], rt.method)
	}
	// A known path with a method it does not have is 405 with Allow, registered after
	// every real route so it only catches what they did not.
	for _, fp := range order {
		allowed := methods[fp]
		slices.Sort(allowed)
		app.All(fp, a.methodNotAllowed(templateOf(routes, fp), allowHeader(allowed)))
	}
	return app, nil
}

// handler adapts a route to Fiber: authorization per its policy, then its handler.
func (a *api) handler(rt *route) fiber.Handler {
	return func(c *fiber.Ctx) error {
		info := infoOf(c)
		info.route = rt.path
		if rt.policy.public {
			// No credentials: services still see who asked from where (login rate limits).
			id := natsrpc.Identity{RequestID: info.requestID, ClientIP: info.clientIP}
			return rt.handle(&request{c: c, ctx: natsrpc.WithIdentity(c.UserContext(), id), api: a})
		}
		r, err := a.authorize(c, rt, info)
		if err != nil {
			return err
		}
		return rt.handle(r)
	}
}

func (a *api) methodNotAllowed(template, allow string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		infoOf(c).route = template
		c.Set(fiber.HeaderAllow, allow)
		return natsrpc.NewError(http.StatusMethodNotAllowed, natsrpc.CodeMethodNotAllowed, "method not allowed on this route; allowed: "+allow)
	}
}

func templateOf(routes []route, fp string) string {
	for _, rt := range routes {
		if fiberPath(rt.path) == fp {
			return rt.path
		}
	}
	return routeUnmatched
}
