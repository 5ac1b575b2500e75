// Package events publishes the channel service's tenant events (contracts/eventsv1):
// channels.created, channels.updated, channels.deleted, subscriptions.added and
// subscriptions.removed on core NATS, which dashboards watch and gateways' channel
// caches (and live sessions) follow.
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

// SubscriptionAdded implements channel.Events.
func (p *Publisher) SubscriptionAdded(ctx context.Context, tenantID string, sub channelv1.Subscription) {
	p.send(ctx, tenantID, eventsv1.EntitySubscriptions, eventsv1.ActionAdded, sub.ChannelID,
		eventsv1.SubscriptionRef{ChannelID: sub.ChannelID, AgentID: sub.AgentID, Role: sub.Role})
}

// SubscriptionRemoved implements channel.Events.
func (p *Publisher) SubscriptionRemoved(ctx context.Context, tenantID, channelID, agentID string) {
	p.send(ctx, tenantID, eventsv1.EntitySubscriptions, eventsv1.ActionRemoved, channelID,
		eventsv1.SubscriptionRef{ChannelID: channelID, AgentID: agentID})
}

func (p *Publisher) publish(ctx context.Context, action string, c channelv1.Channel) {
	p.send(ctx, c.TenantID, eventsv1.EntityChannels, action, c.ID, eventsv1.ChannelRef{
		ChannelID: c.ID, Name: c.Name, Type: c.Type, MaxAgeSeconds: c.History.MaxAgeSeconds,
	})
}

// send publishes one event. Losing it only delays caches by their TTL (and live
// sessions by their periodic re-check), so a failure is logged, not returned.
func (p *Publisher) send(ctx context.Context, tenantID, entity, action, channelID string, ref any) {
	data, _ := json.Marshal(ref) // strings and numbers: cannot fail
	b, _ := json.Marshal(eventsv1.Event{
		Type: entity + "." + action, TenantID: tenantID, Timestamp: p.now().UTC(), Data: data,
	})
	if err := p.nc.Publish(eventsv1.Subject(tenantID, entity, action), b); err != nil {
		log := zerolog.Ctx(ctx) // the request's logger when there is one
		if log.GetLevel() == zerolog.Disabled {
			log = &p.log
		}
		log.Warn().Err(err).Str("tenant_id", tenantID).Str("channel_id", channelID).Str("event", entity+"."+action).Msg("publishing a channel event failed")
	}
}
