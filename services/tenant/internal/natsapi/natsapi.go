// Package natsapi serves the tenant contract (contracts/tenantv1) as micro endpoints:
// it turns requests into domain calls with the caller's identity, domain results into
// contract DTOs, and domain errors into wire errors in one place (wireError).
package natsapi

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

// Register adds every tenantv1 operation to ms under tenantv1.Group, handled through
// srv by svc.
func Register(ms micro.Service, srv *natsrpc.Server, svc *tenant.Service) error {
	a := &api{svc: svc}
	return natsx.AddEndpoints(ms, tenantv1.Group,
		natsx.Handle(srv, tenantv1.OpCreate, a.create),
		natsx.Handle(srv, tenantv1.OpList, a.list),
		natsx.Handle(srv, tenantv1.OpGet, a.get),
		natsx.Handle(srv, tenantv1.OpUpdate, a.update),
		natsx.Handle(srv, tenantv1.OpSetPlan, a.setPlan),
		natsx.Handle(srv, tenantv1.OpDelete, a.delete),
		natsx.Handle(srv, tenantv1.OpRotateAPIKey, a.rotateAPIKey),
		natsx.Handle(srv, tenantv1.OpMembersList, a.membersList),
		natsx.Handle(srv, tenantv1.OpMembersAdd, a.membersAdd),
		natsx.Handle(srv, tenantv1.OpMembersUpdate, a.membersUpdate),
		natsx.Handle(srv, tenantv1.OpMembersRemove, a.membersRemove),
		natsx.Handle(srv, tenantv1.OpBilling, a.billing),
		natsx.Handle(srv, tenantv1.OpLookupMembership, a.lookupMembership),
		natsx.Handle(srv, tenantv1.OpLookupUserTenants, a.lookupUserTenants),
		natsx.Handle(srv, tenantv1.OpLookupAPIKey, a.lookupAPIKey),
		natsx.Handle(srv, tenantv1.OpLookupTenant, a.lookupTenant),
	)
}

type api struct {
	svc *tenant.Service
}

// actor is the caller as the gateway authenticated it (services trust the identity
// headers: only the gateway and services may publish on svc.>).
func actor(ctx context.Context) tenant.Actor {
	id := natsrpc.IdentityFrom(ctx)
	return tenant.Actor{Kind: id.Kind, ID: id.PrincipalID, Email: id.Email, PlatformAdmin: id.PlatformAdmin}
}

