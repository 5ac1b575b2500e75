// Package natsapi serves the agent contract (contracts/agentv1) as micro endpoints: it
// turns requests into domain calls with the caller's identity, domain results into
// contract DTOs, and domain errors into wire errors in one place (wireError).
package natsapi

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// Register adds every agentv1 operation to ms under agentv1.Group, handled through srv
// by svc.
func Register(ms micro.Service, srv *natsrpc.Server, svc *agent.Service) error {
	a := &api{svc: svc}
	return natsx.AddEndpoints(ms, agentv1.Group,
		natsx.Handle(srv, agentv1.OpCreate, a.create),
		natsx.Handle(srv, agentv1.OpList, a.list),
		natsx.Handle(srv, agentv1.OpGet, a.get),
		natsx.Handle(srv, agentv1.OpUpdate, a.update),
		natsx.Handle(srv, agentv1.OpSetStatus, a.setStatus),
		natsx.Handle(srv, agentv1.OpDelete, a.delete),
		natsx.Handle(srv, agentv1.OpStatusSummary, a.statusSummary),
		natsx.Handle(srv, agentv1.OpLookup, a.lookup),
	)
}

type api struct {
	svc *agent.Service
}

// agentReply is agentv1.AgentResponse with the agent's stored JSON relayed as it is
// (the stored form is the wire form), so a read does not decode and re-encode it.
type agentReply struct {
	Agent json.RawMessage `json:"agent"`
}

// EncodedJSON writes the reply without a pass of encoding/json over the stored bytes
// (natsrpc.Encoded).
func (r *agentReply) EncodedJSON() []byte {
	if len(r.Agent) == 0 {
		return []byte(`{"agent":null}`)
	}
	b := make([]byte, 0, len(r.Agent)+10)
	b = append(b, `{"agent":`...)
	b = append(b, r.Agent...)
	return append(b, '}')
}

// listReply is agentv1.ListResponse with the agents relayed as stored.
type listReply struct {
	Agents []json.RawMessage `json:"agents"`
	Cursor string            `json:"cursor,omitempty"`
}

func (a *api) create(ctx context.Context, req *agentv1.CreateRequest) (*agentv1.CreateResponse, error) {
	ag, key, err := a.svc.Create(ctx, agent.ActorFrom(ctx), req.Agent)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentv1.CreateResponse{Agent: ag.Agent, Key: key}, nil
}

func (a *api) list(ctx context.Context, req *agentv1.ListRequest) (*listReply, error) {
	agents, cursor, err := a.svc.List(ctx, agent.ActorFrom(ctx), agent.ListQuery{
		Status: req.Status, Type: req.Type, Capability: req.Capability, Limit: req.Limit, Cursor: req.Cursor,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &listReply{Agents: agents, Cursor: cursor}, nil
}

func (a *api) get(ctx context.Context, req *agentv1.GetRequest) (*agentReply, error) {
	st, err := a.svc.Get(ctx, agent.ActorFrom(ctx), req.AgentID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentReply{Agent: st.JSON}, nil
}

func (a *api) update(ctx context.Context, req *agentv1.UpdateRequest) (*agentv1.AgentResponse, error) {
	ag, err := a.svc.Update(ctx, agent.ActorFrom(ctx), req.AgentID, req.Changes)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentv1.AgentResponse{Agent: ag.Agent}, nil
}

func (a *api) setStatus(ctx context.Context, req *agentv1.SetStatusRequest) (*agentv1.AgentResponse, error) {
	ag, err := a.svc.SetStatus(ctx, agent.ActorFrom(ctx), req.AgentID, req.Changes.Status)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentv1.AgentResponse{Agent: ag.Agent}, nil
}

func (a *api) delete(ctx context.Context, req *agentv1.DeleteRequest) (*agentv1.Empty, error) {
	if err := a.svc.Delete(ctx, agent.ActorFrom(ctx), req.AgentID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentv1.Empty{}, nil
}

func (a *api) statusSummary(ctx context.Context, _ *agentv1.StatusSummaryRequest) (*agentv1.StatusSummary, error) {
	sum, err := a.svc.StatusSummary(ctx, agent.ActorFrom(ctx))
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sum, nil
}

func (a *api) lookup(ctx context.Context, req *agentv1.LookupRequest) (*agentv1.LookupResponse, error) {
	ag, err := a.svc.Lookup(ctx, req.TenantID, req.AgentID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &agentv1.LookupResponse{AgentID: ag.ID, Status: ag.Status}, nil
}

// wireError is the one mapping of errors to wire errors. Details come only from
// domain-built errors (never a lower layer's text). An error the sshkey service answered
// is returned as it came (its 422/409/402 are the caller's answer). Anything
// unclassified is returned as is, so natsrpc answers 500 (or 504 for an expired
// deadline) and logs it.
func wireError(ctx context.Context, err error) error {
	detail := func(def string) string { return domain.Detail(err, def) }
	var ve *agent.ValidationError
	switch {
	case errors.As(err, &ve):
		return natsrpc.Invalid(natsrpc.FieldError{Field: ve.Field, Message: ve.Message})
	case errors.Is(err, agent.ErrNotFound):
		return natsrpc.NotFound(detail("agent not found"))
	case errors.Is(err, agent.ErrForbidden):
		return natsrpc.Forbidden(detail("not allowed"))
	case errors.Is(err, agent.ErrLimit):
		return natsrpc.PlanLimit(detail("agent limit reached"))
	case errors.Is(err, agent.ErrConflict):
		return natsrpc.Conflict(detail("the request conflicts with the current state; try again"))
	case errors.Is(err, agent.ErrInvalidCursor):
		return natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "the page token is not valid")
	case errors.Is(err, agent.ErrUnavailable):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("dependency unavailable")
		return natsrpc.Unavailable("the agent service cannot reach its storage, try again shortly")
	}
	if e, ok := natsrpc.AsError(err); ok {
		return e
	}
	return err
}
