// Package natsapi serves the channel contract (contracts/channelv1) as micro
// endpoints: it turns requests into domain calls with the caller's identity, domain
// results into contract DTOs, and domain errors into wire errors in one place
// (wireError).
package natsapi

import (
	"context"
	"errors"
	"strconv"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// Register adds every channelv1 operation to ms under channelv1.Group, handled through
// srv by svc.
func Register(ms micro.Service, srv *natsrpc.Server, svc *channel.Service) error {
	a := &api{svc: svc}
	return natsx.AddEndpoints(ms, channelv1.Group,
		natsx.Handle(srv, channelv1.OpCreate, a.create),
		natsx.Handle(srv, channelv1.OpList, a.list),
		natsx.Handle(srv, channelv1.OpGet, a.get),
		natsx.Handle(srv, channelv1.OpUpdate, a.update),
		natsx.Handle(srv, channelv1.OpDelete, a.delete),
		natsx.Handle(srv, channelv1.OpSubscriptionsList, a.subscriptionsList),
		natsx.Handle(srv, channelv1.OpSubscriptionsAdd, a.subscriptionsAdd),
		natsx.Handle(srv, channelv1.OpSubscriptionsRemove, a.subscriptionsRemove),
		natsx.Handle(srv, channelv1.OpHistory, a.history),
		natsx.Handle(srv, channelv1.OpLookup, a.lookup),
		natsx.Handle(srv, channelv1.OpAgentRemoved, a.agentRemoved),
	)
}

type api struct {
	svc *channel.Service
}

func (a *api) create(ctx context.Context, req *channelv1.CreateRequest) (*channelv1.ChannelResponse, error) {
	c, err := a.svc.Create(ctx, channel.ActorFrom(ctx), req.Channel)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.ChannelResponse{Channel: c}, nil
}

func (a *api) list(ctx context.Context, req *channelv1.ListRequest) (*channelv1.ListResponse, error) {
	cs, cursor, err := a.svc.List(ctx, channel.ActorFrom(ctx), req.Limit, req.Cursor)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.ListResponse{Channels: cs, Cursor: cursor}, nil
}

func (a *api) get(ctx context.Context, req *channelv1.GetRequest) (*channelv1.ChannelResponse, error) {
	c, err := a.svc.Get(ctx, channel.ActorFrom(ctx), req.ChannelID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.ChannelResponse{Channel: c}, nil
}

func (a *api) update(ctx context.Context, req *channelv1.UpdateRequest) (*channelv1.ChannelResponse, error) {
	c, err := a.svc.Update(ctx, channel.ActorFrom(ctx), req.ChannelID, req.Changes)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.ChannelResponse{Channel: c}, nil
}

func (a *api) delete(ctx context.Context, req *channelv1.DeleteRequest) (*channelv1.Empty, error) {
	if err := a.svc.Delete(ctx, channel.ActorFrom(ctx), req.ChannelID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.Empty{}, nil
}

func (a *api) subscriptionsList(ctx context.Context, req *channelv1.SubscriptionsListRequest) (*channelv1.SubscriptionsListResponse, error) {
	subs, cursor, err := a.svc.ListSubscriptions(ctx, channel.ActorFrom(ctx), req.ChannelID, req.Limit, req.Cursor)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.SubscriptionsListResponse{Subscriptions: subs, Cursor: cursor}, nil
}

func (a *api) subscriptionsAdd(ctx context.Context, req *channelv1.SubscriptionsAddRequest) (*channelv1.SubscriptionResponse, error) {
	sub, err := a.svc.AddSubscription(ctx, channel.ActorFrom(ctx), req.ChannelID, req.Subscription)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.SubscriptionResponse{Subscription: sub}, nil
}

func (a *api) subscriptionsRemove(ctx context.Context, req *channelv1.SubscriptionsRemoveRequest) (*channelv1.Empty, error) {
	if err := a.svc.RemoveSubscription(ctx, channel.ActorFrom(ctx), req.ChannelID, req.AgentID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.Empty{}, nil
}

func (a *api) history(ctx context.Context, req *channelv1.HistoryRequest) (*historyReply, error) {
	page, err := a.svc.History(ctx, channel.ActorFrom(ctx), req.ChannelID, channel.HistoryQuery{
		AfterSeq: req.AfterSeq, BeforeSeq: req.BeforeSeq, Limit: req.Limit,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &historyReply{page: page}, nil
}

func (a *api) lookup(ctx context.Context, req *channelv1.LookupRequest) (*channelv1.Lookup, error) {
	l, err := a.svc.Lookup(ctx, req.TenantID, req.ChannelID, req.AgentID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &l, nil
}

func (a *api) agentRemoved(ctx context.Context, req *channelv1.AgentRemovedRequest) (*channelv1.Empty, error) {
	if err := a.svc.RemoveAgent(ctx, channel.ActorFrom(ctx), req.AgentID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &channelv1.Empty{}, nil
}

// historyReply is channelv1.HistoryResponse written by appending bytes: each message is
// its JSON as the stream reader built it, with the data exactly as published, which a
// pass of encoding/json would compact and HTML-escape.
type historyReply struct {
	page channel.HistoryPage
}

// EncodedJSON implements natsrpc.Encoded.
func (r *historyReply) EncodedJSON() []byte {
	n := 40
	for _, m := range r.page.Messages {
		n += len(m) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"messages":[`...)
	for i, m := range r.page.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	b = append(b, ']')
	if r.page.NextAfterSeq != 0 {
		b = append(b, `,"next_after_seq":`...)
		b = strconv.AppendUint(b, r.page.NextAfterSeq, 10)
	}
	return append(b, '}')
}

var _ natsrpc.Encoded = (*historyReply)(nil)

// wireError is the one mapping of errors to wire errors. Details come only from
// domain-built errors (never a lower layer's text). An error another service answered
// is returned as it came. Anything unclassified is returned as is, so natsrpc answers
// 500 (or 504 for an expired deadline) and logs it.
func wireError(ctx context.Context, err error) error {
	detail := func(def string) string { return domain.Detail(err, def) }
	var ve *channel.ValidationError
	switch {
	case errors.As(err, &ve):
		fields := make([]natsrpc.FieldError, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = natsrpc.FieldError{Field: f.Field, Message: f.Message}
		}
		return natsrpc.Invalid(fields...)
	case errors.Is(err, channel.ErrNotFound):
		return natsrpc.NotFound(detail("channel not found"))
	case errors.Is(err, channel.ErrForbidden):
		return natsrpc.Forbidden(detail("not allowed"))
	case errors.Is(err, channel.ErrLimit):
		return natsrpc.PlanLimit(detail("channel limit reached"))
	case errors.Is(err, channel.ErrConflict):
		return natsrpc.Conflict(detail("the request conflicts with the current state; try again"))
	case errors.Is(err, channel.ErrInvalidCursor):
		return natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "the page token is not valid")
	case errors.Is(err, channel.ErrUnavailable):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("dependency unavailable")
		return natsrpc.Unavailable("the channel service cannot reach its storage or a service it needs, try again shortly")
	}
	if e, ok := natsrpc.AsError(err); ok {
		return e
	}
	return err
}
