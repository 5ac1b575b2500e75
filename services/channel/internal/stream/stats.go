package stream

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
)

// StatsTTL is how long the stats of a tenant are reused: total_messages and
// last_message_at may lag by about this much (SPEC: ≤ 5 s), and a tenant's stats cost
// the stream at most two requests per StatsTTL however often its channels are read.
const StatsTTL = 3 * time.Second

// Bounds of the stats cache.
const (
	// fewLasts is how many last messages are read one by one; more are read with one
	// multi-last request for the tenant's channels.
	fewLasts = 4
	// maxTenants is how many tenants' stats are kept; beyond it, entries not used for a
	// while are dropped.
	maxTenants = 10_000
	idleAfter  = time.Minute
)

// statsCache keeps, per tenant, the stored count of each channel (one stream info
// request with the tenant's subject filter) and the time of each channel's last
// message (direct gets).
type statsCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	tenants map[string]*tenantStats
}

type tenantStats struct {
	mu       sync.Mutex // one refresh of a tenant at a time
	countsAt time.Time
	counts   map[string]uint64 // by channel id; absent: nothing stored
	lasts    map[string]lastMessage
	used     time.Time
}

type lastMessage struct {
	readAt time.Time
	at     *time.Time
}

func newStatsCache() *statsCache {
	return &statsCache{ttl: StatsTTL, now: time.Now, tenants: map[string]*tenantStats{}}
}

func (c *statsCache) tenant(tenantID string) *tenantStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	ts, ok := c.tenants[tenantID]
	if !ok {
		if len(c.tenants) >= maxTenants {
			for id, t := range c.tenants {
				if now.Sub(t.used) > idleAfter {
					delete(c.tenants, id)
				}
			}
		}
		ts = &tenantStats{lasts: map[string]lastMessage{}}
		c.tenants[tenantID] = ts
	}
	ts.used = now
	return ts
}

// forget drops a tenant's stats (after a purge, so they read 0 at once).
func (c *statsCache) forget(tenantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tenants, tenantID)
}

// Stats implements channel.Messages. A tenant's counts are one stream info request;
// the last message of each channel that has messages is a direct get (one request
// for the tenant's channels when there are more than a few). When the stream cannot
// answer, the last known values are returned and the failure logged.
func (s *Stream) Stats(ctx context.Context, tenantID string, ids []string) map[string]channel.Stats {
	ts := s.stats.tenant(tenantID)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := s.stats.now()
	log := zerolog.Ctx(ctx)

	if ts.counts == nil || now.Sub(ts.countsAt) >= s.stats.ttl {
		subjects, err := s.subjectCounts(ctx, messagev1.Subject(tenantID, "*"))
		if err != nil {
			log.Warn().Err(err).Msg("channel stats not refreshed")
		} else {
			ts.counts = make(map[string]uint64, len(subjects))
			for subj, n := range subjects {
				if _, ch, ok := messagev1.ParseSubject(subj); ok {
					ts.counts[ch] = n
				}
			}
			ts.countsAt = now
		}
	}

	var stale []string
	for _, id := range ids {
		if ts.counts[id] == 0 {
			continue
		}
		if l, ok := ts.lasts[id]; !ok || now.Sub(l.readAt) >= s.stats.ttl {
			stale = append(stale, id)
		}
	}
	if len(stale) > 0 {
		if err := s.readLasts(ctx, tenantID, stale, ts, now); err != nil {
			log.Warn().Err(err).Msg("channel last message times not refreshed")
		}
	}

	out := make(map[string]channel.Stats, len(ids))
	for _, id := range ids {
		n := ts.counts[id]
		if n == 0 {
			continue
		}
		out[id] = channel.Stats{TotalMessages: int64(n), LastMessageAt: ts.lasts[id].at}
	}
	return out
}

// readLasts reads the time of the last message of the channels ids into ts.
func (s *Stream) readLasts(ctx context.Context, tenantID string, ids []string, ts *tenantStats, now time.Time) error {
	if len(ids) > fewLasts {
		msgs, _, err := s.direct(ctx, directRequest{MultiLastFor: []string{messagev1.Subject(tenantID, "*")}})
		if err == nil {
			for _, m := range msgs {
				if _, ch, ok := messagev1.ParseSubject(m.msg.Header.Get(hdrSubject)); ok {
					ts.lasts[ch] = lastMessage{readAt: now, at: messageTime(m.msg.Header)}
				}
			}
			return nil
		}
		if !errors.Is(err, errTooManyResults) {
			return err
		}
		// More channels with messages than one request answers: one by one.
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, fewLasts)
	)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := s.s.GetLastMsgForSubject(ctx, messagev1.Subject(tenantID, id))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				ts.lasts[id] = lastMessage{readAt: now}
			case err != nil:
				if first == nil {
					first = unavailable("last message", err)
				}
			default:
				ts.lasts[id] = lastMessage{readAt: now, at: messageTime(m.Header)}
			}
		})
	}
	wg.Wait()
	return first
}

// messageTime is when a stored message was published: the gateway's timestamp, or the
// stream's when that is missing.
func messageTime(h map[string][]string) *time.Time {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, k := range []string{messagev1.HeaderTimestamp, hdrTimeStamp} {
		if t, err := time.Parse(time.RFC3339Nano, get(k)); err == nil {
			t = t.UTC()
			return &t
		}
	}
	return nil
}
