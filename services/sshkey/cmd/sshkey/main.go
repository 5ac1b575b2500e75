// Command sshkey runs the sshkey service: agents' SSH public keys and the challenge–response
// agent login, as a NATS micro service (svc.sshkey.v1.*) on its own table.
package main

import (
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/kit/agentlookup"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/gauge"
	"github.com/artcafe-ai/pubsub/services/kit/service"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/events"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/repo"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
)

func main() { service.Main(spec()) }

func spec() service.Spec {
	return service.Spec{
		Name:            sshkeyv1.Service,
		Description:     "agents' SSH public keys and challenge-response agent login",
		ContractVersion: sshkeyv1.Version,
		Table:           repo.Table,
		Setup: func(d service.Deps) (cascade.Purger, error) {
			gauges := gauge.New(d.JetStream, d.Log, gauge.WithReplicas(d.Replicas))
			d.Go("gauge reporter", gauges.Run)
			svc := sshkey.NewService(repo.New(d.Table), agentlookup.New(d.Client, sshkey.ErrNotFound, sshkey.ErrUnavailable), events.NewPublisher(d.NATS, d.Log), sshkey.WithGauges(gauges))
			return svc.Purge, natsapi.Register(d.Micro, d.Server, svc)
		},
	}
}
