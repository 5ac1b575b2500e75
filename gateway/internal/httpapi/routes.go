package httpapi

import (
	"net/http"
	"regexp"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// route is one operation of the API, declared once: the same value registers the Fiber
// handler and the OpenAPI operation, so the two cannot drift apart.
type route struct {
	method  string
	path    string // OpenAPI form, e.g. /api/v1/tenants/{id}
	op      string // operationId
	tag     string
	summary string
	desc    string
	body    any // prototype of the JSON request body (a contracts type); nil = none
	resp    any // prototype of the success body; nil = no content
	status  int
	policy  policy
	list    bool   // takes ?limit= and ?next_token=
	errs    []int  // error statuses beyond those the policy, body and list imply
	also    int    // another status answered with the success body (503 of /health)
	media   string // media type of a non-JSON success ("" = application/json)
	handle  func(*request) error
}

// Tags of the OpenAPI document.
const (
	tagSystem  = "system"
	tagTenants = "tenants"
)

// routes is the route table (SPEC §4.2, §4.8 and the §13 policy table).
func (a *api) routes() []route {
	member := users | apiKeys
	return []route{
		{method: http.MethodGet, path: "/", op: "get-root", tag: tagSystem, summary: "Service name and version",
			resp: RootInfo{}, status: http.StatusOK, policy: publicPolicy(), handle: a.root},
		{method: http.MethodGet, path: "/health", op: "get-health", tag: tagSystem, summary: "Health and running service instances",
			desc: "200 while the gateway is connected to NATS, 503 when it is not. `status` is `ok` when every service has at least one instance, `degraded` otherwise.",
			resp: Health{}, status: http.StatusOK, also: http.StatusServiceUnavailable, policy: publicPolicy(), handle: a.health},
		{method: http.MethodGet, path: "/openapi.json", op: "get-openapi", tag: tagSystem, summary: "This OpenAPI 3.1 document",
			resp: map[string]any{}, status: http.StatusOK, policy: publicPolicy(), handle: a.openAPIDoc},
		{method: http.MethodGet, path: "/docs", op: "get-docs", tag: tagSystem, summary: "Interactive API documentation",
			desc: "Swagger UI served from embedded assets (works offline).", status: http.StatusOK, media: "text/html",
			policy: publicPolicy(), handle: a.docsFile("/docs")},
		{method: http.MethodGet, path: "/docs/init.js", op: "get-docs-init", tag: tagSystem, summary: "Start-up script of the docs page",
			status: http.StatusOK, media: "text/javascript", policy: publicPolicy(), handle: a.docsFile("/docs/init.js")},
		{method: http.MethodGet, path: "/docs/assets/{file}", op: "get-docs-asset", tag: tagSystem, summary: "Static asset of the docs page",
			status: http.StatusOK, media: "*/*", policy: publicPolicy(), errs: []int{http.StatusNotFound}, handle: a.docsAsset},
		{method: http.MethodGet, path: "/api/v1/me", op: "get-me", tag: tagSystem, summary: "Who the caller is",
			desc: "The principal behind the credentials and, when a tenant can be resolved (x-tenant-id, the token's tenant_id claim, or a single membership), the tenant and role. Tenant fields are omitted when none resolves.",
			resp: Me{}, status: http.StatusOK, policy: anyCaller(), handle: a.me},

		{method: http.MethodPost, path: "/api/v1/tenants", op: "create-tenant", tag: tagTenants, summary: "Create a tenant",
			desc: "Any user; the caller becomes its owner. `subscription_tier` enterprise and `trial_days` over 30 need a platform admin; at most 10 owned tenants per user. `api_key` is shown only in this reply.",
			body: tenantv1.CreateRequest{}, resp: TenantCreated{}, status: http.StatusCreated, policy: usersOnly(),
			handle: a.createTenant},
		{method: http.MethodGet, path: "/api/v1/tenants", op: "list-tenants", tag: tagTenants, summary: "List the caller's tenants",
			desc: "Only the caller's own memberships (platform admins included), each with the caller's `role`.",
			resp: TenantList{}, status: http.StatusOK, policy: usersOnly(), list: true, handle: a.listTenants},
		{method: http.MethodGet, path: "/api/v1/tenants/{id}", op: "get-tenant", tag: tagTenants, summary: "Get a tenant",
			desc: "Any member or the tenant's API key; a platform admin who is not a member may read it too. Answers for a suspended tenant.",
			resp: TenantEnvelope{}, status: http.StatusOK,
			policy: pathPolicy(member, natsrpc.RoleViewer).withAdminNonMember().withSuspended(), handle: a.getTenant},
		{method: http.MethodPut, path: "/api/v1/tenants/{id}", op: "update-tenant", tag: tagTenants, summary: "Update a tenant's settings",
			desc: "Admins and the API key. Partial update: absent fields stay, null clears an optional field. Plan, limits and status are not writable here.",
			body: tenantv1.UpdateBody{}, resp: TenantEnvelope{}, status: http.StatusOK,
			policy: pathPolicy(member, natsrpc.RoleAdmin), handle: a.updateTenant},
		{method: http.MethodDelete, path: "/api/v1/tenants/{id}", op: "delete-tenant", tag: tagTenants, summary: "Delete a tenant and everything it owns",
			desc:   "Owners only (also while suspended). Agents, keys, channels, history and usage are removed too.",
			status: http.StatusNoContent, policy: pathPolicy(users, natsrpc.RoleOwner).withSuspended(), handle: a.deleteTenant},
		{method: http.MethodPut, path: "/api/v1/tenants/{id}/plan", op: "set-tenant-plan", tag: tagTenants, summary: "Change a tenant's plan or status",
			desc: "Platform admins only (owners included in the 403).",
			body: tenantv1.SetPlanBody{}, resp: TenantEnvelope{}, status: http.StatusOK,
			policy: pathPolicy(users, "").platformAdmins().withSuspended(), handle: a.setTenantPlan},
		{method: http.MethodGet, path: "/api/v1/tenants/{id}/members", op: "list-members", tag: tagTenants, summary: "List a tenant's members",
			resp: MemberList{}, status: http.StatusOK, policy: pathPolicy(member, natsrpc.RoleViewer), list: true, handle: a.listMembers},
		{method: http.MethodPost, path: "/api/v1/tenants/{id}/members", op: "add-member", tag: tagTenants, summary: "Add a member",
			desc: "Admins. Only an owner grants the owner role; nobody grants a role above their own.",
			body: tenantv1.MemberAddBody{}, resp: MemberEnvelope{}, status: http.StatusCreated,
			policy: pathPolicy(users, natsrpc.RoleAdmin), errs: []int{http.StatusConflict}, handle: a.addMember},
		{method: http.MethodPut, path: "/api/v1/tenants/{id}/members/{user_id}", op: "update-member", tag: tagTenants, summary: "Change a member's role",
			desc: "Admins. The last owner cannot be demoted (409).",
			body: tenantv1.MemberUpdateBody{}, resp: MemberEnvelope{}, status: http.StatusOK,
			policy: pathPolicy(users, natsrpc.RoleAdmin), errs: []int{http.StatusConflict}, handle: a.updateMember},
		{method: http.MethodDelete, path: "/api/v1/tenants/{id}/members/{user_id}", op: "remove-member", tag: tagTenants, summary: "Remove a member",
			desc:   "Admins. The last owner cannot be removed (409).",
			status: http.StatusNoContent, policy: pathPolicy(users, natsrpc.RoleAdmin), errs: []int{http.StatusConflict}, handle: a.removeMember},
		{method: http.MethodPost, path: "/api/v1/tenants/{id}/api-keys/rotate", op: "rotate-api-key", tag: tagTenants, summary: "Replace the tenant's API key",
			desc: "Admins. The old key stops working at once; the new one is shown only in this reply.",
			resp: APIKeyEnvelope{}, status: http.StatusOK, policy: pathPolicy(users, natsrpc.RoleAdmin), handle: a.rotateAPIKey},
	}
}

var pathParamRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// fiberPath turns /a/{id}/b into Fiber's /a/:id/b.
func fiberPath(p string) string {
	return pathParamRE.ReplaceAllString(p, ":$1")
}

// pathParams lists the {names} of p in order.
func pathParams(p string) []string {
	var out []string
	for _, m := range pathParamRE.FindAllStringSubmatch(p, -1) {
		out = append(out, m[1])
	}
	return out
}
