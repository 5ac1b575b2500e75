package natsapi_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/channels"
	"github.com/artcafe-ai/pubsub/services/agent/internal/channeltest"
	"github.com/artcafe-ai/pubsub/services/agent/internal/events"
	"github.com/artcafe-ai/pubsub/services/agent/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeys"
	"github.com/artcafe-ai/pubsub/services/agent/internal/sshkeytest"
	"github.com/artcafe-ai/pubsub/services/agent/internal/testtable"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const (
	tenantA = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantB = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
)

type fixture struct {
	client *natsrpc.Client
	nc     *nats.Conn // a client connection of the test's own
	table  *testtable.Counting
	repo   *repo.Repo
	keys   *sshkeytest.Fake
	chans  *channeltest.Fake
}

// start runs the agent service (micro endpoints, real store, real NATS) with fake
// sshkey and channel services at their contracts, and returns a client on a connection of its own.
func start(t testing.TB) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	table := testtable.NewCounting(storetest.NewTable(t, repo.Table))
	rp := repo.New(table)
	keys := sshkeytest.Start(t, natsrpctest.Connect(t, ns))
	chans := channeltest.Start(t, natsrpctest.Connect(t, ns))
	rpc := natsrpc.NewClient(nc)
	svc := agent.NewService(rp, sshkeys.New(rpc), channels.New(rpc), events.NewPublisher(nc, zerolog.Nop()))
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: agentv1.Service, Description: "test", ContractVersion: agentv1.Version})
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
	return &fixture{client: natsrpc.NewClient(cnc), nc: cnc, table: table, repo: rp, keys: keys, chans: chans}
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

// user is a member of tenant on the unlimited plan.
func user(tenant string) context.Context { return member(tenant, plans.Enterprise) }

func viewer(tenant string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindUser, PrincipalID: "u-viewer", Role: natsrpc.RoleViewer, Plan: plans.Enterprise})
}

func apiKey(tenant string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAPIKey, PrincipalID: tenant, Role: natsrpc.RoleAdmin, Plan: plans.Enterprise})
}

func agentToken(tenant, agentID string) context.Context {
	return with(natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAgent, PrincipalID: agentID, Plan: plans.Enterprise})
}

var system = with(natsrpc.Identity{Kind: natsrpc.KindSystem, PrincipalID: "gateway"})

func (f *fixture) call(t testing.TB, ctx context.Context, op string, req, resp any) {
	t.Helper()
	if err := f.client.Call(ctx, agentv1.Subject(op), req, resp); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// fails calls op and checks the wire error's status and code.
func (f *fixture) fails(t testing.TB, ctx context.Context, op string, req any, status int, code string) *natsrpc.Error {
	t.Helper()
	err := f.client.Call(ctx, agentv1.Subject(op), req, nil)
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: error %v, want %d %s", op, err, status, code)
	}
	return e
}

func (f *fixture) create(t testing.TB, ctx context.Context, body agentv1.CreateBody) agentv1.CreateResponse {
	t.Helper()
	var out agentv1.CreateResponse
	f.call(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: body}, &out)
	return out
}

func (f *fixture) get(t testing.TB, ctx context.Context, id string) agentv1.Agent {
	t.Helper()
	var out agentv1.AgentResponse
	f.call(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: id}, &out)
	return out.Agent
}

func (f *fixture) summary(t testing.TB, ctx context.Context) agentv1.StatusSummary {
	t.Helper()
	var out agentv1.StatusSummary
	f.call(t, ctx, agentv1.OpStatusSummary, agentv1.StatusSummaryRequest{}, &out)
	return out
}

func (f *fixture) setStatus(t testing.TB, ctx context.Context, id, status string) agentv1.Agent {
	t.Helper()
	var out agentv1.AgentResponse
	f.call(t, ctx, agentv1.OpSetStatus, agentv1.SetStatusRequest{AgentID: id, Changes: agentv1.SetStatusBody{Status: status}}, &out)
	return out.Agent
}

// listAll pages through a list with limit and checks the page rules on the way: no
// empty page while a cursor is set, ids ascending and never repeated.
func (f *fixture) listAll(t testing.TB, ctx context.Context, q agentv1.ListRequest) []agentv1.Agent {
	t.Helper()
	var all []agentv1.Agent
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatal("the list does not end")
		}
		var page agentv1.ListResponse
		f.call(t, ctx, agentv1.OpList, q, &page)
		if len(page.Agents) == 0 && page.Cursor != "" {
			t.Fatalf("empty page with a cursor (page %d, %+v)", pages, q)
		}
		limit := q.Limit
		if limit == 0 {
			limit = agent.DefaultListLimit
		}
		if len(page.Agents) > limit {
			t.Fatalf("page of %d agents, limit %d", len(page.Agents), limit)
		}
		for _, a := range page.Agents {
			if seen[a.ID] {
				t.Fatalf("agent %s listed twice", a.ID)
			}
			if len(all) > 0 && a.ID <= all[len(all)-1].ID {
				t.Fatalf("ids out of order: %s after %s", a.ID, all[len(all)-1].ID)
			}
			seen[a.ID] = true
			all = append(all, a)
		}
		if page.Cursor == "" {
			return all
		}
		q.Cursor = page.Cursor
	}
}

func ids(agents []agentv1.Agent) []string {
	out := make([]string, len(agents))
	for i, a := range agents {
		out[i] = a.ID
	}
	return out
}

// createMany creates n agents with body(i), 16 at a time, and returns them in id order.
func (f *fixture) createMany(t testing.TB, ctx context.Context, n int, body func(i int) agentv1.CreateBody) []agentv1.Agent {
	t.Helper()
	out := make([]agentv1.Agent, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				var resp agentv1.CreateResponse
				errs[i] = f.client.Call(ctx, agentv1.Subject(agentv1.OpCreate), agentv1.CreateRequest{Agent: body(i)}, &resp)
				out[i] = resp.Agent
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	sortByID(out)
	return out
}

func sortByID(agents []agentv1.Agent) {
	slices.SortFunc(agents, func(a, b agentv1.Agent) int { return strings.Compare(a.ID, b.ID) })
}
