// Command tenant runs the tenant service: tenants, members, API keys and the lookups the
// gateway authenticates with, as a NATS micro service (svc.tenant.v1.*) on its own table.
package main

import (
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/service"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/events"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

func main() { service.Main(spec()) }

func spec() service.Spec {
	return service.Spec{
		Name:            tenantv1.Service,
		Description:     "tenants, members, API keys and authentication lookups",
		ContractVersion: tenantv1.Version,
		Table:           repo.Table,
		Setup: func(d service.Deps) (cascade.Purger, error) {
			svc := tenant.NewService(repo.New(d.Table), events.NewPublisher(d.NATS, d.JetStream, d.Log))
			return svc.Purge, natsapi.Register(d.Micro, d.Server, svc)
		},
	}
}
