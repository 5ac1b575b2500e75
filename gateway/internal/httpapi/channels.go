package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
)

// Tags of the channel routes.
const (
	tagChannels = "channels"
	tagMessages = "messages"
)

// Headers of a publish.
const (
	headerIdempotencyKey    = "Idempotency-Key"
	headerIdempotentReplay  = "Idempotent-Replayed"
	publishQuotaDescription = "The plan's daily message quota (UTC days, REST and WebSocket publishes together, shared by every gateway replica: never over, at most max(1 %, 100) messages under) is checked before publishing: over it the answer is 429 `message_quota_exceeded` with `Retry-After` (seconds to the next UTC midnight). An idempotent replay and a failed publish do not use the quota. When the shared counters are unreachable the quota fails open (see the API description)."
)

// channelRoutes are the routes of channels, their subscriptions and messages (SPEC §4.5
// and the §13 policy table): reads from viewer up, API keys and agent tokens; writes
// from member up and API keys; publishing from member up, API keys and agents.
func (a *api) channelRoutes() []route {
	read := tenantPolicy(anyKind, natsrpc.RoleViewer)
	write := tenantPolicy(users|apiKeys, natsrpc.RoleMember)
	publish := tenantPolicy(anyKind, natsrpc.RoleMember)
	return []route{
		{method: http.MethodGet, path: "/api/v1/channels", op: "list-channels", tag: tagChannels, summary: "List channels",
			desc: "Viewers and up, the API key and agent tokens. Ordered by id. `total_messages` and `last_message_at` may lag up to 5 s.",
			resp: ChannelList{}, status: http.StatusOK, policy: read, list: true, handle: a.listChannels},
		{method: http.MethodPost, path: "/api/v1/channels", op: "create-channel", tag: tagChannels, summary: "Create a channel",
			desc: "Members and up, and the API key. `type` defaults to `public`; in a `private` channel agents need a subscription (any role to subscribe, `publisher` or `admin` to publish). `history` defaults to the plan's bounds; more than the plan allows is 422. 402 at the plan's channel limit.",
			body: channelv1.CreateBody{}, resp: ChannelEnvelope{}, status: http.StatusCreated, policy: write,
			errs: []int{http.StatusPaymentRequired}, handle: a.createChannel},
		{method: http.MethodGet, path: "/api/v1/channels/{id}", op: "get-channel", tag: tagChannels, summary: "Get a channel",
			desc: "Viewers and up, the API key and agent tokens.", resp: ChannelEnvelope{}, status: http.StatusOK, policy: read,
			handle: a.getChannel},
		{method: http.MethodPut, path: "/api/v1/channels/{id}", op: "update-channel", tag: tagChannels, summary: "Update a channel",
			desc: "Members and up, and the API key. Partial update: absent fields stay, a present field replaces the stored value wholesale, null clears an optional one (`history: null` resets to the plan's bounds). Making a channel private ends, within 5 s, the live WebSocket subscriptions of agents without a subscription record (`unsubscribed` with reason `access_revoked`).",
			body: channelv1.UpdateBody{}, resp: ChannelEnvelope{}, status: http.StatusOK, policy: write, handle: a.updateChannel},
		{method: http.MethodDelete, path: "/api/v1/channels/{id}", op: "delete-channel", tag: tagChannels, summary: "Delete a channel",
			desc:   "Members and up, and the API key. Its history is purged, its subscriptions removed, and WebSocket subscribers get `unsubscribed` with reason `channel_deleted`.",
			status: http.StatusNoContent, policy: write, handle: a.deleteChannel},
		{method: http.MethodGet, path: "/api/v1/channels/{id}/subscriptions", op: "list-subscriptions", tag: tagChannels, summary: "List a channel's subscriptions",
			desc: "Viewers and up, the API key and agent tokens. Which agents belong to the channel, with their role; ordered by agent id.",
			resp: SubscriptionList{}, status: http.StatusOK, policy: read, list: true, handle: a.listSubscriptions},
		{method: http.MethodPost, path: "/api/v1/channels/{id}/subscriptions", op: "add-subscription", tag: tagChannels, summary: "Add an agent to a channel",
			desc: "Members and up, and the API key. `role` is `subscriber` (default), `publisher` or `admin`. 409 when the agent already has a subscription; 422 on `agent_id` when it is not an agent of the tenant.",
			body: channelv1.SubscriptionAddBody{}, resp: SubscriptionEnvelope{}, status: http.StatusCreated, policy: write,
			errs: []int{http.StatusConflict}, handle: a.addSubscription},
		{method: http.MethodDelete, path: "/api/v1/channels/{id}/subscriptions/{agent_id}", op: "remove-subscription", tag: tagChannels, summary: "Remove an agent from a channel",
			desc:   "Members and up, and the API key. In a private channel the agent's live WebSocket subscriptions to it end within 5 s on every gateway (`unsubscribed` with reason `access_revoked`). Deleting an agent removes all its subscriptions.",
			status: http.StatusNoContent, policy: write, handle: a.removeSubscription},
		{method: http.MethodGet, path: "/api/v1/channels/{id}/messages", op: "list-messages", tag: tagMessages, summary: "Read a channel's history",
			desc: "Viewers and up, the API key and agent tokens (in a private channel an agent needs a subscription). Stored messages, oldest first. `after_seq` and `before_seq` are exclusive; `before_seq` alone returns the `limit` messages just below it. A `next_token` is valid only with the channel and the `after_seq`/`before_seq` it came with. `seq` increases within a channel but is not contiguous.",
			resp: MessageList{}, status: http.StatusOK, policy: read, list: true, query: historyFilters, handle: a.listMessages},
		{method: http.MethodPost, path: "/api/v1/channels/{id}/messages", op: "publish-message", tag: tagMessages, summary: "Publish a message",
			desc: "Members and up, the API key and agent tokens (viewers 403; in a private channel an agent needs a `publisher` or `admin` subscription). The body is the message: any JSON object (else 422), at most the plan's `max_message_bytes` (413), stored and delivered byte for byte. The reply comes once the message is stored. `Idempotency-Key` (1–255 printable ASCII, else 422): a repeat by the same caller on the same channel within 2 minutes stores nothing and returns the first result with `Idempotent-Replayed: true` (409 if that first message is no longer stored). A 503 or 504 leaves the outcome open: with an `Idempotency-Key` the gateway finishes that publish itself once the store answers again (within a minute; stored at most once, counted once), and a retry with the same key returns it. " + publishQuotaDescription,
			body: map[string]any{}, resp: Published{}, status: http.StatusOK, policy: publish, headers: publishHeaders,
			errs: []int{http.StatusConflict, http.StatusTooManyRequests}, handle: a.publish},
	}
}

