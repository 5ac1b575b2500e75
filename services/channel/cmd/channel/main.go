// Command channel runs the channel service: a tenant's channels and their subscriptions
// (CRUD, the max_channels limit, history bounds within the plan) and history reads, as
// a NATS micro service (svc.channel.v1.*) on its own table. It owns the MESSAGES stream
// the gateways publish into: it keeps its configuration, trims channels to their
// max_messages, purges deleted channels, and purges deleted tenants' channels and
// messages through the platform cascade.
package main

import (
	"context"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/channel/internal/events"
	"github.com/artcafe-ai/pubsub/services/channel/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/channel/internal/repo"
	"github.com/artcafe-ai/pubsub/services/channel/internal/stream"
	"github.com/artcafe-ai/pubsub/services/kit/agentlookup"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/gauge"
	"github.com/artcafe-ai/pubsub/services/kit/service"
)

// streamTimeout bounds creating or updating the message stream at start (JetStream is
// up by then: the runner waited for it).
const streamTimeout = 30 * time.Second

func main() { service.Main(spec()) }

func spec() service.Spec {
	return service.Spec{
		Name:            channelv1.Service,
		Description:     "channels of a tenant: CRUD, subscriptions, history reads and bounds, the message stream",
		ContractVersion: channelv1.Version,
		Table:           repo.Table,
		Setup: func(d service.Deps) (cascade.Purger, error) {
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
			defer cancel()
			messages, err := stream.Open(ctx, d.NATS, d.JetStream, d.Log, stream.WithReplicas(d.Replicas))
			if err != nil {
				return nil, err
			}
			gauges := gauge.New(d.JetStream, d.Log, gauge.WithReplicas(d.Replicas))
			d.Go("gauge reporter", gauges.Run)
			svc := channel.NewService(repo.New(d.Table), agentlookup.New(d.Client, channel.ErrNotFound, channel.ErrUnavailable), messages, events.NewPublisher(d.NATS, d.Log), channel.WithGauges(gauges))
			d.Go("trimmer", stream.NewTrimmer(messages, svc, d.Log).Run)
			return svc.Purge, natsapi.Register(d.Micro, d.Server, svc)
		},
	}
}
