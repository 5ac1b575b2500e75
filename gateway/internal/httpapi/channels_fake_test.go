package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
)

// fakeChannels is a small channel service answering the channelv1 contract over the
// in-process NATS (faking at our own contract). It owns the REAL MESSAGES stream
// (messagev1.StreamConfig) as the real service does: history is read from it and a
// deleted channel's subject is purged. It publishes the channel events the real service
// publishes.
type fakeChannels struct {
	mu       sync.Mutex
	nc       *nats.Conn
	js       jetstream.JetStream
	stream   jetstream.Stream
	fleet    *fakeFleet                                               // which agents exist
	channels map[string]map[string]*channelv1.Channel                 // tenant → id → channel
	subs     map[string]map[string]map[string]*channelv1.Subscription // tenant → channel → agent → sub
	calls    map[string]int
	seen     map[string]natsrpc.Identity
}

func newFakeChannels(fleet *fakeFleet) *fakeChannels {
	return &fakeChannels{
		fleet:    fleet,
		channels: map[string]map[string]*channelv1.Channel{},
		subs:     map[string]map[string]map[string]*channelv1.Subscription{},
		calls:    map[string]int{},
		seen:     map[string]natsrpc.Identity{},
	}
}

// start creates the MESSAGES stream and the micro service; it returns a JetStream
// context on nc for the tests.
func (f *fakeChannels) start(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	f.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.CreateOrUpdateStream(ctx, messagev1.StreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	f.js, f.stream = js, s
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	svc, err := micro.AddService(nc, micro.Config{Name: channelv1.Service, Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	g := svc.AddGroup(channelv1.Group)
	for op, h := range map[string]micro.Handler{
		channelv1.OpCreate:              natsrpc.Handle(srv, channelv1.OpCreate, f.create),
		channelv1.OpList:                natsrpc.Handle(srv, channelv1.OpList, f.list),
		channelv1.OpGet:                 natsrpc.Handle(srv, channelv1.OpGet, f.get),
		channelv1.OpUpdate:              natsrpc.Handle(srv, channelv1.OpUpdate, f.update),
		channelv1.OpDelete:              natsrpc.Handle(srv, channelv1.OpDelete, f.delete),
		channelv1.OpSubscriptionsList:   natsrpc.Handle(srv, channelv1.OpSubscriptionsList, f.subsList),
		channelv1.OpSubscriptionsAdd:    natsrpc.Handle(srv, channelv1.OpSubscriptionsAdd, f.subsAdd),
		channelv1.OpSubscriptionsRemove: natsrpc.Handle(srv, channelv1.OpSubscriptionsRemove, f.subsRemove),
		channelv1.OpHistory:             natsrpc.Handle(srv, channelv1.OpHistory, f.history),
		channelv1.OpLookup:              natsrpc.Handle(srv, channelv1.OpLookup, f.lookup),
	} {
		if err := g.AddEndpoint(op, h); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return js
}

func (f *fakeChannels) enter(ctx context.Context, op string) (string, func()) {
	f.mu.Lock()
	id := natsrpc.IdentityFrom(ctx)
	f.seen[op] = id
	f.calls[op]++
	return id.TenantID, f.mu.Unlock
}

func (f *fakeChannels) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeChannels) identity(op string) natsrpc.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[op]
}

// event publishes a channel event as the real service does (mu held).
func (f *fakeChannels) event(tenant, action string, ch *channelv1.Channel) {
	ref, _ := json.Marshal(eventsv1.ChannelRef{ChannelID: ch.ID, Name: ch.Name, Type: ch.Type, MaxAgeSeconds: ch.History.MaxAgeSeconds})
	b, _ := json.Marshal(eventsv1.Event{Type: eventsv1.EntityChannels + "." + action, TenantID: tenant, Timestamp: time.Now().UTC(), Data: ref})
	_ = f.nc.Publish(eventsv1.Subject(tenant, eventsv1.EntityChannels, action), b)
}

func (f *fakeChannels) channel(tenant, id string) (*channelv1.Channel, error) {
	c, ok := f.channels[tenant][id]
	if !ok {
		return nil, natsrpc.NotFound("channel not found")
	}
	return c, nil
}

// put stores a channel (mu held).
func (f *fakeChannels) put(tenant string, c *channelv1.Channel) {
	if f.channels[tenant] == nil {
		f.channels[tenant] = map[string]*channelv1.Channel{}
	}
	f.channels[tenant][c.ID] = c
}

func newChannel(tenant, id, name, typ string, h channelv1.History) *channelv1.Channel {
	now := time.Now().UTC().Truncate(time.Second)
	return &channelv1.Channel{ID: id, ChannelID: id, TenantID: tenant, Name: name, Type: typ, Status: channelv1.StatusActive,
		Metadata: map[string]any{}, History: h, CreatedAt: now, UpdatedAt: now}
}

func planHistory(plan string) channelv1.History {
	p, ok := plans.Get(plan)
	if !ok {
		p, _ = plans.Get(plans.DefaultTier)
	}
	var h channelv1.History
	if v := p.Limits.MaxHistoryAgeSeconds; v != nil {
		h.MaxAgeSeconds = *v
	}
	if v := p.Limits.MaxHistoryMessages; v != nil {
		h.MaxMessages = *v
	}
	return h
}

func (f *fakeChannels) create(ctx context.Context, r *channelv1.CreateRequest) (*channelv1.ChannelResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpCreate)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	h := planHistory(natsrpc.IdentityFrom(ctx).Plan)
	if r.Channel.History != nil {
		if r.Channel.History.MaxAgeSeconds > h.MaxAgeSeconds {
			return nil, natsrpc.Invalid(natsrpc.FieldError{Field: "history.max_age_seconds", Message: "is more than the plan allows"})
		}
		if r.Channel.History.MaxAgeSeconds > 0 {
			h.MaxAgeSeconds = r.Channel.History.MaxAgeSeconds
		}
		if r.Channel.History.MaxMessages > 0 {
			h.MaxMessages = r.Channel.History.MaxMessages
		}
	}
	typ := r.Channel.Type
	if typ == "" {
		typ = channelv1.TypePublic
	}
	c := newChannel(tenant, ulid.Make().String(), r.Channel.Name, typ, h)
	f.put(tenant, c)
	f.event(tenant, eventsv1.ActionCreated, c)
	return &channelv1.ChannelResponse{Channel: *c}, nil
}

func (f *fakeChannels) list(ctx context.Context, r *channelv1.ListRequest) (*channelv1.ListResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpList)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	var ids []string
	for id := range f.channels[tenant] {
		ids = append(ids, id)
	}
	got, cursor := page(ids, r.Cursor, r.Limit)
	out := &channelv1.ListResponse{Channels: []channelv1.Channel{}, Cursor: cursor}
	for _, id := range got {
		out.Channels = append(out.Channels, *f.channels[tenant][id])
	}
	return out, nil
}

