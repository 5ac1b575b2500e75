package httpapi

import (
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// tagRealtime is the tag of the WebSocket route.
const tagRealtime = "realtime"

const realtimeDescription = "WebSocket sessions: live messages, publishing, tenant events and agent presence. Frames are JSON text; the types are in `contracts/realtimev1`."

const wsDescription = "Upgrades to a WebSocket session. Authentication, the tenant and the plan's connection cap are checked before the upgrade (401/403/429 with the JSON error body); " +
	"a browser's `Origin` must be in CORS_ALLOWED_ORIGINS when that list is set. Credentials: `Authorization: Bearer`, `x-api-key`, or `?token=` (browsers cannot set headers; never logged); tenant: `x-tenant-id` or `?tenant_id=`. Viewers may subscribe; publishing needs member or higher (agents: a publisher or admin subscription in private channels).\n\n" +
	"Client frames (any may carry `id`, echoed by its reply): `subscribe {channel_id, since_seq?}` → `subscribed` (with `since_seq`: the stored messages with `seq` > N, then live ones, no gap and no duplicate; `error {code: history_truncated, first_seq}` first when part of that range has expired), " +
	"`unsubscribe {channel_id}` → `unsubscribed`, `publish {channel_id, data, idempotency_key?}` → `ack {message_id, seq, timestamp}`, `heartbeat {status: busy|idle}` (agents), `ping` → `pong`, `subscribe_events` (users and API keys) → `subscribed {events: true}` then `event {event}` frames (agent status, channel lifecycle), `unsubscribe_events`.\n\n" +
	"Server frames: `connected {session_id, tenant_id, agent_id?}` first, `message` (the message object's fields beside `type`), `unsubscribed {channel_id, reason}` when the server ends a subscription (`channel_deleted`: the channel was deleted; `access_revoked`: an agent lost its subscription record in a private channel, or the channel became private and the agent has none — within 5 s on every gateway; users and API keys never get it; `replay_failed`: the stored messages of a `since_seq` subscribe could not be read, subscribe again), `error {code, detail, id?}` for a failed frame (the session stays).\n\n" +
	"Limits per session: frames ≤ 128 KiB (close 1009), ≤ 100 subscriptions, ≤ 100 frames/s (`error rate_limited`; close 4029 after 3 such seconds in a row), send queue ≤ 1,024 frames or 4 MiB (close 4008 `slow_consumer`). " +
	"Closes: 4000 `idle_timeout` (nothing, not even a pong, for 90 s; the server pings every 30 s), 4001 `token_expired` at the token's exp, 4003 when the credential is revoked (key revoked, agent or tenant deleted, member removed, tenant suspended), 1001 on server shutdown. " +
	"An agent session keeps the agent online (busy/idle as its heartbeats say) while it lives. The plan's connection cap holds across every gateway replica (429 `connection_limit_exceeded` before the upgrade); when the shared counts are unreachable it holds per gateway."

// realtimeRoutes is the WebSocket route (SPEC §4.6).
func (a *api) realtimeRoutes() []route {
	return []route{
		{method: http.MethodGet, path: realtimev1.Path, op: "connect-websocket", tag: tagRealtime, summary: "Open a WebSocket session",
			desc: wsDescription, status: http.StatusSwitchingProtocols, policy: tenantPolicy(anyKind, natsrpc.RoleViewer),
			queryAuth: true, query: wsQuery, errs: []int{http.StatusUpgradeRequired, http.StatusTooManyRequests},
			handle: a.websocket},
	}
}

var wsQuery = []queryParam{
	{name: realtimev1.QueryToken, desc: "A bearer token, for clients that cannot set headers (browsers). Ignored when an Authorization header is sent."},
	{name: realtimev1.QueryTenantID, desc: "The tenant (lower-case UUID), like x-tenant-id; the header wins when both are sent."},
}

// websocket hands an authorized upgrade request to the realtime hub.
func (a *api) websocket(r *request) error {
	if a.realtime == nil {
		return natsrpc.Unavailable("WebSocket sessions are not enabled on this gateway")
	}
	info := infoOf(r.c)
	authz, key, _ := credentials(r.c, true)
	return a.realtime.Serve(r.c, realtime.Admission{
		Principal: r.principal, Access: r.access, Authorization: authz, APIKey: key,
		RequestID: info.requestID, ClientIP: info.clientIP,
	})
}

// credentials are the request's credential and tenant selection, copied (fasthttp
// reuses their memory after the request; the authenticator and sessions keep them).
// With query (the WebSocket route) ?token= stands in for a missing Authorization
// header and ?tenant_id= for a missing x-tenant-id.
func credentials(c *fiber.Ctx, query bool) (authorization, apiKey, tenant string) {
	authorization, apiKey, tenant = c.Get(fiber.HeaderAuthorization), c.Get(headerAPIKey), c.Get(headerTenantID)
	if query {
		if t := c.Query(realtimev1.QueryToken); authorization == "" && t != "" {
			authorization = "Bearer " + t
		}
		if tenant == "" {
			tenant = c.Query(realtimev1.QueryTenantID)
		}
	}
	return strings.Clone(authorization), strings.Clone(apiKey), strings.Clone(tenant)
}
