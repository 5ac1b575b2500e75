// Package natsapi serves the sshkey contract (contracts/sshkeyv1) as micro endpoints:
// it turns requests into domain calls with the caller's scope, domain results into
// contract DTOs, and domain errors into wire errors in one place (wireError).
package natsapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
)

// Register adds every sshkeyv1 operation to ms under sshkeyv1.Group, handled through
// srv by svc.
func Register(ms micro.Service, srv *natsrpc.Server, svc *sshkey.Service) error {
	a := &api{svc: svc}
	return natsx.AddEndpoints(ms, sshkeyv1.Group,
		natsx.Handle(srv, sshkeyv1.OpCreate, a.create),
		natsx.Handle(srv, sshkeyv1.OpList, a.list),
		natsx.Handle(srv, sshkeyv1.OpGet, a.get),
		natsx.Handle(srv, sshkeyv1.OpRevoke, a.revoke),
		natsx.Handle(srv, sshkeyv1.OpDelete, a.delete),
		natsx.Handle(srv, sshkeyv1.OpChallenge, a.challenge),
		natsx.Handle(srv, sshkeyv1.OpVerify, a.verify),
		natsx.Handle(srv, sshkeyv1.OpCreateForAgent, a.createForAgent),
		natsx.Handle(srv, sshkeyv1.OpDeleteForAgent, a.deleteForAgent),
		natsx.Handle(srv, sshkeyv1.OpLookupCredential, a.lookupCredential),
		natsx.Handle(srv, sshkeyv1.OpCheckPublicKey, a.checkPublicKey),
	)
}

type api struct {
	svc *sshkey.Service
}

// scope is the tenant and plan of a tenant-scoped request, as the gateway resolved them
// (services trust the identity headers: only the gateway and services publish on
// svc.>). Agent tokens never reach key operations: the gateway refuses them, and this
// refuses them again.
func scope(ctx context.Context) (sshkey.Scope, error) {
	id := natsrpc.IdentityFrom(ctx)
	if id.Kind == natsrpc.KindAgent {
		return sshkey.Scope{}, natsrpc.Forbidden("agents may not manage SSH keys")
	}
	return sshkey.Scope{TenantID: id.TenantID, Plan: id.Plan}, nil
}

// createInput maps a create body; the domain upper-cases and checks the agent id.
func createInput(b sshkeyv1.CreateBody) sshkey.CreateInput {
	return sshkey.CreateInput{Name: b.Name, PublicKey: b.PublicKey, KeyType: b.KeyType, AgentID: b.AgentID, Metadata: b.Metadata}
}

func (a *api) create(ctx context.Context, req *sshkeyv1.CreateRequest) (*sshkeyv1.KeyResponse, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	k, err := a.svc.Create(ctx, sc, createInput(req.Key))
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.KeyResponse{Key: toKey(k)}, nil
}

func (a *api) createForAgent(ctx context.Context, req *sshkeyv1.CreateForAgentRequest) (*sshkeyv1.KeyResponse, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	k, err := a.svc.CreateForAgent(ctx, sc, req.AgentID, createInput(req.Key))
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.KeyResponse{Key: toKey(k)}, nil
}

func (a *api) checkPublicKey(ctx context.Context, req *sshkeyv1.CheckPublicKeyRequest) (*sshkeyv1.CheckedPublicKey, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	pk, err := a.svc.CheckPublicKey(ctx, sc, req.PublicKey)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.CheckedPublicKey{Algorithm: pk.Algorithm, Fingerprint: pk.Fingerprint}, nil
}

func (a *api) list(ctx context.Context, req *sshkeyv1.ListRequest) (*sshkeyv1.ListResponse, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	keys, cursor, err := a.svc.List(ctx, sc, sshkey.ListFilter{AgentID: req.AgentID, KeyType: req.KeyType}, req.Limit, req.Cursor)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	out := &sshkeyv1.ListResponse{Keys: make([]sshkeyv1.Key, 0, len(keys)), Cursor: cursor}
	for _, k := range keys {
		out.Keys = append(out.Keys, toKey(k))
	}
	return out, nil
}

