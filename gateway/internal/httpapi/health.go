package httpapi

import (
	"encoding/json"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// platformServices are the services /health always reports, present or not.
func platformServices() []string {
	return []string{"tenant", "agent", "sshkey", "channel", "usage"}
}

// healthProbe counts running instances of each service through micro discovery: a
// $SRV.PING.<name> with one reply inbox, replies collected for a short window. Results
// are cached briefly so /health stays cheap when polled hard; callers arriving during a
// probe wait for it and share its result.
type healthProbe struct {
	nc     *nats.Conn
	names  []string
	window time.Duration
	ttl    time.Duration

	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func newHealthProbe(nc *nats.Conn, window, ttl time.Duration) *healthProbe {
	return &healthProbe{nc: nc, names: platformServices(), window: window, ttl: ttl}
}

// connected reports whether the gateway can reach NATS at all.
func (h *healthProbe) connected() bool {
	return h.nc != nil && h.nc.IsConnected()
}

// instances returns the instance count of every platform service (0 when absent or
// when NATS is unreachable).
func (h *healthProbe) instances() map[string]int {
	if !h.connected() {
		return h.zero()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts != nil && time.Since(h.at) < h.ttl {
		return maps.Clone(h.counts)
	}
	counts, err := h.ping()
	if err != nil {
		return h.zero() // not cached: the next call tries again
	}
	h.counts, h.at = counts, time.Now()
	return maps.Clone(counts)
}

func (h *healthProbe) zero() map[string]int {
	m := make(map[string]int, len(h.names))
	for _, n := range h.names {
		m[n] = 0
	}
	return m
}

// ping asks every platform service for its instances and counts distinct instance ids.
func (h *healthProbe) ping() (map[string]int, error) {
	inbox := h.nc.NewInbox()
	replies := make(chan *nats.Msg, 256)
	sub, err := h.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, n := range h.names {
		if err := h.nc.PublishRequest("$SRV.PING."+n, inbox, nil); err != nil {
			return nil, err
		}
	}
	if err := h.nc.Flush(); err != nil {
		return nil, err
	}

	seen := make(map[string]map[string]bool, len(h.names))
	timer := time.NewTimer(h.window)
	defer timer.Stop()
	for {
		select {
		case m := <-replies:
			var pong struct {
				Name string `json:"name"`
				ID   string `json:"id"`
			}
			if json.Unmarshal(m.Data, &pong) != nil || pong.ID == "" {
				continue
			}
			if seen[pong.Name] == nil {
				seen[pong.Name] = map[string]bool{}
			}
			seen[pong.Name][pong.ID] = true
		case <-timer.C:
			counts := h.zero()
			for name := range counts {
				counts[name] = len(seen[name])
			}
			return counts, nil
		}
	}
}
