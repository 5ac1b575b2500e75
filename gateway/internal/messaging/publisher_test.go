package messaging

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
)

// publishEnv is a Publisher on a real in-process JetStream with the real MESSAGES stream.
type publishEnv struct {
	src    *fakeSource
	js     jetstream.JetStream
	stream jetstream.Stream
	p      *Publisher
}

func newPublishEnv(t *testing.T, withStream bool) *publishEnv {
	t.Helper()
	return newPublishEnvCounting(t, withStream, nil)
}

// newPublishEnvCounting is newPublishEnv with usage counted by usage.
func newPublishEnvCounting(t *testing.T, withStream bool, usage UsageRecorder) *publishEnv {
	t.Helper()
	ns := natsrpctest.Server(t)
	js, err := jetstream.New(natsrpctest.Connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	e := &publishEnv{src: newFakeSource(), js: js}
	if withStream {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if e.stream, err = js.CreateStream(ctx, messagev1.StreamConfig(1)); err != nil {
			t.Fatal(err)
		}
	}
	channels, _ := newTestChannels(t, e.src, ChannelsConfig{})
	if e.p, err = NewPublisher(js, channels, Unlimited{}, PublisherConfig{Timeout: 2 * time.Second, Usage: usage}); err != nil {
		t.Fatal(err)
	}
	return e
}

var member = auth.Principal{Kind: natsrpc.KindUser, UserID: "mia"}

func TestPublishReplayOfAMessageNoLongerStored(t *testing.T) {
	e := newPublishEnv(t, true)
	ch := ulid.Make().String()
	e.src.put(tenantA, ch, channelv1.TypePublic, 0)
	in := PublishInput{TenantID: tenantA, ChannelID: ch, Principal: member, Role: natsrpc.RoleMember, Plan: plans.Free,
		Data: []byte(`{"n":1}`), IdempotencyKey: "k"}
	ctx := context.Background()
	first, replayed, err := e.p.Publish(ctx, in)
	if err != nil || replayed {
		t.Fatalf("first: %v %v", replayed, err)
	}
	again, replayed, err := e.p.Publish(ctx, in)
	if err != nil || !replayed || again != first {
		t.Fatalf("replay = %+v %v %v, first %+v", again, replayed, err, first)
	}
	// The first message is trimmed away (a channel with a tiny history bound): the
	// promise cannot be kept, and nothing new is stored either.
	if err := e.stream.Purge(ctx, jetstream.WithPurgeSubject(messagev1.Subject(tenantA, ch))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.p.Publish(ctx, in); !isStatus(err, http.StatusConflict) {
		t.Fatalf("replay of a purged message: %v", err)
	}
	info, err := e.stream.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("stream holds %d messages (%v)", info.State.Msgs, err)
	}
}

func TestPublishWithoutStreamIsUnavailable(t *testing.T) {
	e := newPublishEnv(t, false)
	ch := ulid.Make().String()
	e.src.put(tenantA, ch, channelv1.TypePublic, 0)
	_, _, err := e.p.Publish(context.Background(), PublishInput{TenantID: tenantA, ChannelID: ch, Principal: member,
		Role: natsrpc.RoleMember, Data: []byte(`{}`)})
	if !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

// TestPublishChecksBeforeLookup: input that can never be published is refused without
// asking the channel service.
func TestPublishChecksBeforeLookup(t *testing.T) {
	e := newPublishEnv(t, true)
	ch := ulid.Make().String()
	ok := PublishInput{TenantID: tenantA, ChannelID: ch, Principal: member, Role: natsrpc.RoleMember, Plan: plans.Pro, Data: []byte(`{}`)}
	for _, tc := range []struct {
		name   string
		change func(*PublishInput)
		status int
	}{
		{"viewer", func(in *PublishInput) { in.Role = natsrpc.RoleViewer }, 403},
		{"user without a role", func(in *PublishInput) { in.Role = "" }, 403},
		{"system", func(in *PublishInput) { in.Principal = auth.Principal{Kind: natsrpc.KindSystem} }, 403},
		{"agent with a malformed id", func(in *PublishInput) { in.Principal = auth.Principal{Kind: natsrpc.KindAgent, AgentID: "x.y"} }, 403},
		{"api key without tenant", func(in *PublishInput) { in.Principal = auth.Principal{Kind: natsrpc.KindAPIKey} }, 403},
		{"tenant", func(in *PublishInput) { in.TenantID = "tenant.>" }, 404},
		{"channel", func(in *PublishInput) { in.ChannelID = "*" }, 404},
		{"size", func(in *PublishInput) { in.Data = []byte(`{"x":"` + strings.Repeat("a", plans.MaxMessageBytes) + `"}`) }, 413},
		{"key", func(in *PublishInput) { in.IdempotencyKey = "new\nline" }, 422},
		{"array", func(in *PublishInput) { in.Data = []byte(`[]`) }, 422},
		{"invalid utf-8", func(in *PublishInput) { in.Data = []byte("{\"a\":\"\xc3\x28\"}") }, 422},
	} {
		in := ok
		tc.change(&in)
		if _, _, err := e.p.Publish(context.Background(), in); !isStatus(err, tc.status) {
			t.Fatalf("%s: %v, want %d", tc.name, err, tc.status)
		}
	}
	if e.src.count() != 0 {
		t.Fatalf("%d lookups for refused input", e.src.count())
	}
}

func TestMaxBytes(t *testing.T) {
	e := newPublishEnv(t, false)
	for _, plan := range []string{plans.Free, plans.Basic, plans.Pro, plans.Enterprise, "", "unknown"} {
		if got := e.p.MaxBytes(plan); got != plans.MaxMessageBytes {
			t.Fatalf("%q: %d", plan, got)
		}
	}
	unlimited := int64(0)
	huge := int64(1 << 40)
	for _, v := range []*int64{nil, &unlimited, &huge} {
		if got := limitBytes(v); got != messagev1.MaxStoredBytes-headerRoom {
			t.Fatalf("limitBytes(%v) = %d", v, got)
		}
	}
}

func TestTrimJSONSpace(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		" \t\r\n":             "",
		"\n {\"a\": 1 } \r\n": "{\"a\": 1 }",
		"\u00a0{}":            "\u00a0{}", // not JSON whitespace: left for the parser to refuse
	} {
		if got := string(trimJSONSpace([]byte(in))); got != want {
			t.Fatalf("%q → %q, want %q", in, got, want)
		}
	}
}

// publishedCount is a UsageRecorder counting every tenant's stored messages.
type publishedCount struct{ n atomic.Int64 }

func (c *publishedCount) Published(_ string, n int) { c.n.Add(int64(n)) }

// A keyed publish whose ack never comes (here: no stream yet, as during an outage) is
// settled in the background: once the store is back the message is stored, counted
// once, and the client's retry with the same key finds it and is not counted again.
func TestUnacknowledgedKeyedPublishIsSettledAndCountedOnce(t *testing.T) {
	counted := &publishedCount{}
	e := newPublishEnvCounting(t, false, counted)
	ch := ulid.Make().String()
	e.src.put(tenantA, ch, channelv1.TypePublic, 0)
	in := PublishInput{TenantID: tenantA, ChannelID: ch, Principal: member, Role: natsrpc.RoleMember, Plan: plans.Free,
		Data: []byte(`{"n":1}`), IdempotencyKey: "k1"}
	ctx := context.Background()
	if _, _, err := e.p.Publish(ctx, in); !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("publish without the stream: %v", err)
	}
	in.Data[5] = '9' // the caller's buffer is reused after Publish returns
	stream, err := e.js.CreateStream(ctx, messagev1.StreamConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for counted.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the unacknowledged publish was never settled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stored, err := stream.GetLastMsgForSubject(ctx, messagev1.Subject(tenantA, ch))
	if err != nil || string(stored.Data) != `{"n":1}` {
		t.Fatalf("stored: %v %v", stored, err)
	}
	in.Data = []byte(`{"n":1}`)
	again, replayed, err := e.p.Publish(ctx, in)
	if err != nil || !replayed || again.Seq != stored.Sequence || again.MessageID != stored.Header.Get(messagev1.HeaderMessageID) {
		t.Fatalf("the client's retry = %+v %v %v; stored seq %d", again, replayed, err, stored.Sequence)
	}
	time.Sleep(300 * time.Millisecond) // a second count would come from a second settle
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("counted %d times", n)
	}
}

