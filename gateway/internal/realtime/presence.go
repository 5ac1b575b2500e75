package realtime

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/presencev1"
)

// Presence calls are bounded by CallTimeout and made by the session's reader (which
// outlives them), so their contexts do not derive from the session's.

// presence is an agent session's key in the presence bucket (presencev1): created with
// a TTL when the session opens, refreshed while frames arrive, its value the status the
// agent reports, deleted when the session ends. The agent service derives the agent's
// status from the keys. Only the session's reader goroutine uses it.
type presence struct {
	s         *session
	key       string
	status    string
	refreshed time.Time // last successful write
	attempted time.Time // last write tried
	created   bool      // the key exists (as far as this session knows)
}

// presenceRetry bounds how often a failed presence write is retried: frames keep
// arriving, and each retry would hold up the session's frames for a call.
const presenceRetry = 5 * time.Second

func (p *presence) value() []byte {
	b, _ := json.Marshal(presencev1.Session{Status: p.status, Gateway: p.s.hub.cfg.GatewayID, Since: p.s.opened.UTC()})
	return b
}

// open creates the session's key. A failure is logged and retried by the next refresh:
// presence is not a reason to refuse a session.
func (p *presence) open() {
	s := p.s
	p.key = presencev1.Key(s.tenant.id, s.principal.AgentID, s.id)
	p.status = presencev1.StatusOnline
	p.attempted = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.CallTimeout)
	defer cancel()
	kv, err := s.hub.presenceKV(ctx)
	if err == nil {
		_, err = kv.Create(ctx, p.key, p.value(), jetstream.KeyTTL(s.hub.cfg.PresenceTTL))
	}
	if err != nil {
		s.hub.log.Warn().Err(err).Str("session_id", s.id).Msg("presence key not created; retrying on the next refresh")
		return
	}
	p.created, p.refreshed = true, time.Now()
}

// due reports whether a refresh is due at now.
func (p *presence) due(now time.Time) bool {
	if p.key == "" {
		return false
	}
	if !p.created {
		return now.Sub(p.attempted) >= min(presenceRetry, p.s.hub.cfg.PresenceRefresh)
	}
	return now.Sub(p.refreshed) >= p.s.hub.cfg.PresenceRefresh
}

// refresh renews the key's TTL (a new revision with the same value), at most every
// PresenceRefresh unless force (a status change).
func (p *presence) refresh(now time.Time, force bool) {
	s := p.s
	if p.key == "" || (!force && !p.due(now)) {
		return
	}
	p.attempted = now
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.CallTimeout)
	defer cancel()
	// Put and Update would make the key permanent; a publish to the key's subject with a
	// message TTL renews it with its TTL (LIBRARIES.md).
	_, err := s.hub.js.Publish(ctx, "$KV."+presencev1.Bucket+"."+p.key, p.value(), jetstream.WithMsgTTL(s.hub.cfg.PresenceTTL))
	if err != nil {
		if s.ctx.Err() == nil {
			s.hub.log.Warn().Err(err).Str("session_id", s.id).Msg("presence refresh failed")
		}
		return
	}
	p.created, p.refreshed = true, now
}

func (p *presence) setStatus(status string) {
	if status == p.status {
		p.refresh(time.Now(), false)
		return
	}
	p.status = status
	p.refresh(time.Now(), true)
}

// close purges the key: the agent goes offline at once when it was its last session. A
// purge with a TTL (not a delete) leaves a marker that itself expires, so closed
// sessions' keys do not pile up in the bucket.
func (p *presence) close() {
	s := p.s
	if p.key == "" {
		return
	}
	// The session's context has ended; the delete gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.Background(), s.hub.cfg.CallTimeout)
	defer cancel()
	kv, err := s.hub.presenceKV(ctx)
	if err == nil {
		err = kv.Purge(ctx, p.key, jetstream.PurgeTTL(s.hub.cfg.PresenceTTL))
	}
	if err != nil {
		s.hub.log.Warn().Err(err).Str("session_id", s.id).Msg("presence key not deleted; it expires with its TTL")
	}
}