func (a *api) get(ctx context.Context, req *sshkeyv1.GetRequest) (*sshkeyv1.KeyResponse, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	k, err := a.svc.Get(ctx, sc, req.KeyID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.KeyResponse{Key: toKey(k)}, nil
}

func (a *api) revoke(ctx context.Context, req *sshkeyv1.RevokeRequest) (*sshkeyv1.KeyResponse, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	k, err := a.svc.Revoke(ctx, sc, req.KeyID, req.Changes.Reason)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.KeyResponse{Key: toKey(k)}, nil
}

func (a *api) delete(ctx context.Context, req *sshkeyv1.DeleteRequest) (*sshkeyv1.Empty, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.svc.Delete(ctx, sc, req.KeyID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.Empty{}, nil
}

func (a *api) deleteForAgent(ctx context.Context, req *sshkeyv1.DeleteForAgentRequest) (*sshkeyv1.Empty, error) {
	sc, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.svc.DeleteForAgent(ctx, sc, req.AgentID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.Empty{}, nil
}

func (a *api) lookupCredential(ctx context.Context, req *sshkeyv1.LookupCredentialRequest) (*sshkeyv1.Empty, error) {
	if err := a.svc.LookupCredential(ctx, req.TenantID, req.AgentID, req.KeyID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.Empty{}, nil
}

// login is a login request's tenant and ids (upper-cased) with the caller's address.
func login(ctx context.Context, tenantID, keyID, agentID string) sshkey.Login {
	if keyID != "" {
		keyID, _ = sshkeyv1.NormalizeID(keyID)
	}
	if agentID != "" {
		agentID, _ = sshkeyv1.NormalizeID(agentID)
	}
	return sshkey.Login{TenantID: tenantID, KeyID: keyID, AgentID: agentID, ClientIP: natsrpc.IdentityFrom(ctx).ClientIP}
}

func (a *api) challenge(ctx context.Context, req *sshkeyv1.ChallengeRequest) (*sshkeyv1.Challenge, error) {
	b := req.Login
	c, err := a.svc.Challenge(ctx, login(ctx, b.TenantID, b.KeyID, b.AgentID))
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.Challenge{
		Challenge: c.Value, ExpiresAt: c.ExpiresAt.UTC(), TenantID: c.TenantID,
		KeyID: optional(c.KeyID), AgentID: optional(c.AgentID),
	}, nil
}

func (a *api) verify(ctx context.Context, req *sshkeyv1.VerifyRequest) (*sshkeyv1.Verified, error) {
	b := req.Login
	v, err := a.svc.Verify(ctx, login(ctx, b.TenantID, b.KeyID, b.AgentID), b.Challenge, b.Response)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &sshkeyv1.Verified{TenantID: v.TenantID, AgentID: v.AgentID, KeyID: v.KeyID}, nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// toKey is the public form of a key, times in UTC.
func toKey(k sshkey.Key) sshkeyv1.Key {
	md := k.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return sshkeyv1.Key{
		ID: k.ID, KeyID: k.ID, TenantID: k.TenantID, Name: k.Name, PublicKey: k.PublicKey,
		KeyType: k.KeyType, AgentID: optional(k.AgentID), Fingerprint: k.Fingerprint,
		Algorithm: k.Algorithm, Status: k.Status, Revoked: !k.Active(), RevokedAt: utc(k.RevokedAt),
		RevocationReason: k.RevocationReason, LastUsed: utc(k.LastUsed), Metadata: md,
		CreatedAt: k.CreatedAt.UTC(), UpdatedAt: k.UpdatedAt.UTC(),
	}
}

// wireError is the one mapping of domain errors to wire errors. Details come only from
// domain-built errors (never a lower layer's text); anything unclassified (including
// sshkey.ErrScope, a programming error) is returned as is, so natsrpc answers 500 (or
// 504 for an expired deadline) and logs it.
func wireError(ctx context.Context, err error) error {
	detail := func(def string) string { return domain.Detail(err, def) }
	var (
		ve *sshkey.ValidationError
		rl *sshkey.RateLimitError
	)
	switch {
	case errors.As(err, &ve):
		return natsrpc.Invalid(natsrpc.FieldError{Field: ve.Field, Message: ve.Message})
	case errors.Is(err, sshkey.ErrPrivateKey):
		return natsrpc.NewError(http.StatusUnprocessableEntity, natsrpc.CodePrivateKeyRejected, detail("a private key was sent; send the public key"))
	case errors.Is(err, sshkey.ErrLoginFailed):
		zerolog.Ctx(ctx).Debug().Err(err).Msg("login attempt failed")
		return sshkeyv1.InvalidSignature()
	case errors.As(err, &rl):
		return natsrpc.RateLimited(rl.Detail, int(rl.RetryAfter/time.Second))
	case errors.Is(err, sshkey.ErrNotFound):
		return natsrpc.NotFound(detail("not found"))
	case errors.Is(err, sshkey.ErrConflict):
		return natsrpc.Conflict(detail("the request conflicts with the current state; try again"))
	case errors.Is(err, sshkey.ErrPlanLimit):
		return natsrpc.PlanLimit(detail("the plan's key limit is reached"))
	case errors.Is(err, sshkey.ErrInvalidCursor):
		return natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "the page token is not valid")
	case errors.Is(err, sshkey.ErrUnavailable):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("dependency unavailable")
		return natsrpc.Unavailable("the ssh key service cannot reach its storage or the agent service, try again shortly")
	}
	return err
}
