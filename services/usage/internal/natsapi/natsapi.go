// Package natsapi serves the usage contract (contracts/usagev1) as micro endpoints: it
// turns requests into domain calls with the caller's identity and domain errors into
// wire errors in one place (wireError).
package natsapi

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

// Register adds every usagev1 operation to ms under usagev1.Group, handled through srv
// by svc.
func Register(ms micro.Service, srv *natsrpc.Server, svc *usage.Service) error {
	a := &api{svc: svc}
	return natsx.AddEndpoints(ms, usagev1.Group,
		natsx.Handle(srv, usagev1.OpMetrics, a.metrics),
	)
}

type api struct {
	svc *usage.Service
}

func (a *api) metrics(ctx context.Context, req *usagev1.MetricsRequest) (*usagev1.MetricsResponse, error) {
	resp, err := a.svc.Metrics(ctx, usage.ActorFrom(ctx), *req)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &resp, nil
}

// wireError is the one mapping of errors to wire errors. Details come only from
// domain-built errors; a contract's own *natsrpc.Error (a 422 from the range rules)
// passes as it is; anything unclassified is returned as is (natsrpc answers 500 and
// logs it).
func wireError(ctx context.Context, err error) error {
	detail := func(def string) string { return domain.Detail(err, def) }
	switch {
	case errors.Is(err, usage.ErrForbidden):
		return natsrpc.Forbidden(detail("not allowed"))
	case errors.Is(err, usage.ErrUnavailable):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("storage unavailable")
		return natsrpc.Unavailable("the usage service cannot reach its storage, try again shortly")
	}
	if e, ok := natsrpc.AsError(err); ok {
		return e
	}
	return err
}
