package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

// kinds is a set of principal kinds a route accepts.
type kinds uint8

const (
	users kinds = 1 << iota
	apiKeys
	agents

	anyKind = users | apiKeys | agents
)

func kindOf(k natsrpc.PrincipalKind) kinds {
	switch k {
	case natsrpc.KindUser:
		return users
	case natsrpc.KindAPIKey:
		return apiKeys
	case natsrpc.KindAgent:
		return agents
	}
	return 0
}

// scope says where a route's tenant comes from (SPEC §13 "Tenant resolution").
type scope uint8

const (
	// scopeNone: not tenant-scoped (creating or listing one's own tenants).
	scopeNone scope = iota
	// scopePath: the {id} of /tenants/{id}/…; no access is 404.
	scopePath
	// scopeHeader: x-tenant-id, else the token's tenant_id claim, else the only membership.
	scopeHeader
	// scopeOptional: like scopeHeader, but no tenant at all is fine (GET /me).
	scopeOptional
)

// policy is who may call a route (SPEC §13 "Who may call what"), as a value on the route
// so adding a route is one line. The checks run in a fixed order: credentials (401),
// principal kind (403), platform admin (403), tenant access (404 on path routes),
// role (403), suspended tenant (403 tenant_suspended), an agent on another agent's id (404).
type policy struct {
	public bool  // no credentials needed
	kinds  kinds // principal kinds allowed
	scope  scope
	// minRole is the lowest tenant role a user needs; API keys act as admin. Agents are
	// limited by kinds here and by their own handlers' checks.
	minRole string
	// platformOnly: platform admins only, whatever their role in the tenant.
	platformOnly bool
	// adminNonMember: a platform admin who is not a member may call it (GET /tenants/{id}).
	adminNonMember bool
	// allowSuspended: still answers when the tenant is suspended.
	allowSuspended bool
	// agentSelf: agent tokens may call it only on their own record, the {id} of the path;
	// any other id is 404 for them (never 403: that would say the agent exists).
	agentSelf bool
}

// publicPolicy: no credentials (health, docs).
func publicPolicy() policy { return policy{public: true} }

// anyCaller: any valid credentials; a tenant is resolved when possible.
func anyCaller() policy { return policy{kinds: anyKind, scope: scopeOptional} }

// usersOnly: people acting for themselves, outside any tenant.
func usersOnly() policy { return policy{kinds: users, scope: scopeNone} }

// pathPolicy is a /tenants/{id}/… route for the given kinds from minRole up.
func pathPolicy(k kinds, minRole string) policy {
	return policy{kinds: k, scope: scopePath, minRole: minRole}
}

// tenantPolicy is a route in the tenant of x-tenant-id (else the token's claim, else the
// caller's only membership) for the given kinds from minRole up.
func tenantPolicy(k kinds, minRole string) policy {
	return policy{kinds: k, scope: scopeHeader, minRole: minRole}
}

// withAgentSelf lets agent tokens call the route on their own /…/{id} only.
func (p policy) withAgentSelf() policy { p.kinds |= agents; p.agentSelf = true; return p }

func (p policy) withSuspended() policy      { p.allowSuspended = true; return p }
func (p policy) withAdminNonMember() policy { p.adminNonMember = true; return p }
func (p policy) platformAdmins() policy     { p.platformOnly = true; return p }

// requiresTenant reports whether the route acts inside one tenant.
func (p policy) requiresTenant() bool { return p.scope == scopePath || p.scope == scopeHeader }

// permits checks a principal's standing in the resolved tenant against the policy.
func (p policy) permits(pr auth.Principal, acc auth.Access) error {
	switch pr.Kind {
	case natsrpc.KindUser:
		switch {
		case p.platformOnly:
			// Platform admins act on any tenant, member or not (checked earlier).
		case acc.Role == "":
			// A platform admin who is not a member: only where the route says so, and
			// for the rest the tenant does not exist for them.
			if !p.adminNonMember {
				return natsrpc.NotFound("tenant not found")
			}
		case natsrpc.RoleRank(acc.Role) < natsrpc.RoleRank(p.minRole):
			return natsrpc.Forbidden("this needs the " + p.minRole + " role or higher in the tenant")
		}
	case natsrpc.KindAPIKey:
		if natsrpc.RoleRank(acc.Role) < natsrpc.RoleRank(p.minRole) {
			return natsrpc.Forbidden("API keys may not do this")
		}
	}
	if acc.TenantStatus == tenantv1.StatusSuspended && !p.allowSuspended {
		return natsrpc.NewError(http.StatusForbidden, natsrpc.CodeTenantSuspended, "the tenant is suspended")
	}
	return nil
}

// request is one authorized call, handed to a route's handler.
type request struct {
	c         *fiber.Ctx
	ctx       context.Context // request deadline + the natsrpc.Identity for upstream calls
	principal auth.Principal
	access    auth.Access // zero when the route is not tenant-scoped
	api       *api
}

// call makes one upstream request with its own deadline inside the request's.
func (r *request) call(subject string, req, resp any) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.api.upstreamTimeout)
	defer cancel()
	return r.api.rpc.Call(ctx, subject, req, resp)
}

