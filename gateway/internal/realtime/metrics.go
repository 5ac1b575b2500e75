package realtime

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of the WebSocket layer (no tenant label, SPEC §8).
const (
	MetricSessions     = "artcafe_ws_sessions"
	MetricCloses       = "artcafe_ws_session_closes_total"
	MetricMessagesSent = "artcafe_ws_messages_queued_total"
	MetricLiveGaps     = "artcafe_ws_live_gaps_total"
)

type metrics struct {
	closes   *prometheus.CounterVec
	messages prometheus.Counter
	liveGaps prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, h *Hub) (*metrics, error) {
	m := &metrics{
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCloses,
			Help: "WebSocket sessions ended, by the close code the server sent (\"none\": the client closed or the connection dropped).",
		}, []string{"code"}),
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricMessagesSent,
			Help: "Message frames queued to WebSocket sessions (live and replayed).",
		}),
		liveGaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricLiveGaps,
			Help: "Live messages that arrived after a gap (a stored message never delivered live) and made a subscription read the gap back from the stream.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricSessions,
		Help: "Open WebSocket sessions on this gateway.",
	}, func() float64 { return float64(h.Sessions()) })
	for _, c := range []prometheus.Collector{m.closes, m.messages, m.liveGaps, sessions} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering websocket metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) closed(code int) {
	label := "none"
	if code != 0 {
		label = strconv.Itoa(code)
	}
	m.closes.WithLabelValues(label).Inc()
}
