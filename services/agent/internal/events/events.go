// Package events connects the agent domain to NATS events: the publisher of
// AgentChanged cache hints (core NATS). The cascade that purges a deleted tenant's
// agents is kit/cascade.
package events

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

// Publisher implements agent.Events on NATS.
type Publisher struct {
	nc  *nats.Conn
	log zerolog.Logger
}

var _ agent.Events = (*Publisher)(nil)

// NewPublisher publishes on nc.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) *Publisher {
	return &Publisher{nc: nc, log: log}
}

// AgentDeleted publishes a cache hint. Losing it only delays caches by their TTL.
func (p *Publisher) AgentDeleted(ctx context.Context, tenantID, agentID string) {
	b, _ := json.Marshal(agentv1.AgentChanged{TenantID: tenantID, AgentID: agentID, Change: agentv1.ChangeDeleted}) // strings only: cannot fail
	if err := p.nc.Publish(agentv1.SubjectAgentChanged, b); err != nil {
		log := zerolog.Ctx(ctx) // the request's logger when there is one
		if log.GetLevel() == zerolog.Disabled {
			log = &p.log
		}
		log.Warn().Err(err).Str("tenant_id", tenantID).Str("agent_id", agentID).Msg("publishing an agent change hint failed")
	}
}