// Settling counts the stored copy only when this attempt stored it: the original
// attempt whose ack was lost, not a later attempt with the same key that found it.
func TestSettleCountsOnlyTheCopyItStored(t *testing.T) {
	counted := &publishedCount{}
	e := newPublishEnvCounting(t, true, counted)
	ctx := context.Background()
	k := chanKey{tenant: tenantA, channel: ulid.Make().String()}
	e.src.put(k.tenant, k.channel, channelv1.TypePublic, 0)
	subject := messagev1.Subject(k.tenant, k.channel)
	attempt := func(messageID string) *nats.Msg {
		m := nats.NewMsg(subject)
		m.Header.Set(jetstream.MsgIDHeader, "same-key")
		m.Header.Set(messagev1.HeaderMessageID, messageID)
		m.Data = []byte(`{"n":1}`)
		return m
	}
	first, second := ulid.Make().String(), ulid.Make().String()
	// The first attempt was stored, its ack lost.
	if _, err := e.js.PublishMsg(ctx, attempt(first)); err != nil {
		t.Fatal(err)
	}
	e.p.settle(k, attempt(second), second) // a later attempt: the copy is not its own
	if n := counted.n.Load(); n != 0 {
		t.Fatalf("a later attempt counted the first one's copy (%d)", n)
	}
	e.p.settle(k, attempt(first), first)
	if n := counted.n.Load(); n != 1 {
		t.Fatalf("the attempt that stored the copy counted %d", n)
	}
	// Into a channel deleted meanwhile nothing is published again.
	gone := chanKey{tenant: tenantA, channel: ulid.Make().String()}
	e.p.settle(gone, nats.NewMsg(messagev1.Subject(gone.tenant, gone.channel)), ulid.Make().String())
	if info, err := e.stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages (%v)", info.State.Msgs, err)
	}
}
