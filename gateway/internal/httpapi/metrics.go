package httpapi

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/artcafe-ai/pubsub/services/kit/metrics"
)

// Metric names of the HTTP layer. Labels are the route template, never the raw path,
// and never a tenant (SPEC §8).
const (
	MetricRequests = "artcafe_http_requests_total"
	MetricDuration = "artcafe_http_request_duration_seconds"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	children *metrics.ChildCache[httpKey, httpChildren]
}

type httpKey struct {
	method, route string
	status        int
}

type httpChildren struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// httpBuckets start below the default 5 ms: most gateway requests take about a millisecond.
var httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "HTTP requests answered by the gateway, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricDuration,
			Help:    "Time to answer HTTP requests, by method and route template.",
			Buckets: httpBuckets,
		}, []string{"method", "route"}),
	}
	m.children = metrics.NewChildCache(func(k httpKey) httpChildren {
		return httpChildren{
			requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
			duration: m.duration.WithLabelValues(k.method, k.route),
		}
	})
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering gateway metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts one request; method and route are constants (methodLabel, route
// templates), so the children are few and cached.
func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	c := m.children.Get(httpKey{method, route, status})
	c.requests.Inc()
	c.duration.Observe(d.Seconds())
}
