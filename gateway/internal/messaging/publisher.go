package messaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

// DefaultPublishTimeout bounds a publish (the JetStream ack) whose context has no deadline.
const DefaultPublishTimeout = 5 * time.Second

// MessageQuota is checked before every publish (REST and WebSocket): the daily message
// quota of the tenant's plan (limits.Limits holds it across gateways). Allow returns
// nil, or an error to refuse the publish with — a *natsrpc.Error 429
// message_quota_exceeded with RetryAfter (QuotaExceeded builds one). Refund gives back
// what Allow allowed for a publish that stored nothing (it failed, or an idempotency key
// replayed an earlier one).
type MessageQuota interface {
	Allow(ctx context.Context, tenantID, plan string, n int) error
	Refund(tenantID, plan string, n int)
}

// Unlimited is the MessageQuota that allows everything.
type Unlimited struct{}

// Allow always allows.
func (Unlimited) Allow(context.Context, string, string, int) error { return nil }

// Refund has nothing to give back.
func (Unlimited) Refund(string, string, int) {}

// UsageRecorder hears every message stored (usage metering); an idempotent replay is
// not one.
type UsageRecorder interface {
	Published(tenantID string, n int)
}

// QuotaExceeded is the error a MessageQuota returns to refuse a publish.
func QuotaExceeded(detail string, retryAfter int) *natsrpc.Error {
	return &natsrpc.Error{Status: http.StatusTooManyRequests, Code: natsrpc.CodeMessageQuota, Detail: detail, RetryAfter: retryAfter}
}

// PublishInput is one message to publish, with who publishes it.
type PublishInput struct {
	TenantID  string
	ChannelID string // any case; checked and upper-cased
	Principal auth.Principal
	// Role is the principal's role in the tenant (owner|admin|member|viewer; admin for
	// API keys; "" for agents, whose rights come from the channel's subscriptions).
	Role string
	// Plan is the tenant's tier (plans.Free, …): it sets the size limit and the quota.
	Plan string
	// Data is the message: a JSON object, stored and delivered byte for byte (JSON
	// whitespace around the object is dropped). It is not retained after Publish returns.
	Data []byte
	// IdempotencyKey, when not "", makes a repeat within messagev1.DedupWindow (same
	// tenant, channel, principal and key) return the first publish's result.
	IdempotencyKey string
}

// PublisherConfig configures a Publisher; the zero value works.
type PublisherConfig struct {
	// Timeout bounds a publish whose context has no deadline (default 5 s).
	Timeout time.Duration
	Log     zerolog.Logger
	// Usage, when set, counts the messages stored.
	Usage UsageRecorder
}

// Publisher publishes channel messages: the checks, the quota hook, and one JetStream
// publish whose ack is the reply. It is safe for concurrent use.
type Publisher struct {
	js       jetstream.JetStream
	channels *Channels
	quota    MessageQuota
	cfg      PublisherConfig
	now      func() time.Time
	maxBytes map[string]int // by plan id

	streamMu sync.Mutex
	stream   jetstream.Stream // for reading back the first publish of a duplicate; lazily

	settling chan struct{} // one slot per publish being settled (settle)
}

