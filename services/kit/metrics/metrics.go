// Package metrics exposes a binary's Prometheus metrics on their own listener (never the
// public port) and records the RPC metrics every service shares. Labels stay
// low-cardinality: operation and status, never a tenant.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// ShutdownTimeout bounds how long Serve waits for scrapes in progress when it stops.
const ShutdownTimeout = 5 * time.Second

// Serve listens on addr and serves reg at /metrics (and Go profiles at /debug/pprof/)
// until ctx ends. It returns nil after
// a clean stop and an error when the address cannot be bound.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, reg, log)
}

// ServeListener is Serve on a listener the caller opened (tests use port 0). It closes ln.
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log zerolog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Profiles live beside the metrics: the listener is private, and a profile of the
	// real process under load is how the hot paths get measured.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	log.Info().Str("addr", ln.Addr().String()).Msg("metrics listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}

// RPC metric names.
const (
	RequestsTotal   = "artcafe_rpc_requests_total"
	RequestDuration = "artcafe_rpc_request_duration_seconds"
)

// rpcBuckets reach below the default 5 ms: most store-backed operations take well under it.
var rpcBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// RPCObserver registers the RPC metrics of service on reg and returns the natsrpc
// observer that feeds them: artcafe_rpc_requests_total{service,op,status} and
// artcafe_rpc_request_duration_seconds{service,op}. Registering the same service twice
// reuses the collectors. A metric that conflicts with something already on reg is a
// programming error and panics, as prometheus.MustRegister does.
func RPCObserver(reg prometheus.Registerer, service string) natsrpc.Observer {
	constLabels := prometheus.Labels{"service": service}
	requests := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        RequestsTotal,
		Help:        "RPC requests handled, by operation and HTTP-class status.",
		ConstLabels: constLabels,
	}, []string{"op", "status"}))
	duration := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        RequestDuration,
		Help:        "Time to handle an RPC request, by operation.",
		ConstLabels: constLabels,
		Buckets:     rpcBuckets,
	}, []string{"op"}))
	type key struct {
		op     string
		status int
	}
	type children struct {
		requests prometheus.Counter
		duration prometheus.Observer
	}
	cache := NewChildCache(func(k key) children {
		return children{
			requests: requests.WithLabelValues(k.op, strconv.Itoa(k.status)),
			duration: duration.WithLabelValues(k.op),
		}
	})
	return func(op string, status int, d time.Duration) {
		c := cache.Get(key{op, status})
		c.requests.Inc()
		c.duration.Observe(d.Seconds())
	}
}

// ChildCache keeps the metric children of each key once looked up: WithLabelValues
// hashes the label values and takes a lock on every call, which every request would
// pay. The cache is a map replaced on a miss (copy on write), so a hit is one atomic
// load and one map read, without a lock or an allocation. Keys are label values of
// bounded cardinality (routes, operations, statuses).
type ChildCache[K comparable, V any] struct {
	mu      sync.Mutex // serializes misses
	m       atomic.Pointer[map[K]V]
	resolve func(K) V
}

// NewChildCache returns a cache whose misses call resolve (which looks the children up).
func NewChildCache[K comparable, V any](resolve func(K) V) *ChildCache[K, V] {
	c := &ChildCache[K, V]{resolve: resolve}
	c.m.Store(&map[K]V{})
	return c
}

// Get returns the children of k.
func (c *ChildCache[K, V]) Get(k K) V {
	if v, ok := (*c.m.Load())[k]; ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if v, ok := old[k]; ok {
		return v
	}
	v := c.resolve(k)
	next := make(map[K]V, len(old)+1)
	for kk, vv := range old {
		next[kk] = vv
	}
	next[k] = v
	c.m.Store(&next)
	return v
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("metrics: %v", err))
	}
	return c
}
