package httpapi

import (
	"net/http"
	"regexp"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/gateway/internal/console"
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
	list    bool          // takes ?limit= and ?next_token=
	query   []queryParam  // further query parameters (list filters)
	headers []headerParam // request headers the route reads (beyond credentials and tenant)
	// tenantHeader: the route reads x-tenant-id although its policy resolves no tenant
	// (the login routes take the tenant from the body or that header).
	tenantHeader bool
	// queryAuth: ?token= and ?tenant_id= stand in for the headers (the WebSocket route:
	// browsers cannot set headers on it).
	queryAuth bool
	errs      []int  // error statuses beyond those the policy, body and list imply
	also      int    // another status answered with the success body (503 of /health)
	media     string // media type of a non-JSON success ("" = application/json)
	handle    func(*request) error
}

// Tags of the OpenAPI document.
const (
	tagSystem  = "system"
	tagTenants = "tenants"
	tagAgents  = "agents"
	tagSSHKeys = "ssh-keys"
	tagAuth    = "auth"
)

// routes is the route table (SPEC §4.2, §4.3, §4.4, §4.8 and the §13 policy table).
func (a *api) routes() []route {
	member := users | apiKeys
	// Agents and keys (SPEC §13): reads from viewer up, writes from member up, API keys
	// both; an agent token only reads and edits its own agent record.
	read, write := tenantPolicy(member, natsrpc.RoleViewer), tenantPolicy(member, natsrpc.RoleMember)
	consolePage, consoleJS, consoleCSS := console.Handler(console.PagePath), console.Handler(console.ScriptPath), console.Handler(console.StylePath)
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
		{method: http.MethodGet, path: console.PagePath, op: "get-console", tag: tagSystem, summary: "Browser console: watch a channel live and publish",
			desc:   "A page served from embedded assets: paste a token (kept in memory only), load the channels, watch one over the WebSocket, publish JSON objects. Sent with `Content-Security-Policy: default-src 'self'; frame-ancestors 'none'`.",
			status: http.StatusOK, media: "text/html", policy: publicPolicy(), handle: func(r *request) error { return consolePage(r.c) }},
		{method: http.MethodGet, path: console.ScriptPath, op: "get-console-script", tag: tagSystem, summary: "Script of the console page",
			status: http.StatusOK, media: "text/javascript", policy: publicPolicy(), handle: func(r *request) error { return consoleJS(r.c) }},
		{method: http.MethodGet, path: console.StylePath, op: "get-console-style", tag: tagSystem, summary: "Stylesheet of the console page",
			status: http.StatusOK, media: "text/css", policy: publicPolicy(), handle: func(r *request) error { return consoleCSS(r.c) }},
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

		{method: http.MethodGet, path: "/api/v1/agents", op: "list-agents", tag: tagAgents, summary: "List agents",
			desc: "Viewers and up, and the API key. Ordered by id. Filters match exactly and combine with AND: `status`, `type`, `capability` (a `capabilities[].name`). A `next_token` is valid only with the filters it came with.",
			resp: AgentList{}, status: http.StatusOK, policy: read, list: true, query: agentFilters, handle: a.listAgents},
		{method: http.MethodPost, path: "/api/v1/agents", op: "create-agent", tag: tagAgents, summary: "Register an agent",
			desc: "Members and up, and the API key. 402 at the plan's agent limit. With `public_key` the key is validated first and registered as an SSH key of type `agent` bound to the new agent (the reply then carries `key`); if that fails its status (422, 422 `private_key_rejected`, 409, 402) is returned and no agent remains.",
			body: agentv1.CreateBody{}, resp: AgentCreated{}, status: http.StatusCreated, policy: write,
			errs: []int{http.StatusPaymentRequired, http.StatusConflict}, handle: a.createAgent},
		// Before /agents/{id}…: a literal segment where an id could stand.
		{method: http.MethodGet, path: "/api/v1/agents/status/summary", op: "get-agent-status-summary", tag: tagAgents, summary: "Count agents by status",
			desc: "Viewers and up, and the API key.", resp: agentv1.StatusSummary{}, status: http.StatusOK, policy: read,
			handle: a.agentStatusSummary},
		{method: http.MethodGet, path: "/api/v1/agents/{id}", op: "get-agent", tag: tagAgents, summary: "Get an agent",
			desc: "Viewers and up, the API key, and an agent token for its own record (any other id is 404 for it).",
			resp: AgentEnvelope{}, status: http.StatusOK, policy: read.withAgentSelf(), handle: a.getAgent},
		{method: http.MethodPut, path: "/api/v1/agents/{id}", op: "update-agent", tag: tagAgents, summary: "Update an agent",
			desc: "Members and up, the API key, and an agent token for its own record: an agent may change `description`, `capabilities` and `metadata` only (403 for `name` or `type`). Partial update: absent fields stay, a present field replaces the stored value wholesale, null clears an optional one.",
			body: agentv1.UpdateBody{}, resp: AgentEnvelope{}, status: http.StatusOK, policy: write.withAgentSelf(), handle: a.updateAgent},
		{method: http.MethodPut, path: "/api/v1/agents/{id}/status", op: "set-agent-status", tag: tagAgents, summary: "Set an agent's status by hand",
			desc: "Members and up, and the API key. An operator override: it stands until the agent's next presence change.",
			body: agentv1.SetStatusBody{}, resp: AgentEnvelope{}, status: http.StatusOK, policy: write, handle: a.setAgentStatus},
		{method: http.MethodDelete, path: "/api/v1/agents/{id}", op: "delete-agent", tag: tagAgents, summary: "Delete an agent",
			desc:   "Members and up, and the API key. The agent's SSH keys are deleted with it, and tokens it logged in with stop working within seconds.",
			status: http.StatusNoContent, policy: write, handle: a.deleteAgent},

		{method: http.MethodGet, path: "/api/v1/ssh-keys", op: "list-ssh-keys", tag: tagSSHKeys, summary: "List SSH keys",
			desc: "Viewers and up, and the API key. Ordered by id. Filters match exactly and combine with AND: `agent_id`, `key_type`. A `next_token` is valid only with the filters it came with.",
			resp: KeyList{}, status: http.StatusOK, policy: read, list: true, query: keyFilters, handle: a.listKeys},
		{method: http.MethodPost, path: "/api/v1/ssh-keys", op: "create-ssh-key", tag: tagSSHKeys, summary: "Register an SSH public key",
			desc: "Members and up, and the API key. 422 for an unparsable key, RSA under 2048 bits or an unsupported type; 422 `private_key_rejected` for a private key (never echoed or logged); 422 on `agent_id` when it is not an agent of the tenant; 409 when the fingerprint is already in the tenant; 402 at the plan's key limit. Only keys of type `agent` bound to an agent can log in.",
			body: sshkeyv1.CreateBody{}, resp: KeyEnvelope{}, status: http.StatusCreated, policy: write,
			errs: []int{http.StatusPaymentRequired, http.StatusConflict}, handle: a.createKey},
		{method: http.MethodGet, path: "/api/v1/ssh-keys/{id}", op: "get-ssh-key", tag: tagSSHKeys, summary: "Get an SSH key",
			desc: "Viewers and up, and the API key.", resp: KeyEnvelope{}, status: http.StatusOK, policy: read, handle: a.getKey},
		{method: http.MethodPost, path: "/api/v1/ssh-keys/{id}/revoke", op: "revoke-ssh-key", tag: tagSSHKeys, summary: "Revoke an SSH key",
			desc: "Members and up, and the API key. A revoked key can no longer log in, and tokens minted with it stop working within seconds.",
			body: sshkeyv1.RevokeBody{}, resp: KeyEnvelope{}, status: http.StatusOK, policy: write, handle: a.revokeKey},
		{method: http.MethodDelete, path: "/api/v1/ssh-keys/{id}", op: "delete-ssh-key", tag: tagSSHKeys, summary: "Delete an SSH key",
			desc:   "Members and up, and the API key. Tokens minted with it stop working within seconds.",
			status: http.StatusNoContent, policy: write, handle: a.deleteKey},

		{method: http.MethodPost, path: "/api/v1/auth/challenge", op: "create-login-challenge", tag: tagAuth, summary: "Ask for a login challenge",
			desc: "No credentials (any sent are ignored). The tenant comes from `tenant_id` or `x-tenant-id` (both present and different: 422). A well-formed request always gets a fresh challenge, whatever the state of the tenant or key. Rate limited per client address (429 with Retry-After). See the `auth` tag for the whole flow.",
			body: sshkeyv1.ChallengeBody{}, resp: sshkeyv1.Challenge{}, status: http.StatusOK, policy: publicPolicy(),
			tenantHeader: true, errs: []int{http.StatusBadRequest, http.StatusTooManyRequests}, handle: a.loginChallenge},
		{method: http.MethodPost, path: "/api/v1/auth/verify", op: "verify-login", tag: tagAuth, summary: "Answer a challenge and get an agent token",
			desc: "No credentials (any sent are ignored). Malformed JSON is 400, missing or ill-typed fields 422; every well-formed attempt that fails for any reason is 401 `invalid_signature` with the same detail, and uses up the challenge. Rate limited per client address and per key (429 with Retry-After). See the `auth` tag for the whole flow.",
			body: sshkeyv1.VerifyBody{}, resp: AgentLogin{}, status: http.StatusOK, policy: publicPolicy(),
			tenantHeader: true, errs: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusTooManyRequests}, handle: a.loginVerify},
	}
}

// Query filters of the lists, documented in the OpenAPI operation.
var (
	agentFilters = []queryParam{
		{name: "status", desc: "Only agents with this status.", enum: agentv1.Statuses},
		{name: "type", desc: "Only agents of this type.", enum: agentv1.Types},
		{name: "capability", desc: "Only agents with a capability of this name."},
	}
	keyFilters = []queryParam{
		{name: "agent_id", desc: "Only keys bound to this agent (any case)."},
		{name: "key_type", desc: "Only keys of this type.", enum: sshkeyv1.Types},
	}
)

// queryParam documents one query parameter of a route.
type queryParam struct {
	name, desc string
	enum       []string
}

// headerParam documents one request header of a route.
type headerParam struct {
	name, desc string
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