func (a *api) create(ctx context.Context, req *tenantv1.CreateRequest) (*tenantv1.CreateResponse, error) {
	t, key, err := a.svc.Create(ctx, actor(ctx), tenant.CreateInput{
		Name: req.Name, AdminEmail: req.AdminEmail, Tier: req.SubscriptionTier,
		Metadata: req.Metadata, TrialDays: req.TrialDays,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.CreateResponse{TenantID: t.ID, Tenant: toTenant(t, natsrpc.RoleOwner), APIKey: key}, nil
}

func (a *api) list(ctx context.Context, req *tenantv1.ListRequest) (*tenantv1.ListResponse, error) {
	ms, cursor, err := a.svc.List(ctx, actor(ctx), req.Limit, req.Cursor)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	out := &tenantv1.ListResponse{Tenants: make([]tenantv1.Tenant, 0, len(ms)), Cursor: cursor}
	for _, m := range ms {
		out.Tenants = append(out.Tenants, toTenant(m.Tenant, m.Role))
	}
	return out, nil
}

func (a *api) get(ctx context.Context, req *tenantv1.GetRequest) (*tenantv1.TenantResponse, error) {
	t, err := a.svc.Get(ctx, actor(ctx), req.TenantID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.TenantResponse{Tenant: toTenant(t, "")}, nil
}

func (a *api) update(ctx context.Context, req *tenantv1.UpdateRequest) (*tenantv1.TenantResponse, error) {
	c := req.Changes
	t, err := a.svc.Update(ctx, actor(ctx), req.TenantID, tenant.Changes{
		Name: c.Name, AdminEmail: c.AdminEmail, Metadata: c.Metadata, Description: c.Description,
		Website: c.Website, LogoURL: c.LogoURL, PrimaryColor: c.PrimaryColor, SecondaryColor: c.SecondaryColor,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.TenantResponse{Tenant: toTenant(t, "")}, nil
}

func (a *api) setPlan(ctx context.Context, req *tenantv1.SetPlanRequest) (*tenantv1.TenantResponse, error) {
	t, err := a.svc.SetPlan(ctx, actor(ctx), req.TenantID, tenant.PlanChanges{
		Tier: req.Changes.SubscriptionTier, Status: req.Changes.Status, PaymentStatus: req.Changes.PaymentStatus,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.TenantResponse{Tenant: toTenant(t, "")}, nil
}

// billing is the billing view of the identity's tenant (GET /billing).
func (a *api) billing(ctx context.Context, _ *tenantv1.BillingRequest) (*tenantv1.BillingResponse, error) {
	b, err := a.svc.Billing(ctx, actor(ctx), natsrpc.IdentityFrom(ctx).TenantID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.BillingResponse{
		TenantID: b.TenantID, Plan: b.Plan, BillingCycle: "monthly", NextBillingDate: b.NextBillingDate.Format(time.DateOnly),
		Amount: b.Amount, Currency: "USD", Status: b.Status,
	}, nil
}

func (a *api) delete(ctx context.Context, req *tenantv1.DeleteRequest) (*tenantv1.Empty, error) {
	if err := a.svc.Delete(ctx, actor(ctx), req.TenantID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.Empty{}, nil
}

func (a *api) rotateAPIKey(ctx context.Context, req *tenantv1.RotateAPIKeyRequest) (*tenantv1.RotateAPIKeyResponse, error) {
	key, err := a.svc.RotateAPIKey(ctx, actor(ctx), req.TenantID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.RotateAPIKeyResponse{APIKey: key}, nil
}

func (a *api) membersList(ctx context.Context, req *tenantv1.MembersListRequest) (*tenantv1.MembersListResponse, error) {
	ms, cursor, err := a.svc.ListMembers(ctx, actor(ctx), req.TenantID, req.Limit, req.Cursor)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	out := &tenantv1.MembersListResponse{Members: make([]tenantv1.Member, 0, len(ms)), Cursor: cursor}
	for _, m := range ms {
		out.Members = append(out.Members, toMember(m))
	}
	return out, nil
}

func (a *api) membersAdd(ctx context.Context, req *tenantv1.MembersAddRequest) (*tenantv1.MemberResponse, error) {
	m, err := a.svc.AddMember(ctx, actor(ctx), req.TenantID, tenant.MemberInput{
		UserID: req.Member.UserID, Email: req.Member.Email, Role: req.Member.Role,
	})
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.MemberResponse{Member: toMember(m)}, nil
}

func (a *api) membersUpdate(ctx context.Context, req *tenantv1.MembersUpdateRequest) (*tenantv1.MemberResponse, error) {
	m, err := a.svc.UpdateMember(ctx, actor(ctx), req.TenantID, req.UserID, req.Changes.Role)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.MemberResponse{Member: toMember(m)}, nil
}

func (a *api) membersRemove(ctx context.Context, req *tenantv1.MembersRemoveRequest) (*tenantv1.Empty, error) {
	if err := a.svc.RemoveMember(ctx, actor(ctx), req.TenantID, req.UserID); err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.Empty{}, nil
}

func (a *api) lookupMembership(ctx context.Context, req *tenantv1.LookupMembershipRequest) (*tenantv1.Membership, error) {
	m, err := a.svc.LookupMembership(ctx, req.TenantID, req.UserID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.Membership{TenantID: m.Tenant.ID, Role: m.Role, TenantStatus: m.Tenant.Status, TenantTier: m.Tenant.Tier}, nil
}

func (a *api) lookupUserTenants(ctx context.Context, req *tenantv1.LookupUserTenantsRequest) (*tenantv1.LookupUserTenantsResponse, error) {
	ms, more, err := a.svc.LookupUserTenants(ctx, req.UserID, req.Limit)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	out := &tenantv1.LookupUserTenantsResponse{Memberships: make([]tenantv1.Membership, 0, len(ms)), More: more}
	for _, m := range ms {
		out.Memberships = append(out.Memberships, tenantv1.Membership{TenantID: m.Tenant.ID, Role: m.Role, TenantStatus: m.Tenant.Status, TenantTier: m.Tenant.Tier})
	}
	return out, nil
}

func (a *api) lookupAPIKey(ctx context.Context, req *tenantv1.LookupAPIKeyRequest) (*tenantv1.LookupAPIKeyResponse, error) {
	t, err := a.svc.LookupAPIKey(ctx, req.KeyHash)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.LookupAPIKeyResponse{TenantID: t.ID, TenantStatus: t.Status, TenantTier: t.Tier}, nil
}

func (a *api) lookupTenant(ctx context.Context, req *tenantv1.LookupTenantRequest) (*tenantv1.TenantStanding, error) {
	t, err := a.svc.LookupTenant(ctx, req.TenantID)
	if err != nil {
		return nil, wireError(ctx, err)
	}
	return &tenantv1.TenantStanding{TenantID: t.ID, TenantStatus: t.Status, TenantTier: t.Tier}, nil
}

// toTenant is the public form of a tenant: no key hash, no bookkeeping, times in UTC.
func toTenant(t tenant.Tenant, role string) tenantv1.Tenant {
	md := t.Metadata
	if md == nil {
		md = map[string]any{}
	}
	var exp *time.Time
	if t.SubscriptionExpiresAt != nil {
		e := t.SubscriptionExpiresAt.UTC()
		exp = &e
	}
	// Limits always come from the plans table, never from a stored copy, so a change of
	// the table reaches every tenant of the plan.
	plan, _ := plans.Get(t.Tier)
	return tenantv1.Tenant{
		ID: t.ID, TenantID: t.ID, Name: t.Name, AdminEmail: t.AdminEmail,
		SubscriptionTier: t.Tier, Status: t.Status, PaymentStatus: t.PaymentStatus,
		SubscriptionExpiresAt: exp, Limits: plan.Limits, Metadata: md,
		Description: t.Description, Website: t.Website, LogoURL: t.LogoURL,
		PrimaryColor: t.PrimaryColor, SecondaryColor: t.SecondaryColor,
		CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC(), Role: role,
	}
}

func toMember(m tenant.Member) tenantv1.Member {
	return tenantv1.Member{ID: m.UserID, UserID: m.UserID, Email: m.Email, Role: m.Role, JoinedAt: m.JoinedAt.UTC()}
}

// wireError is the one mapping of domain errors to wire errors. Details come only from
// domain-built errors (never a lower layer's text); anything unclassified is returned as
// is, so natsrpc answers 500 (or 504 for an expired deadline) and logs it.
func wireError(ctx context.Context, err error) error {
	detail := func(def string) string { return domain.Detail(err, def) }
	var ve *tenant.ValidationError
	switch {
	case errors.As(err, &ve):
		return natsrpc.Invalid(natsrpc.FieldError{Field: ve.Field, Message: ve.Message})
	case errors.Is(err, tenant.ErrNotFound):
		return natsrpc.NotFound(detail("not found"))
	case errors.Is(err, tenant.ErrLastOwner):
		return natsrpc.Conflict(detail("the last owner cannot be removed or demoted"))
	case errors.Is(err, tenant.ErrConflict):
		return natsrpc.Conflict(detail("the request conflicts with the current state; try again"))
	case errors.Is(err, tenant.ErrTooManyTenants):
		return natsrpc.Forbidden(detail("you own the most tenants one user may own"))
	case errors.Is(err, tenant.ErrForbidden):
		return natsrpc.Forbidden(detail("not allowed"))
	case errors.Is(err, tenant.ErrInvalidCursor):
		return natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "the page token is not valid")
	case errors.Is(err, tenant.ErrUnavailable):
		zerolog.Ctx(ctx).Warn().Err(err).Msg("dependency unavailable")
		return natsrpc.Unavailable("the tenant service cannot reach its storage, try again shortly")
	}
	return err
}
