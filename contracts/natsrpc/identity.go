// Package natsrpc is the request-reply protocol between the gateway and the services:
// JSON bodies over NATS micro endpoints, the caller's identity in headers, and errors as
// micro error headers plus a JSON body {code, detail, errors}.
//
// Only the gateway and the services may publish on svc.> (NATS permissions), so a
// service trusts the identity headers it receives.
package natsrpc

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names. The gateway builds them itself; it never copies a client header here.
const (
	HeaderRequestID     = "Artcafe-Request-Id"
	HeaderTenantID      = "Artcafe-Tenant-Id"
	HeaderPrincipalKind = "Artcafe-Principal-Kind"
	HeaderPrincipalID   = "Artcafe-Principal-Id"
	HeaderRole          = "Artcafe-Role"
	HeaderEmail         = "Artcafe-Email"
	HeaderPlatformAdmin = "Artcafe-Platform-Admin"
	// HeaderPlan is the tenant's subscription tier as the gateway resolved it (≤ 5 s
	// old): services read count limits from plans.Get(plan) without a lookup.
	HeaderPlan = "Artcafe-Plan"
	// HeaderClientIP is the caller's address as the gateway sees it (X-Forwarded-For only
	// from trusted proxies), for per-address rate limits.
	HeaderClientIP = "Artcafe-Client-Ip"
	// HeaderBudget is the caller's remaining time budget in milliseconds; a service
	// never works on a request longer than its caller waits for it.
	HeaderBudget = "Artcafe-Budget-Ms"
)

// PrincipalKind says how the caller authenticated.
type PrincipalKind string

const (
	KindUser   PrincipalKind = "user"
	KindAgent  PrincipalKind = "agent"
	KindAPIKey PrincipalKind = "api_key"
	// KindSystem is the gateway or a service acting for itself (lookups, cascades).
	KindSystem PrincipalKind = "system"
)

// Roles in a tenant, highest first.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleViewer = "viewer"
)

// RoleRank orders roles: owner 4 > admin 3 > member 2 > viewer 1; unknown 0.
func RoleRank(role string) int {
	switch role {
	case RoleOwner:
		return 4
	case RoleAdmin:
		return 3
	case RoleMember:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Identity is who a request is for. TenantID is empty for calls that are not
// tenant-scoped (creating or listing one's tenants, lookups).
type Identity struct {
	RequestID     string
	TenantID      string
	Kind          PrincipalKind
	PrincipalID   string // user sub, agent id, or tenant id for an API key
	Role          string // role in TenantID; "admin" for API keys
	Email         string
	PlatformAdmin bool
	Plan          string // the tenant's tier (plans.Free, …); "" when not tenant-scoped
	ClientIP      string
}

type identityKey struct{}

// identityCtx carries an Identity in one allocation (context.WithValue would box the
// Identity in a second one); every gateway request makes two of them.
type identityCtx struct {
	context.Context
	id Identity
}

func (c *identityCtx) Value(key any) any {
	if key == (identityKey{}) {
		return &c.id
	}
	return c.Context.Value(key)
}

// WithIdentity returns ctx carrying id; Client.Call sends it as headers.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return &identityCtx{Context: ctx, id: id}
}

// IdentityFrom returns the identity in ctx (the zero Identity when none).
func IdentityFrom(ctx context.Context) Identity {
	if id, ok := ctx.Value(identityKey{}).(*Identity); ok {
		return *id
	}
	return Identity{}
}

// identityHeaders is the most headers writeHeaders sets: a map and a value array of this
// size hold them without growing.
const identityHeaders = 10

func (id Identity) writeHeaders(h nats.Header, budget time.Duration) {
	// Every value is a one-element slice of this one array: one allocation for all of
	// them instead of one per header (each slice has its capacity cut to 1, so an append
	// to one of them never writes into another).
	vals := make([]string, 0, identityHeaders)
	set := func(k, v string) {
		if v != "" {
			vals = append(vals, v)
			n := len(vals)
			h[k] = vals[n-1 : n : n]
		}
	}
	set(HeaderRequestID, id.RequestID)
	set(HeaderTenantID, id.TenantID)
	set(HeaderPrincipalKind, string(id.Kind))
	set(HeaderPrincipalID, id.PrincipalID)
	set(HeaderRole, id.Role)
	set(HeaderEmail, id.Email)
	set(HeaderPlan, id.Plan)
	set(HeaderClientIP, id.ClientIP)
	if id.PlatformAdmin {
		set(HeaderPlatformAdmin, "true")
	}
	if budget > 0 {
		// Round a sub-millisecond remainder up: "0" would read as no budget at all.
		set(HeaderBudget, strconv.FormatInt(max(budget.Milliseconds(), 1), 10))
	}
}

func identityFromHeaders(h nats.Header) Identity {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return Identity{
		RequestID:     get(HeaderRequestID),
		TenantID:      get(HeaderTenantID),
		Kind:          PrincipalKind(get(HeaderPrincipalKind)),
		PrincipalID:   get(HeaderPrincipalID),
		Role:          get(HeaderRole),
		Email:         get(HeaderEmail),
		PlatformAdmin: get(HeaderPlatformAdmin) == "true",
		Plan:          get(HeaderPlan),
		ClientIP:      get(HeaderClientIP),
	}
}