func (f *fakeChannels) get(ctx context.Context, r *channelv1.GetRequest) (*channelv1.ChannelResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpGet)
	defer unlock()
	c, err := f.channel(tenant, r.ChannelID)
	if err != nil {
		return nil, err
	}
	return &channelv1.ChannelResponse{Channel: *c}, nil
}

func (f *fakeChannels) update(ctx context.Context, r *channelv1.UpdateRequest) (*channelv1.ChannelResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpUpdate)
	defer unlock()
	c, err := f.channel(tenant, r.ChannelID)
	if err != nil {
		return nil, err
	}
	if r.Changes.Name.HasValue() {
		c.Name = r.Changes.Name.Value
	}
	if r.Changes.Type.HasValue() {
		c.Type = r.Changes.Type.Value
	}
	if r.Changes.History.HasValue() {
		c.History = r.Changes.History.Value
	}
	f.event(tenant, eventsv1.ActionUpdated, c)
	return &channelv1.ChannelResponse{Channel: *c}, nil
}

func (f *fakeChannels) delete(ctx context.Context, r *channelv1.DeleteRequest) (*channelv1.Empty, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpDelete)
	defer unlock()
	c, err := f.channel(tenant, r.ChannelID)
	if err != nil {
		return nil, err
	}
	delete(f.channels[tenant], r.ChannelID)
	delete(f.subs[tenant], r.ChannelID)
	if err := f.stream.Purge(ctx, jetstream.WithPurgeSubject(messagev1.Subject(tenant, r.ChannelID))); err != nil {
		return nil, natsrpc.Unavailable("purge: " + err.Error())
	}
	f.event(tenant, eventsv1.ActionDeleted, c)
	return &channelv1.Empty{}, nil
}