// relay makes one upstream request and answers with the service's reply object plus
// "success": true, spliced in without decoding it. A single-resource reply ({"agent":
// …}, {"key": …}) is the HTTP envelope already; relaying it raw keeps two JSON passes
// off the gateway's hottest path.
func (r *request) relay(status int, subject string, req any) error {
	ctx, cancel := context.WithTimeout(r.ctx, r.api.upstreamTimeout)
	defer cancel()
	data, err := r.api.rpc.CallRaw(ctx, subject, req)
	if err != nil {
		return err
	}
	head, tail, ok := withSuccess(data)
	if !ok {
		return natsrpc.NewError(http.StatusBadGateway, natsrpc.CodeBadGateway, "upstream reply is not a JSON object")
	}
	// Copied straight into the response's pooled body buffer: no buffer is allocated
	// for the reply.
	resp := r.c.Response()
	resp.SetStatusCode(status)
	resp.Header.SetContentType(fiber.MIMEApplicationJSON)
	resp.SetBody(head)
	resp.AppendBodyString(tail)
	return nil
}

// withSuccess splits the JSON object obj with "success":true added as its last member
// into two parts to write one after the other: obj up to its closing brace, and the
// text that adds the member and closes it.
func withSuccess(obj []byte) (head []byte, tail string, ok bool) {
	obj = bytes.TrimSpace(obj)
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return nil, "", false
	}
	head = obj[:len(obj)-1]
	if len(bytes.TrimSpace(head[1:])) > 0 {
		return head, `,"success":true}`, true
	}
	return head, `"success":true}`, true
}

// reply writes v as JSON with status.
func (r *request) reply(status int, v any) error {
	return r.c.Status(status).JSON(v)
}

// authorize authenticates the caller, resolves the tenant and applies the route's policy.
func (a *api) authorize(c *fiber.Ctx, rt *route, info *reqInfo) (*request, error) {
	base := c.UserContext()
	// Lookups the authenticator makes carry the request id, as the system.
	lookupCtx := natsrpc.WithIdentity(base, natsrpc.Identity{RequestID: info.requestID, Kind: natsrpc.KindSystem})

	// Header values are copied: fasthttp reuses their memory after the request, and the
	// authenticator may keep them in a cache.
	authorization, apiKey, tenantHeader := credentials(c, rt.queryAuth)
	pr, err := a.auth.Authenticate(lookupCtx, authorization, apiKey)
	if err != nil {
		return nil, err
	}
	info.kind = string(pr.Kind)
	pol := rt.policy
	if kindOf(pr.Kind)&pol.kinds == 0 {
		return nil, natsrpc.Forbidden(forbiddenKind(pr.Kind))
	}
	if pol.platformOnly && !pr.PlatformAdmin {
		return nil, natsrpc.Forbidden("only platform administrators may do this")
	}

	var acc auth.Access
	switch pol.scope {
	case scopePath:
		acc, err = a.auth.ForPath(lookupCtx, pr, strings.Clone(c.Params("id")))
	case scopeHeader:
		acc, err = a.auth.Resolve(lookupCtx, pr, tenantHeader)
	case scopeOptional:
		acc, err = a.auth.Resolve(lookupCtx, pr, tenantHeader)
		// Only "no tenant could be chosen" is fine here; a header naming a tenant the
		// caller is not in (403) or a malformed one (400) is still an error: the header
		// selects, it never grants.
		if e, ok := natsrpc.AsError(err); ok && e.Code == natsrpc.CodeTenantRequired {
			acc, err = auth.Access{}, nil
		}
	}
	if err != nil {
		return nil, err
	}
	info.tenantID = acc.TenantID
	// The per-minute limit comes first: a call refused by the policy below still counts.
	if err := a.limitCall(c, base, pr, acc, info); err != nil {
		return nil, err
	}
	if pol.requiresTenant() {
		if err := pol.permits(pr, acc); err != nil {
			return nil, err
		}
	}
	if pol.agentSelf && pr.Kind == natsrpc.KindAgent {
		if id, ok := agentv1.NormalizeID(c.Params("id")); !ok || id != pr.AgentID {
			return nil, errAgentNotFound()
		}
	}
	id := natsrpc.Identity{
		RequestID:     info.requestID,
		TenantID:      acc.TenantID,
		Kind:          pr.Kind,
		PrincipalID:   principalID(pr),
		Role:          acc.Role,
		PlatformAdmin: pr.PlatformAdmin,
		Plan:          acc.TenantTier,
		ClientIP:      info.clientIP,
	}
	if pr.Kind == natsrpc.KindUser {
		id.Email = pr.Email
	}
	return &request{c: c, ctx: natsrpc.WithIdentity(base, id), principal: pr, access: acc, api: a}, nil
}

// principalID is the id services see: users by sub, agents by agent id, API keys by
// their tenant (SPEC: an API key is the tenant acting as admin).
func principalID(p auth.Principal) string {
	switch p.Kind {
	case natsrpc.KindUser:
		return p.UserID
	case natsrpc.KindAgent:
		return p.AgentID
	case natsrpc.KindAPIKey:
		return p.TenantID
	}
	return ""
}

func forbiddenKind(k natsrpc.PrincipalKind) string {
	switch k {
	case natsrpc.KindAPIKey:
		return "API keys may not do this; use a user token"
	case natsrpc.KindAgent:
		return "agent tokens may not do this"
	}
	return "these credentials may not do this"
}
