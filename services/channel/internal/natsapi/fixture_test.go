package natsapi_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/channel/internal/agenttest"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/channel/internal/events"
	"github.com/artcafe-ai/pubsub/services/channel/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/channel/internal/repo"
	"github.com/artcafe-ai/pubsub/services/channel/internal/stream"
	"github.com/artcafe-ai/pubsub/services/kit/agentlookup"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const (
	tenantA = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantB = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
)

type fixture struct {
	client   *natsrpc.Client
	nc       *nats.Conn // a client connection of the test's own
	js       jetstream.JetStream
	table    *failTable
	svc      *channel.Service
	messages *stream.Stream
	agents   *agenttest.Fake
}

// start runs the channel service (micro endpoints, real store, real NATS with
// JetStream and the MESSAGES stream) with a fake agent service at its contract, and
// returns a client on a connection of its own. Stats are never cached, so tests see
// what they published at once.
func start(t testing.TB) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	table := &failTable{Table: storetest.NewTable(t, repo.Table)}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	messages, err := stream.Open(context.Background(), nc, js, zerolog.Nop(), stream.WithStatsTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	fa := agenttest.Start(t, natsrpctest.Connect(t, ns))
	svc := channel.NewService(repo.New(table), agentlookup.New(natsrpc.NewClient(nc), channel.ErrNotFound, channel.ErrUnavailable), messages, events.NewPublisher(nc, zerolog.Nop()))
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: channelv1.Service, Description: "test", ContractVersion: channelv1.Version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Stop() })
	if err := natsapi.Register(ms, srv, svc); err != nil {
		t.Fatal(err)
	}
	// The endpoints' subscriptions reach the server with the next round trip; until then
	// a client on another connection would find no responders.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cnc := natsrpctest.Connect(t, ns)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{client: natsrpc.NewClient(cnc), nc: cnc, js: cjs, table: table, svc: svc, messages: messages, agents: fa}
}

// failTable is the test's table with injectable failures (an interface we own).
type failTable struct {
	store.Table
	mu   sync.Mutex
	fail func(ctx context.Context, op string) error
}

// failWith makes every operation for which fn returns an error fail with it ("get",
// "batch_get", "put", "add", "query"); nil restores normal operation.
func (f *failTable) failWith(fn func(ctx context.Context, op string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fn
}

func (f *failTable) injected(ctx context.Context, op string) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	return fail(ctx, op)
}

func (f *failTable) Get(ctx context.Context, key store.Key) (store.Item, error) {
	if err := f.injected(ctx, "get"); err != nil {
		return store.Item{}, err
	}
	return f.Table.Get(ctx, key)
}

func (f *failTable) BatchGet(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	if err := f.injected(ctx, "batch_get"); err != nil {
		return nil, err
	}
	return f.Table.BatchGet(ctx, keys)
}

func (f *failTable) Put(ctx context.Context, item store.Item, cond store.Cond) (int64, error) {
	if err := f.injected(ctx, "put"); err != nil {
		return 0, err
	}
	return f.Table.Put(ctx, item, cond)
}

func (f *failTable) Add(ctx context.Context, key store.Key, delta int64, opts store.AddOptions) (int64, error) {
	if err := f.injected(ctx, "add"); err != nil {
		return 0, err
	}
	return f.Table.Add(ctx, key, delta, opts)
}

func (f *failTable) Query(ctx context.Context, pk string, opts store.QueryOptions) (store.Page, error) {
	if err := f.injected(ctx, "query"); err != nil {
		return store.Page{}, err
	}
	return f.Table.Query(ctx, pk, opts)
}

func with(id natsrpc.Identity) context.Context {
	if id.RequestID == "" {
		id.RequestID = "req-test"
	}
	return natsrpc.WithIdentity(context.Background(), id)
}

// member is a user with the member role on the given plan.
func member(tenant, plan string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindUser, PrincipalID: "u-member", Role: natsrpc.RoleMember, Plan: plan})
}

// user is a member of tenant on the pro plan.
func user(tenant string) context.Context { return member(tenant, plans.Pro) }

func viewer(tenant string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindUser, PrincipalID: "u-viewer", Role: natsrpc.RoleViewer, Plan: plans.Pro})
}

func apiKey(tenant string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAPIKey, PrincipalID: tenant, Role: natsrpc.RoleAdmin, Plan: plans.Pro})
}

func agentToken(tenant, agentID string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAgent, PrincipalID: agentID, Plan: plans.Pro})
}

var system = with(natsrpc.Identity{Kind: natsrpc.KindSystem, PrincipalID: "gateway"})

func (f *fixture) call(t testing.TB, ctx context.Context, op string, req, resp any) {
	t.Helper()
	if err := f.client.Call(ctx, channelv1.Subject(op), req, resp); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// fails calls op and checks the wire error's status and code.
func (f *fixture) fails(t testing.TB, ctx context.Context, op string, req any, status int, code string) *natsrpc.Error {
	t.Helper()
	err := f.client.Call(ctx, channelv1.Subject(op), req, nil)
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: error %v, want %d %s", op, err, status, code)
	}
	return e
}

func (f *fixture) create(t testing.TB, ctx context.Context, body channelv1.CreateBody) channelv1.Channel {
	t.Helper()
	if body.Name == "" {
		body.Name = "general"
	}
	var out channelv1.ChannelResponse
	f.call(t, ctx, channelv1.OpCreate, channelv1.CreateRequest{Channel: body}, &out)
	return out.Channel
}

func (f *fixture) get(t testing.TB, ctx context.Context, id string) channelv1.Channel {
	t.Helper()
	var out channelv1.ChannelResponse
	f.call(t, ctx, channelv1.OpGet, channelv1.GetRequest{ChannelID: id}, &out)
	return out.Channel
}

// agent registers a live agent of tenant with the fake agent service.
func (f *fixture) agent(tenant string) string {
	id := ulid.Make().String()
	f.agents.Add(tenant, id)
	return id
}

func (f *fixture) subscribe(t testing.TB, ctx context.Context, channelID, agentID, role string) channelv1.Subscription {
	t.Helper()
	var out channelv1.SubscriptionResponse
	f.call(t, ctx, channelv1.OpSubscriptionsAdd, channelv1.SubscriptionsAddRequest{
		ChannelID: channelID, Subscription: channelv1.SubscriptionAddBody{AgentID: agentID, Role: role},
	}, &out)
	return out.Subscription
}

// events subscribes to the channel events of every tenant and returns a function that
// waits for the next one.
func (f *fixture) events(t testing.TB) func() eventsv1.Event {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := f.nc.ChanSubscribe(eventsv1.AllChannelEvents, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() eventsv1.Event {
		t.Helper()
		select {
		case m := <-ch:
			var ev eventsv1.Event
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if want := eventsv1.Subject(ev.TenantID, eventsv1.EntityChannels, ev.Type[len("channels."):]); m.Subject != want {
				t.Fatalf("event %s on %s, want %s", ev.Type, m.Subject, want)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no channel event")
			return eventsv1.Event{}
		}
	}
}

// items returns the SKs of the live items of a tenant's partition.
func (f *fixture) items(t testing.TB, tenantID string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		page, err := f.table.Table.Query(context.Background(), repo.Partition(tenantID), store.QueryOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			out = append(out, it.SK)
		}
		if page.Cursor == "" {
			return out
		}
		cursor = page.Cursor
	}
}