func (f *fakeChannels) subsList(ctx context.Context, r *channelv1.SubscriptionsListRequest) (*channelv1.SubscriptionsListResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpSubscriptionsList)
	defer unlock()
	if _, err := f.channel(tenant, r.ChannelID); err != nil {
		return nil, err
	}
	var ids []string
	for id := range f.subs[tenant][r.ChannelID] {
		ids = append(ids, id)
	}
	got, cursor := page(ids, r.Cursor, r.Limit)
	out := &channelv1.SubscriptionsListResponse{Subscriptions: []channelv1.Subscription{}, Cursor: cursor}
	for _, id := range got {
		out.Subscriptions = append(out.Subscriptions, *f.subs[tenant][r.ChannelID][id])
	}
	return out, nil
}

// addSub stores a subscription (mu held).
func (f *fakeChannels) addSub(tenant, channel, agent, role string) (*channelv1.Subscription, error) {
	if f.subs[tenant] == nil {
		f.subs[tenant] = map[string]map[string]*channelv1.Subscription{}
	}
	if f.subs[tenant][channel] == nil {
		f.subs[tenant][channel] = map[string]*channelv1.Subscription{}
	}
	if _, ok := f.subs[tenant][channel][agent]; ok {
		return nil, natsrpc.Conflict("the agent already has a subscription to this channel")
	}
	if role == "" {
		role = channelv1.RoleSubscriber
	}
	id := ulid.Make().String()
	s := &channelv1.Subscription{ID: id, SubscriptionID: id, ChannelID: channel, AgentID: agent, Role: role, CreatedAt: time.Now().UTC()}
	f.subs[tenant][channel][agent] = s
	f.channels[tenant][channel].SubscriberCount++
	return s, nil
}

func (f *fakeChannels) subsAdd(ctx context.Context, r *channelv1.SubscriptionsAddRequest) (*channelv1.SubscriptionResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpSubscriptionsAdd)
	defer unlock()
	if _, err := f.channel(tenant, r.ChannelID); err != nil {
		return nil, err
	}
	f.fleet.mu.Lock()
	_, known := f.fleet.agents[tenant][r.Subscription.AgentID]
	f.fleet.mu.Unlock()
	if !known {
		return nil, natsrpc.Invalid(natsrpc.FieldError{Field: "agent_id", Message: "is not an agent of this tenant"})
	}
	s, err := f.addSub(tenant, r.ChannelID, r.Subscription.AgentID, r.Subscription.Role)
	if err != nil {
		return nil, err
	}
	return &channelv1.SubscriptionResponse{Subscription: *s}, nil
}

func (f *fakeChannels) subsRemove(ctx context.Context, r *channelv1.SubscriptionsRemoveRequest) (*channelv1.Empty, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpSubscriptionsRemove)
	defer unlock()
	if _, err := f.channel(tenant, r.ChannelID); err != nil {
		return nil, err
	}
	if _, ok := f.subs[tenant][r.ChannelID][r.AgentID]; !ok {
		return nil, natsrpc.NotFound("subscription not found")
	}
	delete(f.subs[tenant][r.ChannelID], r.AgentID)
	f.channels[tenant][r.ChannelID].SubscriberCount--
	return &channelv1.Empty{}, nil
}

