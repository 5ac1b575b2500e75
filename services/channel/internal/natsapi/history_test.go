package natsapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/channel/internal/stream"
	"github.com/artcafe-ai/pubsub/services/channel/internal/streamtest"
)

// history reads one page and checks every message's envelope.
func (f *fixture) history(t testing.TB, ctx context.Context, req channelv1.HistoryRequest) channelv1.HistoryResponse {
	t.Helper()
	var out channelv1.HistoryResponse
	f.call(t, ctx, channelv1.OpHistory, req, &out)
	return out
}

func seqs(msgs []messagev1.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func pubSeqs(msgs []streamtest.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func equal(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// History is read from the real stream as the gateway stores it: oldest first, the
// envelope from the gateway's headers, data byte for byte, after/before/limit exclusive,
// pages that return every message exactly once, and nothing of another channel or tenant
// (even one publishing under the same channel id).
func TestHistoryReads(t *testing.T) {
	t.Parallel()
	f := start(t)
	c := f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{})
	c2 := f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{})
	ttl := time.Duration(c.History.MaxAgeSeconds) * time.Second
	var pub []streamtest.Message
	for i := range 23 {
		data := fmt.Sprintf(`{"n": %d, "big": 12345678901234567890, "f": 1.50, "html": "<a & b>", "s": "\u00e9"}`, i)
		sender := messagev1.Sender{Type: messagev1.SenderAgent, ID: "01J00000000000000000000AGT"}
		if i%2 == 0 {
			sender = messagev1.Sender{Type: messagev1.SenderUser, ID: `odd "user" id`}
		}
		pub = append(pub, streamtest.Publish(t, f.js, tenantA, c.ID, data, streamtest.Options{MaxAge: ttl, Sender: sender}))
		streamtest.Publish(t, f.js, tenantA, c2.ID, `{"other":true}`, streamtest.Options{})
		streamtest.Publish(t, f.js, tenantB, c.ID, `{"intruder":true}`, streamtest.Options{})
	}

	all := f.history(t, viewer(tenantA), channelv1.HistoryRequest{ChannelID: c.ID})
	if !equal(seqs(all.Messages), pubSeqs(pub)) || all.NextAfterSeq != 0 {
		t.Fatalf("history %v next %d, want %v", seqs(all.Messages), all.NextAfterSeq, pubSeqs(pub))
	}
	for i, m := range all.Messages {
		p := pub[i]
		if m.MessageID != p.MessageID || m.ChannelID != c.ID || m.TenantID != tenantA || !m.Timestamp.Equal(p.Timestamp) ||
			m.Sender != p.Sender || string(m.Data) != p.Data {
			t.Fatalf("message %d: %+v, published %+v", i, m, p)
		}
	}
	// On the wire the data is the published text itself: spacing, 1.50, the big integer
	// and the unescaped <&> all survive.
	raw, err := f.client.CallRaw(viewer(tenantA), channelv1.Subject(channelv1.OpHistory), channelv1.HistoryRequest{ChannelID: c.ID, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := fmt.Sprintf(`{"messages":[{"message_id":%q,"seq":%d,"channel_id":%q,"tenant_id":%q,"timestamp":%q,"sender":{"type":"user","id":"odd \"user\" id"},"data":%s}],"next_after_seq":%d}`,
		pub[0].MessageID, pub[0].Seq, c.ID, tenantA, pub[0].Timestamp.Format("2006-01-02T15:04:05.000Z"), pub[0].Data, pub[0].Seq)
	if string(raw) != wantRaw {
		t.Fatalf("raw reply\n%s\nwant\n%s", raw, wantRaw)
	}
	if !json.Valid(raw) {
		t.Fatal("reply is not JSON")
	}

	// Pages of 5 through after_seq: every message once, in order.
	var paged []uint64
	req := channelv1.HistoryRequest{ChannelID: c.ID, Limit: 5}
	for pages := 0; ; pages++ {
		page := f.history(t, agentToken(tenantA, f.agent(tenantA)), req)
		if len(page.Messages) == 0 || len(page.Messages) > 5 || pages > 10 {
			t.Fatalf("page %d of %d messages", pages, len(page.Messages))
		}
		paged = append(paged, seqs(page.Messages)...)
		if page.NextAfterSeq == 0 {
			break
		}
		if page.NextAfterSeq != page.Messages[len(page.Messages)-1].Seq {
			t.Fatalf("next_after_seq %d after %v", page.NextAfterSeq, seqs(page.Messages))
		}
		req.AfterSeq = page.NextAfterSeq
	}
	if !equal(paged, pubSeqs(pub)) {
		t.Fatalf("paged %v, want %v", paged, pubSeqs(pub))
	}

	at := func(i int) uint64 { return pub[i].Seq }
	for _, tc := range []struct {
		name string
		req  channelv1.HistoryRequest
		want []streamtest.Message
		next uint64
	}{
		{"after", channelv1.HistoryRequest{AfterSeq: at(3), Limit: 4}, pub[4:8], at(7)},
		{"after, exclusive of a seq between messages", channelv1.HistoryRequest{AfterSeq: at(3) + 1, Limit: 2}, pub[4:6], at(5)},
		{"after and before", channelv1.HistoryRequest{AfterSeq: at(3), BeforeSeq: at(8), Limit: 10}, pub[4:8], 0},
		{"after and before, paged", channelv1.HistoryRequest{AfterSeq: at(3), BeforeSeq: at(8), Limit: 3}, pub[4:7], at(6)},
		{"after and before, the page ends at before", channelv1.HistoryRequest{AfterSeq: at(3), BeforeSeq: at(8), Limit: 4}, pub[4:8], 0},
		{"before alone: the messages just below it", channelv1.HistoryRequest{BeforeSeq: at(10), Limit: 4}, pub[6:10], 0},
		{"before alone, fewer below it than the limit", channelv1.HistoryRequest{BeforeSeq: at(2), Limit: 4}, pub[0:2], 0},
		{"before alone, beyond the end", channelv1.HistoryRequest{BeforeSeq: 1 << 40, Limit: 3}, pub[20:], 0},
		{"before the first message", channelv1.HistoryRequest{BeforeSeq: at(0), Limit: 3}, nil, 0},
		{"after the last message", channelv1.HistoryRequest{AfterSeq: at(22), Limit: 3}, nil, 0},
		{"default limit", channelv1.HistoryRequest{}, pub, 0},
	} {
		tc.req.ChannelID = c.ID
		got := f.history(t, user(tenantA), tc.req)
		if !equal(seqs(got.Messages), pubSeqs(tc.want)) || got.NextAfterSeq != tc.next {
			t.Errorf("%s: %v next %d, want %v next %d", tc.name, seqs(got.Messages), got.NextAfterSeq, pubSeqs(tc.want), tc.next)
		}
	}
	// The other tenant's messages under the same channel id are not this channel's, and
	// that tenant cannot read this channel.
	f.fails(t, user(tenantB), channelv1.OpHistory, channelv1.HistoryRequest{ChannelID: c.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	if empty := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: f.create(t, user(tenantA), channelv1.CreateBody{}).ID}); len(empty.Messages) != 0 {
		t.Fatalf("a new channel has history %v", seqs(empty.Messages))
	}
}

// An agent reads a private channel's history only with a subscription to it.
func TestHistoryPrivateChannels(t *testing.T) {
	t.Parallel()
	f := start(t)
	priv := f.create(t, user(tenantA), channelv1.CreateBody{Type: channelv1.TypePrivate})
	pub := f.create(t, user(tenantA), channelv1.CreateBody{})
	member, outsider := f.agent(tenantA), f.agent(tenantA)
	f.subscribe(t, user(tenantA), priv.ID, member, channelv1.RoleSubscriber)
	streamtest.Publish(t, f.js, tenantA, priv.ID, `{"secret":1}`, streamtest.Options{})

	f.fails(t, agentToken(tenantA, outsider), channelv1.OpHistory, channelv1.HistoryRequest{ChannelID: priv.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	if h := f.history(t, agentToken(tenantA, member), channelv1.HistoryRequest{ChannelID: priv.ID}); len(h.Messages) != 1 {
		t.Fatalf("subscribed agent read %d messages", len(h.Messages))
	}
	f.history(t, agentToken(tenantA, outsider), channelv1.HistoryRequest{ChannelID: pub.ID})
	if h := f.history(t, viewer(tenantA), channelv1.HistoryRequest{ChannelID: priv.ID}); len(h.Messages) != 1 {
		t.Fatalf("a viewer read %d messages", len(h.Messages))
	}
}

// total_messages and last_message_at come from the stream.
func TestStats(t *testing.T) {
	t.Parallel()
	f := start(t)
	var cs []channelv1.Channel
	for range 6 { // more than a few: the list reads last messages in one request
		cs = append(cs, f.create(t, user(tenantA), channelv1.CreateBody{}))
	}
	var last streamtest.Message
	for i, c := range cs {
		for range i {
			last = streamtest.Publish(t, f.js, tenantA, c.ID, `{"x":1}`, streamtest.Options{})
		}
		if i == 0 {
			continue
		}
		if got := f.get(t, user(tenantA), c.ID); got.TotalMessages != int64(i) || got.LastMessageAt == nil || !got.LastMessageAt.Equal(last.Timestamp) {
			t.Fatalf("channel %d: total %d last %v, want %d and %v", i, got.TotalMessages, got.LastMessageAt, i, last.Timestamp)
		}
	}
	last = streamtest.Publish(t, f.js, tenantA, cs[2].ID, `{"x":2}`, streamtest.Options{})
	var list channelv1.ListResponse
	f.call(t, user(tenantA), channelv1.OpList, channelv1.ListRequest{}, &list)
	for i, c := range list.Channels {
		want := int64(i)
		if i == 2 {
			want = 3
		}
		if c.TotalMessages != want || (want == 0) != (c.LastMessageAt == nil) {
			t.Fatalf("listed channel %d: total %d last %v, want %d", i, c.TotalMessages, c.LastMessageAt, want)
		}
		if i == 2 && !c.LastMessageAt.Equal(last.Timestamp) {
			t.Fatalf("last_message_at %v, want %v", c.LastMessageAt, last.Timestamp)
		}
	}
}

// Deleting a channel purges its history (and only its own) and publishes
// channels.deleted; the channel is gone for every operation.
func TestDeletePurgesHistory(t *testing.T) {
	t.Parallel()
	f := start(t)
	next := f.events(t)
	c := f.create(t, user(tenantA), channelv1.CreateBody{Name: "doomed"})
	keep := f.create(t, user(tenantA), channelv1.CreateBody{})
	next()
	next()
	for range 5 {
		streamtest.Publish(t, f.js, tenantA, c.ID, `{"x":1}`, streamtest.Options{})
		streamtest.Publish(t, f.js, tenantA, keep.ID, `{"x":1}`, streamtest.Options{})
	}
	f.call(t, user(tenantA), channelv1.OpDelete, channelv1.DeleteRequest{ChannelID: c.ID}, nil)
	ev := next()
	var ref eventsv1.ChannelRef
	if err := json.Unmarshal(ev.Data, &ref); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "channels.deleted" || ev.TenantID != tenantA || ref.ChannelID != c.ID || ref.Name != "doomed" {
		t.Fatalf("event %+v %+v", ev, ref)
	}
	if n := subjectCount(t, f.js, messagev1.Subject(tenantA, c.ID)); n != 0 {
		t.Fatalf("%d messages of the deleted channel left in the stream", n)
	}
	if n := subjectCount(t, f.js, messagev1.Subject(tenantA, keep.ID)); n != 5 {
		t.Fatalf("%d messages of the other channel, want 5", n)
	}
	for op, req := range map[string]any{
		channelv1.OpGet: channelv1.GetRequest{ChannelID: c.ID}, channelv1.OpHistory: channelv1.HistoryRequest{ChannelID: c.ID},
		channelv1.OpDelete: channelv1.DeleteRequest{ChannelID: c.ID},
	} {
		f.fails(t, user(tenantA), op, req, http.StatusNotFound, natsrpc.CodeNotFound)
	}
}

func subjectCount(t testing.TB, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), messagev1.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// A channel's max_age_seconds travels with each message as its TTL (set by the gateway),
// and the stream drops the message when it runs out.
func TestMessageTTL(t *testing.T) {
	t.Parallel()
	f := start(t)
	short := f.create(t, user(tenantA), channelv1.CreateBody{History: &channelv1.History{MaxAgeSeconds: 1}})
	long := f.create(t, user(tenantA), channelv1.CreateBody{})
	for range 3 {
		streamtest.Publish(t, f.js, tenantA, short.ID, `{"x":1}`, streamtest.Options{MaxAge: time.Duration(short.History.MaxAgeSeconds) * time.Second})
		streamtest.Publish(t, f.js, tenantA, long.ID, `{"x":1}`, streamtest.Options{MaxAge: time.Duration(long.History.MaxAgeSeconds) * time.Second})
	}
	if h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: short.ID}); len(h.Messages) != 3 {
		t.Fatalf("%d messages right after publishing", len(h.Messages))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: short.ID})
		if len(h.Messages) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still there after their TTL", len(h.Messages))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := f.get(t, user(tenantA), short.ID); got.TotalMessages != 0 {
		t.Fatalf("total_messages %d after expiry", got.TotalMessages)
	}
	if h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: long.ID}); len(h.Messages) != 3 {
		t.Fatalf("%d messages of the long-lived channel", len(h.Messages))
	}
}

