// Package events connects the sshkey domain to NATS events: the publisher of KeyChanged
// cache hints (core NATS). The cascade that purges a deleted tenant's keys and
// challenges is kit/cascade.
package events

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
)

// Publisher implements sshkey.Events on NATS.
type Publisher struct {
	nc  *nats.Conn
	log zerolog.Logger
}

var _ sshkey.Events = (*Publisher)(nil)

// NewPublisher publishes on nc.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) *Publisher {
	return &Publisher{nc: nc, log: log}
}

// KeyChanged publishes a cache hint. Losing it only delays caches by their TTL (≤ 5 s).
func (p *Publisher) KeyChanged(ctx context.Context, k sshkey.Key, change string) {
	b, _ := json.Marshal(sshkeyv1.KeyChanged{TenantID: k.TenantID, KeyID: k.ID, AgentID: k.AgentID, Change: change}) // strings only: cannot fail
	if err := p.nc.Publish(sshkeyv1.SubjectKeyChanged, b); err != nil {
		log := zerolog.Ctx(ctx) // the request's logger when there is one
		if log.GetLevel() == zerolog.Disabled {
			log = &p.log
		}
		log.Warn().Err(err).Str("tenant_id", k.TenantID).Str("key_id", k.ID).Str("change", change).Msg("publishing a key change hint failed")
	}
}