// NewPublisher builds a Publisher over js (the gateway's JetStream context). The stream
// (messagev1.StreamConfig) is the channel service's: the publisher never creates it.
func NewPublisher(js jetstream.JetStream, channels *Channels, quota MessageQuota, cfg PublisherConfig) (*Publisher, error) {
	if js == nil || channels == nil || quota == nil {
		return nil, errors.New("messaging: JetStream, Channels and a MessageQuota are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPublishTimeout
	}
	p := &Publisher{js: js, channels: channels, quota: quota, cfg: cfg, now: time.Now, maxBytes: map[string]int{},
		settling: make(chan struct{}, maxSettling)}
	for _, pl := range plans.All() {
		p.maxBytes[pl.ID] = limitBytes(pl.Limits.MaxMessageBytes)
	}
	return p, nil
}

// headerRoom is what a stored message's headers may take beside its data within
// messagev1.MaxStoredBytes.
const headerRoom = 4 << 10

// limitBytes is a plan's data size limit; unlimited still fits the stream's message size.
func limitBytes(v *int64) int {
	ceiling := messagev1.MaxStoredBytes - headerRoom
	if v == nil || *v <= 0 || *v > int64(ceiling) {
		return ceiling
	}
	return int(*v)
}

// MaxBytes is the largest message data plan allows (a plan not in the table gets the
// default plan's limit).
func (p *Publisher) MaxBytes(plan string) int {
	if n, ok := p.maxBytes[plan]; ok {
		return n
	}
	return p.maxBytes[plans.DefaultTier]
}

// Publish checks and publishes one message and returns what the stream acknowledged.
// replayed is true when an idempotency key repeated an earlier publish: the result is
// that first publish's, and nothing was stored.
//
// Checks, in order (errors are *natsrpc.Error): viewers and unknown principals 403;
// malformed tenant or channel id 404; data over the plan's max_message_bytes 413; bad
// idempotency key 422 (field idempotency_key); malformed JSON 400 invalid_json; data
// not a JSON object 422 (field data);
// unknown or deleted channel 404; an agent without a publisher or admin subscription to
// a private channel 403; the quota hook's refusal (429); then the publish: 503 when the
// message store is unavailable, 504 when its ack does not come in time.
func (p *Publisher) Publish(ctx context.Context, in PublishInput) (messagev1.Published, bool, error) {
	sender, err := senderOf(in.Principal, in.Role)
	if err != nil {
		return messagev1.Published{}, false, err
	}
	k, ok := key(in.TenantID, in.ChannelID)
	if !ok {
		return messagev1.Published{}, false, errChannelNotFound()
	}
	data := trimJSONSpace(in.Data)
	if limit := p.MaxBytes(in.Plan); len(data) > limit {
		return messagev1.Published{}, false, natsrpc.NewError(http.StatusRequestEntityTooLarge, natsrpc.CodePayloadTooLarge,
			"the message is larger than the plan's limit of "+strconv.Itoa(limit)+" bytes")
	}
	if in.IdempotencyKey != "" && !messagev1.ValidIdempotencyKey(in.IdempotencyKey) {
		return messagev1.Published{}, false, natsrpc.Invalid(natsrpc.FieldError{Field: "idempotency_key",
			Message: "must be 1-" + strconv.Itoa(messagev1.MaxIdempotencyKey) + " printable ASCII characters"})
	}
	// Malformed JSON is 400 like every other body; well-formed JSON that is not an object
	// is 422. Valid UTF-8 too: Go's JSON parser lets invalid bytes through, and a
	// WebSocket text frame carrying them would break every subscriber's connection.
	if len(data) > 0 && !json.Valid(data) {
		return messagev1.Published{}, false, natsrpc.BadRequest(natsrpc.CodeInvalidJSON, "the message body is not valid JSON")
	}
	if len(data) == 0 || data[0] != '{' || !utf8.Valid(data) {
		return messagev1.Published{}, false, natsrpc.Invalid(natsrpc.FieldError{Field: "data", Message: "must be a JSON object"})
	}

	info, err := p.channels.Lookup(ctx, k.tenant, k.channel)
	if err != nil {
		return messagev1.Published{}, false, err
	}
	if sender.Type == messagev1.SenderAgent && info.Private() {
		role, err := p.channels.AgentRole(ctx, k.tenant, k.channel, sender.ID)
		if err != nil {
			return messagev1.Published{}, false, err
		}
		if role != channelv1.RolePublisher && role != channelv1.RoleAdmin {
			return messagev1.Published{}, false, natsrpc.Forbidden("publishing to this private channel needs a publisher or admin subscription of the agent")
		}
	}
	if err := p.quota.Allow(ctx, k.tenant, in.Plan, 1); err != nil {
		return messagev1.Published{}, false, err
	}
	out, replayed, err := p.publish(ctx, k, info, sender, data, in.IdempotencyKey)
	if err != nil || replayed {
		// Nothing new was stored (a failed publish may have been stored after all: the
		// quota errs towards the tenant then; the usage count sees it once settled).
		p.quota.Refund(k.tenant, in.Plan, 1)
	} else if p.cfg.Usage != nil {
		p.cfg.Usage.Published(k.tenant, 1)
	}
	return out, replayed, err
}

// publish builds the stored message (every header set here, none copied from a client)
// and waits for the stream's ack.
func (p *Publisher) publish(ctx context.Context, k chanKey, info ChannelInfo, sender messagev1.Sender, data []byte, idemKey string) (messagev1.Published, bool, error) {
	now := p.now().UTC().Truncate(time.Millisecond)
	out := messagev1.Published{MessageID: ulid.Make().String(), Timestamp: now}
	subject := messagev1.Subject(k.tenant, k.channel)
	h := make(nats.Header, 6)
	h[messagev1.HeaderMessageID] = []string{out.MessageID}
	h[messagev1.HeaderSenderType] = []string{sender.Type}
	h[messagev1.HeaderSenderID] = []string{sender.ID}
	h[messagev1.HeaderTimestamp] = []string{now.Format(messagev1.TimestampFormat)}
	if info.MaxAgeSeconds > 0 {
		// Whole seconds without a unit: the server reads any size this way.
		h[jetstream.MsgTTLHeader] = []string{strconv.FormatInt(info.MaxAgeSeconds, 10)}
	}
	if idemKey != "" {
		h[jetstream.MsgIDHeader] = []string{messagev1.DedupID(k.tenant, k.channel, sender.Type, sender.ID, idemKey)}
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.Timeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: subject, Header: h, Data: data}
	ack, err := p.js.PublishMsg(ctx, msg)
	if err != nil {
		var rejected *jetstream.APIError
		if idemKey != "" && !errors.As(err, &rejected) {
			// No ack, and no rejection either: the message may be stored.
			p.settleLater(k, msg, out.MessageID)
		}
		return messagev1.Published{}, false, p.publishError(err)
	}
	out.Seq = ack.Sequence
	if !ack.Duplicate {
		return out, false, nil
	}
	first, err := p.first(ctx, subject, ack.Sequence)
	if err != nil {
		return messagev1.Published{}, false, err
	}
	return first, true, nil
}

// settleFor bounds the settling of one publish: well inside the stream's duplicate
// window, so a re-publish can never store a second copy. maxSettling bounds the
// publishes settled at once (a long outage times out many).
const (
	settleFor   = messagev1.DedupWindow / 2
	maxSettling = 1024
)

// settleLater settles a keyed publish whose ack never came, in the background: the
// client was told the outcome is unknown (503/504) and the message may be stored.
// Usage counts every stored message once, by the attempt that stored it: on its ack,
// or here.
func (p *Publisher) settleLater(k chanKey, m *nats.Msg, messageID string) {
	select {
	case p.settling <- struct{}{}:
	default:
		p.cfg.Log.Warn().Str("tenant_id", k.tenant).Msg("too many publishes being settled: this one is not counted if it was stored")
		return
	}
	// The data is the caller's buffer (not retained after Publish); the headers are ours.
	m = &nats.Msg{Subject: m.Subject, Header: m.Header, Data: bytes.Clone(m.Data)}
	go func() {
		defer func() { <-p.settling }()
		p.settle(k, m, messageID)
	}()
}

// settle re-publishes m — same Nats-Msg-Id, same message id — until an ack comes. A
// fresh ack means the re-publish stored it; a duplicate ack points at the stored copy,
// whose message id tells whether this attempt stored it (a client's retry, through
// this gateway or another, counts the copy it stored itself). The client's own retry
// with the same Idempotency-Key finds the stored copy either way. A channel deleted
// meanwhile ends the settling (nothing is published into it again).
func (p *Publisher) settle(k chanKey, m *nats.Msg, messageID string) {
	deadline := time.Now().Add(settleFor)
	wait := 250 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
		_, err := p.channels.Lookup(ctx, k.tenant, k.channel)
		if e, ok := natsrpc.AsError(err); ok && e.Status == http.StatusNotFound {
			cancel()
			return
		}
		mine := false
		if err == nil {
			mine, err = p.storedBy(ctx, m, messageID)
		}
		cancel()
		if err == nil {
			if mine && p.cfg.Usage != nil {
				p.cfg.Usage.Published(k.tenant, 1)
			}
			return
		}
		// Every failure is retried: the original may still be in flight (a clustered
		// stream answers "duplicate message id is in process" until it is applied).
		if time.Until(deadline) < wait {
			p.cfg.Log.Warn().Err(err).Str("tenant_id", k.tenant).Msg("settling a publish gave up: not counted if it was stored")
			return
		}
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
}

// storedBy publishes m and reports whether the stored copy is the one with messageID.
// A copy trimmed away since cannot tell: it is not counted (the error favours the
// tenant).
func (p *Publisher) storedBy(ctx context.Context, m *nats.Msg, messageID string) (bool, error) {
	ack, err := p.js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		return false, err
	}
	if !ack.Duplicate {
		return true, nil
	}
	s, err := p.messages(ctx)
	if err != nil {
		return false, err
	}
	stored, err := s.GetMsg(ctx, ack.Sequence)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return stored.Header.Get(messagev1.HeaderMessageID) == messageID, nil
}

