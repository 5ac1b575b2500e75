// Package events connects the agent domain to NATS events: AgentChanged cache hints
// (agentv1) and the tenant-visible agent events agents.created|updated|deleted|status
// (eventsv1), all on core NATS. The cascade that purges a deleted tenant's agents is
// kit/cascade.
package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

// Publisher implements agent.Events on NATS.
type Publisher struct {
	nc  *nats.Conn
	log zerolog.Logger
	now func() time.Time
}

var _ agent.Events = (*Publisher)(nil)

// NewPublisher publishes on nc.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) *Publisher {
	return &Publisher{nc: nc, log: log, now: time.Now}
}

// AgentDeleted publishes a cache hint. Losing it only delays caches by their TTL.
func (p *Publisher) AgentDeleted(ctx context.Context, tenantID, agentID string) {
	b, _ := json.Marshal(agentv1.AgentChanged{TenantID: tenantID, AgentID: agentID, Change: agentv1.ChangeDeleted}) // strings only: cannot fail
	if err := p.nc.Publish(agentv1.SubjectAgentChanged, b); err != nil {
		p.logger(ctx).Warn().Err(err).Str("tenant_id", tenantID).Str("agent_id", agentID).Msg("publishing an agent change hint failed")
	}
}

// Changed publishes agents.<action> to the tenant.
func (p *Publisher) Changed(ctx context.Context, tenantID, action string, ref eventsv1.AgentRef) {
	data, _ := json.Marshal(ref) // strings only: cannot fail
	p.tenantEvent(ctx, tenantID, action, ref.AgentID, data)
}

// StatusChanged publishes agents.status to the tenant.
func (p *Publisher) StatusChanged(ctx context.Context, tenantID string, st eventsv1.AgentStatus) {
	data, _ := json.Marshal(st) // strings only: cannot fail
	p.tenantEvent(ctx, tenantID, eventsv1.ActionStatus, st.AgentID, data)
}

// tenantEvent publishes one event of the agents entity on the tenant's own subject (the
// tenant id comes from the identity or the agent record, both checked UUIDs). Events
// are core NATS: a dashboard that misses one reads the agent again.
func (p *Publisher) tenantEvent(ctx context.Context, tenantID, action, agentID string, data json.RawMessage) {
	b, _ := json.Marshal(eventsv1.Event{ // strings, a time and valid JSON: cannot fail
		Type:      eventsv1.EntityAgents + "." + action,
		TenantID:  tenantID,
		Timestamp: p.now().UTC(),
		Data:      data,
	})
	if err := p.nc.Publish(eventsv1.Subject(tenantID, eventsv1.EntityAgents, action), b); err != nil {
		p.logger(ctx).Warn().Err(err).Str("tenant_id", tenantID).Str("agent_id", agentID).Str("action", action).Msg("publishing an agent event failed")
	}
}

// logger is the request's logger when there is one.
func (p *Publisher) logger(ctx context.Context) *zerolog.Logger {
	log := zerolog.Ctx(ctx)
	if log.GetLevel() == zerolog.Disabled {
		log = &p.log
	}
	return log
}
