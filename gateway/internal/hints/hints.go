// Package hints feeds the gateway's caches with the services' cache hints: core NATS
// events (notify.*) saying that a tenant, an agent or an SSH key changed, so the
// authenticator forgets what it knew at once instead of within its TTL.
package hints

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

// Caches are what the events reach.
type Caches struct {
	Auth        *auth.Authenticator
	Credentials *auth.Credentials
	Log         zerolog.Logger
	// Applied, when set, is called after each event has reached the caches (tests wait
	// on it instead of on time).
	Applied func(subject string)
	// Sessions, when set, hears each event after the caches forgot (so a re-check sees
	// the new answer): the WebSocket sessions of what changed are closed or re-checked.
	Sessions Sessions
}

// Sessions is what the WebSocket hub (realtime.Hub) does with the same events.
type Sessions interface {
	TenantChanged(tenantv1.TenantChanged)
	AgentChanged(agentv1.AgentChanged)
	KeyChanged(sshkeyv1.KeyChanged)
}

// Subscribe subscribes c to every cache hint on nc. The returned stop unsubscribes.
// Events are hints: a lost one costs at most a cache TTL (≤ 5 s) of staleness.
func Subscribe(nc *nats.Conn, c Caches) (stop func(), err error) {
	if c.Auth == nil || c.Credentials == nil {
		return nil, errors.New("hints: Auth and Credentials are required")
	}
	var subs []*nats.Subscription
	stop = func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for subject, apply := range map[string]func([]byte) bool{
		tenantv1.SubjectTenantChanged: c.tenantChanged,
		agentv1.SubjectAgentChanged:   c.agentChanged,
		sshkeyv1.SubjectKeyChanged:    c.keyChanged,
	} {
		s, err := nc.Subscribe(subject, func(m *nats.Msg) {
			if !apply(m.Data) {
				c.Log.Warn().Str("subject", m.Subject).Msg("ignoring malformed cache hint")
			}
			if c.Applied != nil {
				c.Applied(m.Subject)
			}
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		subs = append(subs, s)
	}
	// One round trip so the server has the interest before the caller goes on (a hint
	// sent right after start-up then reaches us). A failure here is not fatal: the
	// subscriptions stand and are renewed on reconnect.
	if err := nc.Flush(); err != nil {
		c.Log.Warn().Err(err).Msg("hints: subscriptions not confirmed by the server yet")
	}
	return stop, nil
}

func (c Caches) tenantChanged(data []byte) bool {
	var ev tenantv1.TenantChanged
	if json.Unmarshal(data, &ev) != nil || ev.TenantID == "" {
		return false
	}
	c.Auth.Forget(ev)
	if ev.Change == tenantv1.ChangeDeleted {
		c.Credentials.ForgetTenant(ev.TenantID)
	}
	if c.Sessions != nil {
		c.Sessions.TenantChanged(ev)
	}
	return true
}

func (c Caches) agentChanged(data []byte) bool {
	var ev agentv1.AgentChanged
	if json.Unmarshal(data, &ev) != nil || ev.TenantID == "" || ev.AgentID == "" {
		return false
	}
	c.Credentials.ForgetAgent(ev)
	if c.Sessions != nil {
		c.Sessions.AgentChanged(ev)
	}
	return true
}

func (c Caches) keyChanged(data []byte) bool {
	var ev sshkeyv1.KeyChanged
	if json.Unmarshal(data, &ev) != nil || ev.TenantID == "" || ev.KeyID == "" {
		return false
	}
	c.Credentials.ForgetKey(ev)
	if c.Sessions != nil {
		c.Sessions.KeyChanged(ev)
	}
	return true
}
