// Command agent runs the agent service: a tenant's agents (CRUD, filters, status
// override and summary, the max_agents limit) as a NATS micro service (svc.agent.v1.*)
// on its own table, and beside it the presence watcher that derives agents' live status
// from the PRESENCE bucket. It calls the sshkey service for agents' keys and the channel
// service for a deleted agent's subscriptions, publishes the tenant's agent events, and
// purges deleted tenants' agents from the platform stream.
package main

import (
	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/channels"
	"github.com/artcafe-ai/pubsub/services/agent/internal/events"
	"github.com/artcafe-ai/pubsub/services/agent/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/agent/internal/presence"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeys"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/gauge"
	"github.com/artcafe-ai/pubsub/services/kit/service"
)

func main() { service.Main(spec()) }

func spec() service.Spec {
	return service.Spec{
		Name:            agentv1.Service,
		Description:     "agents of a tenant: CRUD, filters, status override and summary, limits",
		ContractVersion: agentv1.Version,
		Table:           repo.Table,
		Setup: func(d service.Deps) (cascade.Purger, error) {
			gauges := gauge.New(d.JetStream, d.Log, gauge.WithReplicas(d.Replicas))
			d.Go("gauge reporter", gauges.Run)
			svc := agent.NewService(repo.New(d.Table), sshkeys.New(d.Client), channels.New(d.Client), events.NewPublisher(d.NATS, d.Log), agent.WithGauges(gauges))
			d.Go("presence watcher", presence.New(d.JetStream, svc, d.Log.With().Str("part", "presence").Logger(), presence.WithReplicas(d.Replicas)).Run)
			return svc.Purge, natsapi.Register(d.Micro, d.Server, svc)
		},
	}
}
