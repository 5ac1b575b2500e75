// Package events publishes the channel service's tenant events (contracts/eventsv1):
// channels.created, channels.updated and channels.deleted on core NATS, which dashboards
// watch and gateways' channel caches follow.
package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
)

// Publisher implements channel.Events on NATS.
type Publisher struct {
	nc  *nats.Conn
	log zerolog.Logger
	now func() time.Time
}

var _ channel.Events = (*Publisher)(nil)

// NewPublisher publishes on nc.
func NewPublisher(nc *nats.Conn, log zerolog.Logger) *Publisher {
	return &Publisher{nc: nc, log: log, now: time.Now}
}

// Created implements channel.Events.
func (p *Publisher) Created(ctx context.Context, c channelv1.Channel) {
	p.publish(ctx, eventsv1.ActionCreated, c)
}

// Updated implements channel.Events.
func (p *Publisher) Updated(ctx context.Context, c channelv1.Channel) {
	p.publish(ctx, eventsv1.ActionUpdated, c)
}

// Deleted implements channel.Events.
func (p *Publisher) Deleted(ctx context.Context, c channelv1.Channel) {
	p.publish(ctx, eventsv1.ActionDeleted, c)
}

// publish sends the event. Losing it only delays caches by their TTL, so a failure is
// logged, not returned.
func (p *Publisher) publish(ctx context.Context, action string, c channelv1.Channel) {
	data, _ := json.Marshal(eventsv1.ChannelRef{ // strings and a number: cannot fail
		ChannelID: c.ID, Name: c.Name, Type: c.Type, MaxAgeSeconds: c.History.MaxAgeSeconds,
	})
	b, _ := json.Marshal(eventsv1.Event{
		Type: eventsv1.EntityChannels + "." + action, TenantID: c.TenantID, Timestamp: p.now().UTC(), Data: data,
	})
	if err := p.nc.Publish(eventsv1.Subject(c.TenantID, eventsv1.EntityChannels, action), b); err != nil {
		log := zerolog.Ctx(ctx) // the request's logger when there is one
		if log.GetLevel() == zerolog.Disabled {
			log = &p.log
		}
		log.Warn().Err(err).Str("tenant_id", c.TenantID).Str("channel_id", c.ID).Str("action", action).Msg("publishing a channel event failed")
	}
}
