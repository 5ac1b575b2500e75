// Command usage runs the usage service: it applies the metering events of the gateways
// and services (stream USAGE_EVENTS) to per-tenant daily rows exactly once, serves the
// reads behind GET /usage-metrics as a NATS micro service (svc.usage.v1.*) on its own
// table, and purges deleted tenants' usage through the platform cascade.
package main

import (
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/service"
	"github.com/artcafe-ai/pubsub/services/usage/internal/applier"
	"github.com/artcafe-ai/pubsub/services/usage/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/usage/internal/repo"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

func main() { service.Main(spec()) }

func spec() service.Spec {
	return service.Spec{
		Name:            usagev1.Service,
		Description:     "usage metering: exact daily counts and gauges per tenant, usage reads",
		ContractVersion: usagev1.Version,
		Table:           repo.Table,
		Setup: func(d service.Deps) (cascade.Purger, error) {
			svc := usage.NewService(repo.New(d.Table))
			d.Go("usage applier", applier.New(d.JetStream, svc, d.Metrics, d.Log.With().Str("part", "applier").Logger(), applier.WithReplicas(d.Replicas)).Run)
			return svc.Purge, natsapi.Register(d.Micro, d.Server, svc)
		},
	}
}