// The trimmer keeps each channel's newest max_messages and leaves the others alone.
func TestTrim(t *testing.T) {
	t.Parallel()
	f := start(t)
	small := f.create(t, user(tenantA), channelv1.CreateBody{History: &channelv1.History{MaxMessages: 5}})
	within := f.create(t, user(tenantA), channelv1.CreateBody{History: &channelv1.History{MaxMessages: 50}})
	unlimited := f.create(t, member(tenantA, plans.Enterprise), channelv1.CreateBody{})
	var pub []streamtest.Message
	for range 12 {
		pub = append(pub, streamtest.Publish(t, f.js, tenantA, small.ID, `{"x":1}`, streamtest.Options{}))
		streamtest.Publish(t, f.js, tenantA, within.ID, `{"x":1}`, streamtest.Options{})
		streamtest.Publish(t, f.js, tenantA, unlimited.ID, `{"x":1}`, streamtest.Options{})
	}
	tr := stream.NewTrimmer(f.messages, f.svc, zerolog.Nop())
	if err := tr.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := f.history(t, user(tenantA), channelv1.HistoryRequest{ChannelID: small.ID})
	if !equal(seqs(h.Messages), pubSeqs(pub[7:])) {
		t.Fatalf("after the trim %v, want the newest 5 %v", seqs(h.Messages), pubSeqs(pub[7:]))
	}
	for _, c := range []channelv1.Channel{within, unlimited} {
		if got := f.get(t, user(tenantA), c.ID); got.TotalMessages != 12 {
			t.Fatalf("channel %s trimmed to %d", c.ID, got.TotalMessages)
		}
	}

	// A lower bound set by an update applies at the next sweep of a running trimmer that
	// has the old bound cached: the update's channels.updated event drops it.
	bounds := &countingBounds{Bounds: f.svc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- stream.NewTrimmer(f.messages, bounds, zerolog.Nop(), stream.TrimInterval(50*time.Millisecond)).Run(ctx)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for bounds.reads.Load() < 3 { // one sweep has cached every bound (and subscribed before)
		if time.Now().After(deadline) {
			t.Fatal("the running trimmer did not sweep")
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.call(t, user(tenantA), channelv1.OpUpdate, channelv1.UpdateRequest{ChannelID: within.ID, Changes: channelv1.UpdateBody{
		History: patch.Of(channelv1.History{MaxMessages: 2}),
	}}, nil)
	for f.get(t, user(tenantA), within.ID).TotalMessages != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the running trimmer did not apply the new bound")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// countingBounds counts the bounds a trimmer reads.
type countingBounds struct {
	stream.Bounds
	reads atomic.Int64
}

func (b *countingBounds) MaxMessages(ctx context.Context, tenantID, channelID string) (int64, bool, error) {
	b.reads.Add(1)
	return b.Bounds.MaxMessages(ctx, tenantID, channelID)
}

// The cascade's purge removes every item of the tenant and every stored message of its
// channels, and nothing of another tenant.
func TestTenantPurge(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, tenant := range []string{tenantA, tenantB} {
		c := f.create(t, user(tenant), channelv1.CreateBody{})
		f.subscribe(t, user(tenant), c.ID, f.agent(tenant), "")
		streamtest.Publish(t, f.js, tenant, c.ID, `{"x":1}`, streamtest.Options{})
		streamtest.Publish(t, f.js, tenant, f.create(t, user(tenant), channelv1.CreateBody{}).ID, `{"x":1}`, streamtest.Options{})
	}
	for range 2 { // idempotent
		if err := f.svc.Purge(context.Background(), tenantA); err != nil {
			t.Fatal(err)
		}
	}
	if items := f.items(t, tenantA); len(items) != 0 {
		t.Fatalf("items left: %v", items)
	}
	if n := subjectCount(t, f.js, messagev1.Subject(tenantA, "*")); n != 0 {
		t.Fatalf("%d messages of the purged tenant left", n)
	}
	var list channelv1.ListResponse
	f.call(t, user(tenantB), channelv1.OpList, channelv1.ListRequest{}, &list)
	if len(list.Channels) != 2 || list.Channels[0].TotalMessages != 1 || list.Channels[0].SubscriberCount != 1 {
		t.Fatalf("the other tenant after the purge: %+v", list.Channels)
	}
	// The purged tenant starts from zero (its counter went too).
	for range 10 {
		f.create(t, member(tenantA, plans.Free), channelv1.CreateBody{})
	}
}

// Benchmark: one history page of 100 messages through the service (request, stream
// read, reply), the REST history path minus the gateway.
func BenchmarkHistory100(b *testing.B) {
	f := start(b)
	c := f.create(b, member(tenantA, plans.Pro), channelv1.CreateBody{})
	data := `{"text":"` + strings.Repeat("x", 180) + `"}` // ~200 bytes, as in the publish benchmark
	for range 100 {
		streamtest.Publish(b, f.js, tenantA, c.ID, data, streamtest.Options{})
	}
	ctx := user(tenantA)
	req := channelv1.HistoryRequest{ChannelID: c.ID, Limit: 100}
	b.ReportAllocs()
	for b.Loop() {
		raw, err := f.client.CallRaw(ctx, channelv1.Subject(channelv1.OpHistory), req)
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Count(raw, []byte(`"message_id"`)) != 100 {
			b.Fatal("not 100 messages")
		}
	}
}