// history reads the channel's messages from the stream with next-by-subject direct gets.
func (f *fakeChannels) history(ctx context.Context, r *channelv1.HistoryRequest) (*channelv1.HistoryResponse, error) {
	tenant, unlock := f.enter(ctx, channelv1.OpHistory)
	defer unlock()
	if _, err := f.channel(tenant, r.ChannelID); err != nil {
		return nil, err
	}
	limit := r.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	subject := messagev1.Subject(tenant, r.ChannelID)
	out := &channelv1.HistoryResponse{Messages: []messagev1.Message{}}
	for seq := r.AfterSeq + 1; ; {
		m, err := f.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, natsrpc.Unavailable("history: " + err.Error())
		}
		if r.BeforeSeq != 0 && m.Sequence >= r.BeforeSeq {
			break
		}
		if len(out.Messages) == limit {
			out.NextAfterSeq = out.Messages[limit-1].Seq
			break
		}
		ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get(messagev1.HeaderTimestamp))
		out.Messages = append(out.Messages, messagev1.Message{
			MessageID: m.Header.Get(messagev1.HeaderMessageID), Seq: m.Sequence, ChannelID: r.ChannelID, TenantID: tenant,
			Timestamp: ts, Sender: messagev1.Sender{Type: m.Header.Get(messagev1.HeaderSenderType), ID: m.Header.Get(messagev1.HeaderSenderID)},
			Data: m.Data,
		})
		seq = m.Sequence + 1
	}
	return out, nil
}

func (f *fakeChannels) lookup(ctx context.Context, r *channelv1.LookupRequest) (*channelv1.Lookup, error) {
	_, unlock := f.enter(ctx, channelv1.OpLookup)
	defer unlock()
	c, err := f.channel(r.TenantID, r.ChannelID)
	if err != nil {
		return nil, err
	}
	out := &channelv1.Lookup{ChannelID: c.ID, Type: c.Type, MaxAgeSeconds: c.History.MaxAgeSeconds}
	if s, ok := f.subs[r.TenantID][r.ChannelID][r.AgentID]; ok && r.AgentID != "" {
		out.AgentRole = s.Role
	}
	return out, nil
}

// ---- fixtures ----

// seedChannel puts a channel of type typ with a history age bound (0 = unlimited) in
// tenant, without an event (as if created before the gateway started), and returns its id.
func (e *env) seedChannel(tenant, typ string, maxAge int64) string {
	e.t.Helper()
	id := ulid.Make().String()
	e.chans.mu.Lock()
	defer e.chans.mu.Unlock()
	e.chans.put(tenant, newChannel(tenant, id, "seeded "+typ, typ, channelv1.History{MaxAgeSeconds: maxAge, MaxMessages: 1000}))
	return id
}

// seedSubscription gives agent a role in channel (the agent is created when missing).
func (e *env) seedSubscription(tenant, channel, agent, role string) {
	e.t.Helper()
	e.seedAgent(tenant, agent, "agent "+agent)
	e.chans.mu.Lock()
	defer e.chans.mu.Unlock()
	if _, err := e.chans.addSub(tenant, channel, agent, role); err != nil {
		e.t.Fatal(err)
	}
}

// storedMsg is one message as the stream stores it, read with the stream's plain (not
// direct) message get so the headers are exactly the stored ones.
type storedMsg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
}

func (e *env) stored(seq uint64) storedMsg {
	e.t.Helper()
	req, _ := json.Marshal(map[string]uint64{"seq": seq})
	res, err := e.nc.Request("$JS.API.STREAM.MSG.GET."+messagev1.Stream, req, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	var out struct {
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
			Hdrs    []byte `json:"hdrs"`
			Data    []byte `json:"data"`
		} `json:"message"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(res.Data, &out); err != nil || out.Message == nil {
		e.t.Fatalf("stream message %d: %s", seq, res.Data)
	}
	m := storedMsg{Subject: out.Message.Subject, Seq: out.Message.Seq, Data: out.Message.Data}
	if len(out.Message.Hdrs) > 0 {
		h, err := nats.DecodeHeadersMsg(out.Message.Hdrs)
		if err != nil {
			e.t.Fatal(err)
		}
		m.Header = h
	}
	return m
}

// subjectCount is how many messages the stream holds for a channel.
func (e *env) subjectCount(tenant, channel string) uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, messagev1.Stream)
	if err != nil {
		e.t.Fatal(err)
	}
	subj := messagev1.Subject(tenant, channel)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

func mustSeq(t testing.TB, m map[string]any) uint64 {
	t.Helper()
	f, ok := m["seq"].(float64)
	if !ok {
		t.Fatalf("no seq in %v", m)
	}
	return uint64(f)
}