// Query and header parameters of the message routes, documented in the OpenAPI operation.
var (
	historyFilters = []queryParam{
		{name: "after_seq", desc: "Only messages with a seq above this (exclusive)."},
		{name: "before_seq", desc: "Only messages with a seq below this (exclusive); alone, the `limit` messages just below it."},
	}
	publishHeaders = []headerParam{
		{name: headerIdempotencyKey, desc: "1–255 printable ASCII characters; a repeat within 2 minutes by the same caller on the same channel returns the first result."},
	}
)

// ChannelEnvelope wraps one channel: the reply schema. Handlers relay the service's
// channelv1.ChannelResponse with "success" spliced in (request.relay).
type ChannelEnvelope struct {
	Channel Raw[channelv1.Channel] `json:"channel"`
	Success bool                   `json:"success"`
}

// ChannelList is one page of the tenant's channels, ordered by id.
type ChannelList struct {
	Channels  []Raw[channelv1.Channel] `json:"channels" nullable:"false"`
	NextToken *string                  `json:"next_token" doc:"opaque; null on the last page"`
}

type channelPage struct {
	Channels []Raw[channelv1.Channel] `json:"channels"`
	Cursor   string                   `json:"cursor"`
}

// SubscriptionEnvelope wraps one subscription, relayed like ChannelEnvelope.
type SubscriptionEnvelope struct {
	Subscription Raw[channelv1.Subscription] `json:"subscription"`
	Success      bool                        `json:"success"`
}

// SubscriptionList is one page of a channel's subscriptions.
type SubscriptionList struct {
	Subscriptions []Raw[channelv1.Subscription] `json:"subscriptions" nullable:"false"`
	NextToken     *string                       `json:"next_token" doc:"opaque; null on the last page"`
}

type subscriptionPage struct {
	Subscriptions []Raw[channelv1.Subscription] `json:"subscriptions"`
	Cursor        string                        `json:"cursor"`
}

// MessageList is one page of a channel's history, oldest first.
type MessageList struct {
	Messages  Raw[[]messagev1.Message] `json:"messages" nullable:"false"`
	NextToken *string                  `json:"next_token" doc:"opaque; null on the last page"`
}

// historyPage is the service's channelv1.HistoryResponse with the messages relayed as
// they came (data is never decoded: numbers stay as published).
type historyPage struct {
	Messages     Raw[[]messagev1.Message] `json:"messages"`
	NextAfterSeq uint64                   `json:"next_after_seq"`
}

