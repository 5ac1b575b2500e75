package domain

import (
	"context"
	"fmt"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Actor is who asks, as the gateway authenticated it (services trust the identity: only
// the gateway and services may publish on svc.>). A service defines its own
// `type Actor domain.Actor` and adds its access rules (`may…` methods).
type Actor struct {
	TenantID string
	Kind     natsrpc.PrincipalKind
	// ID is the user id, the agent id for agent tokens, or the tenant id for API keys.
	ID   string
	Role string
	// Plan is the tenant's tier as the gateway resolved it (≤ 5 s old).
	Plan string
}

// ActorFrom is the actor of a request context.
func ActorFrom(ctx context.Context) Actor {
	id := natsrpc.IdentityFrom(ctx)
	return Actor{TenantID: id.TenantID, Kind: id.Kind, ID: id.PrincipalID, Role: id.Role, Plan: id.Plan}
}

// Tenant is the tenant a tenant-scoped operation works in. The gateway always sets it;
// a missing or malformed one is a programming error (500, logged), never a 4xx.
func (a Actor) Tenant() (string, error) {
	if !validation.IsUUID(a.TenantID) {
		return "", fmt.Errorf("the caller's identity carries no valid tenant id (%q)", a.TenantID)
	}
	return a.TenantID, nil
}

// TenantPlan is the limits of the caller's plan; an unknown plan is a programming error
// (500, logged).
func (a Actor) TenantPlan() (plans.Plan, error) {
	p, ok := plans.Get(a.Plan)
	if !ok {
		return plans.Plan{}, fmt.Errorf("the caller's identity carries no known plan (%q)", a.Plan)
	}
	return p, nil
}