// first reads back the message a duplicate ack points at (the first publish with the
// same idempotency scope) by its sequence.
func (p *Publisher) first(ctx context.Context, subject string, seq uint64) (messagev1.Published, error) {
	s, err := p.messages(ctx)
	if err != nil {
		return messagev1.Published{}, p.publishError(err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Trimmed or expired since (a channel with a tiny history bound): the first
		// result cannot be told again, and publishing anew would break the promise.
		return messagev1.Published{}, natsrpc.Conflict("the message first published with this Idempotency-Key is no longer stored")
	}
	if err != nil {
		return messagev1.Published{}, p.publishError(err)
	}
	ts, terr := time.Parse(time.RFC3339Nano, m.Header.Get(messagev1.HeaderTimestamp))
	if m.Subject != subject || m.Header.Get(messagev1.HeaderMessageID) == "" || terr != nil {
		// The dedup id hashes the whole scope, so this is not a client's doing.
		p.cfg.Log.Error().Uint64("seq", seq).Str("subject", m.Subject).Msg("duplicate publish points at a message of another scope")
		return messagev1.Published{}, natsrpc.Internal()
	}
	return messagev1.Published{MessageID: m.Header.Get(messagev1.HeaderMessageID), Seq: seq, Timestamp: ts.UTC()}, nil
}

// messages is the stream handle, looked up on first use (the channel service creates
// the stream, possibly after the gateway started).
func (p *Publisher) messages(ctx context.Context) (jetstream.Stream, error) {
	p.streamMu.Lock()
	defer p.streamMu.Unlock()
	if p.stream != nil {
		return p.stream, nil
	}
	s, err := p.js.Stream(ctx, messagev1.Stream)
	if err != nil {
		return nil, err
	}
	p.stream = s
	return s, nil
}

// publishError classifies a failed publish or read-back: the store is unavailable (503)
// or slow (504); anything else is logged and reported as unavailable.
func (p *Publisher) publishError(err error) error {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "the message store did not acknowledge in time")
	case errors.Is(err, context.Canceled):
		return natsrpc.Unavailable("request cancelled")
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrStreamNotFound):
		return natsrpc.Unavailable("the message store is unavailable, try again shortly")
	case errors.As(err, &api) && api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return natsrpc.NewError(http.StatusRequestEntityTooLarge, natsrpc.CodePayloadTooLarge, "the message is too large to store")
	}
	p.cfg.Log.Warn().Err(err).Msg("publish failed")
	return natsrpc.Unavailable("the message store is unavailable, try again shortly")
}

// senderOf says who a stored message is from, and refuses principals that may not
// publish: viewers (SPEC §13) and anything not a user, agent or API key.
func senderOf(pr auth.Principal, role string) (messagev1.Sender, error) {
	switch pr.Kind {
	case natsrpc.KindUser:
		if natsrpc.RoleRank(role) < natsrpc.RoleRank(natsrpc.RoleMember) {
			return messagev1.Sender{}, natsrpc.Forbidden("publishing needs the member role or higher in the tenant")
		}
		if pr.UserID != "" {
			return messagev1.Sender{Type: messagev1.SenderUser, ID: pr.UserID}, nil
		}
	case natsrpc.KindAgent:
		if id, ok := channelv1.NormalizeID(pr.AgentID); ok {
			return messagev1.Sender{Type: messagev1.SenderAgent, ID: id}, nil
		}
	case natsrpc.KindAPIKey:
		// An API key is the tenant acting as admin: it is known by its tenant.
		if pr.TenantID != "" {
			return messagev1.Sender{Type: messagev1.SenderAPIKey, ID: pr.TenantID}, nil
		}
	}
	return messagev1.Sender{}, natsrpc.Forbidden("these credentials may not publish")
}

// trimJSONSpace drops JSON whitespace around a document (not inside it).
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