// Published is the reply of a publish.
type Published struct {
	MessageID string    `json:"message_id" doc:"ULID"`
	Seq       uint64    `json:"seq" doc:"the stream sequence: increases within a channel, not contiguous"`
	Timestamp time.Time `json:"timestamp" doc:"when the gateway accepted the message: RFC 3339 UTC with milliseconds, as in history and WebSocket frames"`
	Success   bool      `json:"success"`
}

func errChannelNotFound() error { return natsrpc.NotFound("channel not found") }

// channelPathID is the {id} of a channel path, upper-cased; a malformed one is 404.
func channelPathID(r *request) (string, error) {
	id, ok := channelv1.NormalizeID(r.c.Params("id"))
	if !ok {
		return "", errChannelNotFound()
	}
	return id, nil
}

func (a *api) listChannels(r *request) error {
	b := pageBinding{scope: "t:" + r.access.TenantID, route: channelv1.Subject(channelv1.OpList)}
	var q channelv1.ListRequest
	var err error
	if q.Limit, q.Cursor, err = a.tokens.page(r.c, b); err != nil {
		return err
	}
	var out channelPage
	if err := r.call(channelv1.Subject(channelv1.OpList), &q, &out); err != nil {
		return err
	}
	if out.Channels == nil {
		out.Channels = []Raw[channelv1.Channel]{}
	}
	return r.reply(http.StatusOK, ChannelList{Channels: out.Channels, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) createChannel(r *request) error {
	var body channelv1.CreateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	return r.relay(http.StatusCreated, channelv1.Subject(channelv1.OpCreate), &channelv1.CreateRequest{Channel: body})
}

func (a *api) getChannel(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	return r.relay(http.StatusOK, channelv1.Subject(channelv1.OpGet), &channelv1.GetRequest{ChannelID: id})
}

func (a *api) updateChannel(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	var body channelv1.UpdateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	err = r.relay(http.StatusOK, channelv1.Subject(channelv1.OpUpdate), &channelv1.UpdateRequest{ChannelID: id, Changes: body})
	// This gateway sees its own change at once; the event tells the others.
	a.channels.Forget(r.access.TenantID, id)
	return err
}

func (a *api) deleteChannel(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	err = r.call(channelv1.Subject(channelv1.OpDelete), &channelv1.DeleteRequest{ChannelID: id}, nil)
	a.channels.Forget(r.access.TenantID, id)
	if err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}

func (a *api) listSubscriptions(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	b := pageBinding{scope: "t:" + r.access.TenantID, route: channelv1.Subject(channelv1.OpSubscriptionsList),
		filters: canonicalFilters("channel_id", id)}
	q := channelv1.SubscriptionsListRequest{ChannelID: id}
	if q.Limit, q.Cursor, err = a.tokens.page(r.c, b); err != nil {
		return err
	}
	var out subscriptionPage
	if err := r.call(channelv1.Subject(channelv1.OpSubscriptionsList), &q, &out); err != nil {
		return err
	}
	if out.Subscriptions == nil {
		out.Subscriptions = []Raw[channelv1.Subscription]{}
	}
	return r.reply(http.StatusOK, SubscriptionList{Subscriptions: out.Subscriptions, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) addSubscription(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	var body channelv1.SubscriptionAddBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	body.AgentID, _ = channelv1.NormalizeID(body.AgentID) // Validate checked it is a ULID
	err = r.relay(http.StatusCreated, channelv1.Subject(channelv1.OpSubscriptionsAdd),
		&channelv1.SubscriptionsAddRequest{ChannelID: id, Subscription: body})
	// No event announces subscription changes: this gateway forgets at once, others
	// within the cache's TTL.
	a.channels.ForgetRole(r.access.TenantID, id, body.AgentID)
	return err
}

func (a *api) removeSubscription(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	agent, ok := channelv1.NormalizeID(r.c.Params("agent_id"))
	if !ok {
		return natsrpc.NotFound("subscription not found")
	}
	err = r.call(channelv1.Subject(channelv1.OpSubscriptionsRemove), &channelv1.SubscriptionsRemoveRequest{ChannelID: id, AgentID: agent}, nil)
	a.channels.ForgetRole(r.access.TenantID, id, agent)
	if err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}

// querySeq reads an optional sequence number from the query (0 when absent).
func querySeq(r *request, name string) (uint64, error) {
	v := query(r, name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, natsrpc.Invalid(natsrpc.FieldError{Field: name, Message: "must be a non-negative integer"})
	}
	return n, nil
}

func (a *api) listMessages(r *request) error {
	id, err := channelPathID(r)
	if err != nil {
		return err
	}
	q := channelv1.HistoryRequest{ChannelID: id}
	if q.AfterSeq, err = querySeq(r, "after_seq"); err != nil {
		return err
	}
	if q.BeforeSeq, err = querySeq(r, "before_seq"); err != nil {
		return err
	}
	if err := validate(&q); err != nil {
		return err
	}
	if r.principal.Kind == natsrpc.KindAgent {
		if err := a.agentMayRead(r, id); err != nil {
			return err
		}
	}
	// The token carries the next after_seq and is bound to the channel and the filters
	// the first page was asked with.
	b := pageBinding{scope: "t:" + r.access.TenantID, route: channelv1.Subject(channelv1.OpHistory),
		filters: canonicalFilters("channel_id", id, "after_seq", query(r, "after_seq"), "before_seq", query(r, "before_seq"))}
	var cursor string
	if q.Limit, cursor, err = a.tokens.page(r.c, b); err != nil {
		return err
	}
	if cursor != "" {
		next, perr := strconv.ParseUint(cursor, 10, 64)
		if perr != nil || next < q.AfterSeq { // signed by us: only a key change could get here
			return natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "next_token is not valid for this list")
		}
		q.AfterSeq = next
	}
	var out historyPage
	if err := r.call(channelv1.Subject(channelv1.OpHistory), &q, &out); err != nil {
		return err
	}
	if len(out.Messages) == 0 || string(out.Messages) == "null" {
		out.Messages = Raw[[]messagev1.Message]("[]")
	}
	next := ""
	if out.NextAfterSeq != 0 {
		next = strconv.FormatUint(out.NextAfterSeq, 10)
	}
	// Written by hand: encoding/json would compact and HTML-escape the messages' data,
	// which is delivered byte for byte as published.
	body := make([]byte, 0, len(out.Messages)+64)
	body = append(body, `{"messages":`...)
	body = append(body, out.Messages...)
	body = append(body, `,"next_token":`...)
	if tok := a.tokens.wrap(b, next); tok != nil {
		body = strconv.AppendQuote(body, *tok) // base64url and dots: nothing to escape
	} else {
		body = append(body, "null"...)
	}
	r.c.Status(http.StatusOK).Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	return r.c.Send(append(body, '}'))
}

// agentMayRead: in a private channel an agent needs a subscription (any role) to read
// its messages, as to subscribe to them.
func (a *api) agentMayRead(r *request, channelID string) error {
	info, err := a.channels.Lookup(r.ctx, r.access.TenantID, channelID)
	if err != nil || !info.Private() {
		return err
	}
	role, err := a.channels.AgentRole(r.ctx, r.access.TenantID, channelID, r.principal.AgentID)
	if err != nil {
		return err
	}
	if role == "" {
		return natsrpc.Forbidden("reading this private channel needs a subscription of the agent")
	}
	return nil
}

func (a *api) publish(r *request) error {
	if err := requireJSON(r.c); err != nil {
		return err
	}
	key := strings.Clone(r.c.Get(headerIdempotencyKey))
	if key != "" && !messagev1.ValidIdempotencyKey(key) {
		return natsrpc.Invalid(natsrpc.FieldError{Field: headerIdempotencyKey,
			Message: "must be 1-" + strconv.Itoa(messagev1.MaxIdempotencyKey) + " printable ASCII characters"})
	}
	ctx, cancel := context.WithTimeout(r.ctx, a.upstreamTimeout)
	defer cancel()
	pub, replayed, err := a.publisher.Publish(ctx, messaging.PublishInput{
		TenantID:       r.access.TenantID,
		ChannelID:      r.c.Params("id"),
		Principal:      r.principal,
		Role:           r.access.Role,
		Plan:           r.access.TenantTier,
		Data:           r.c.Body(), // not kept: the publish is done when Publish returns
		IdempotencyKey: key,
	})
	if err != nil {
		return err
	}
	if replayed {
		r.c.Set(headerIdempotentReplay, "true")
	}
	r.c.Status(http.StatusOK).Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	return r.c.Send(appendPublished(make([]byte, 0, 128), pub))
}

// appendPublished writes the publish reply without reflection: it is the hottest path.
// The timestamp is written exactly as the stored message's Artcafe-Timestamp, which
// history and WebSocket frames carry as it is: the same message shows the same text.
func appendPublished(b []byte, p messagev1.Published) []byte {
	b = append(b, `{"message_id":`...)
	b = strconv.AppendQuote(b, p.MessageID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, p.Seq, 10)
	b = append(b, `,"timestamp":"`...)
	b = p.Timestamp.UTC().AppendFormat(b, messagev1.TimestampFormat)
	return append(b, `","success":true}`...)
}
