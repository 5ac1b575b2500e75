// Package events connects the tenant domain to NATS events: the publisher of
// TenantDeleted (durable, on the platform stream) and TenantChanged (core NATS cache
// hints). The cascade that purges a deleted tenant's items is kit/cascade.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

// Publisher implements tenant.Events on NATS.
type Publisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log zerolog.Logger
}

var _ tenant.Events = (*Publisher)(nil)

// NewPublisher publishes on nc and js.
func NewPublisher(nc *nats.Conn, js jetstream.JetStream, log zerolog.Logger) *Publisher {
	return &Publisher{nc: nc, js: js, log: log}
}

// TenantDeleted stores the event on the platform stream and waits for the ack. The
// message id makes a repeated deletion (a retry after a lost ack) a duplicate that the
// stream stores once.
func (p *Publisher) TenantDeleted(ctx context.Context, tenantID string, at time.Time) error {
	b, err := json.Marshal(tenantv1.TenantDeleted{
		TenantID:  tenantID,
		DeletedAt: at.UTC(),
		RequestID: natsrpc.IdentityFrom(ctx).RequestID,
	})
	if err != nil {
		return fmt.Errorf("encoding the deletion event: %w", err)
	}
	if _, err := p.js.Publish(ctx, tenantv1.SubjectTenantDeleted, b, jetstream.WithMsgID(tenantv1.DeletedMsgID(tenantID))); err != nil {
		return fmt.Errorf("%w: storing the deletion event: %w", tenant.ErrUnavailable, err)
	}
	return nil
}

// TenantChanged publishes a cache hint. Losing it only delays caches by their TTL.
func (p *Publisher) TenantChanged(ctx context.Context, tenantID, change string) {
	b, _ := json.Marshal(tenantv1.TenantChanged{TenantID: tenantID, Change: change}) // two strings: cannot fail
	if err := p.nc.Publish(tenantv1.SubjectTenantChanged, b); err != nil {
		log := zerolog.Ctx(ctx) // the request's logger when there is one
		if log.GetLevel() == zerolog.Disabled {
			log = &p.log
		}
		log.Warn().Err(err).Str("tenant_id", tenantID).Str("change", change).Msg("publishing a tenant change hint failed")
	}
}
