package natsapi_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

// expect filters agents the way the list must.
func expect(all []agentv1.Agent, q agentv1.ListRequest) []string {
	var out []string
	for _, a := range all {
		if q.Status != "" && a.Status != q.Status || q.Type != "" && a.Type != q.Type {
			continue
		}
		if q.Capability != "" && !slices.ContainsFunc(a.Capabilities, func(c agentv1.Capability) bool { return c.Name == q.Capability }) {
			continue
		}
		out = append(out, a.ID)
	}
	return out
}

func TestFilters(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	types := []string{agentv1.TypeWorker, agentv1.TypeSupervisor, agentv1.TypeSpecialist}
	caps := [][]agentv1.Capability{nil, {{Name: "gpu"}}, {{Name: "gpu"}, {Name: "search"}}, {{Name: "search"}}, {{Name: "GPU"}}}
	statuses := []string{agentv1.StatusOffline, agentv1.StatusOnline, agentv1.StatusBusy, agentv1.StatusOffline}
	agents := f.createMany(t, ctx, 30, func(i int) agentv1.CreateBody {
		return agentv1.CreateBody{Name: fmt.Sprint("a", i), Type: types[i%len(types)], Capabilities: caps[i%len(caps)]}
	})
	for i := range agents {
		if s := statuses[i%len(statuses)]; s != agentv1.StatusOffline {
			agents[i] = f.setStatus(t, ctx, agents[i].ID, s)
		}
	}
	// Changes move agents between index entries: type and capabilities replaced.
	var upd agentv1.AgentResponse
	f.call(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: agents[1].ID, Changes: agentv1.UpdateBody{
		Type: patch.Of(agentv1.TypeSystem), Capabilities: patch.Of([]agentv1.Capability{{Name: "search"}}),
	}}, &upd)
	agents[1] = upd.Agent

	queries := []agentv1.ListRequest{
		{}, {Status: agentv1.StatusOnline}, {Status: agentv1.StatusBusy}, {Status: agentv1.StatusError},
		{Type: agentv1.TypeSupervisor}, {Type: agentv1.TypeSystem}, {Capability: "gpu"}, {Capability: "GPU"}, {Capability: "search"},
		{Capability: "none"}, {Status: agentv1.StatusOnline, Type: agentv1.TypeWorker},
		{Status: agentv1.StatusBusy, Capability: "gpu"}, {Type: agentv1.TypeSpecialist, Capability: "search"},
		{Status: agentv1.StatusOffline, Type: agentv1.TypeSupervisor, Capability: "gpu"},
	}
	for _, q := range queries {
		want := expect(agents, q)
		for _, limit := range []int{1, 3, 100} {
			q.Limit = limit
			got := ids(f.listAll(t, viewer(tenantA), q))
			if !slices.Equal(got, want) {
				t.Fatalf("list %+v:\n got %v\nwant %v", q, got, want)
			}
		}
	}
}

// Stale index entries (left by interrupted writes or lost races: the agent gone, or no
// longer matching) are skipped and never produce a short page with a cursor or an
// empty page.
func TestStaleIndexEntries(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	agents := f.createMany(t, ctx, 6, func(i int) agentv1.CreateBody { return agentv1.CreateBody{Name: fmt.Sprint("a", i)} })
	online := []string{agents[1].ID, agents[4].ID}
	for _, id := range online {
		f.setStatus(t, ctx, id, agentv1.StatusOnline)
	}
	plant := func(kind agent.IndexKind, value, id string) {
		t.Helper()
		if _, err := f.table.Put(context.Background(), store.Item{Key: repo.IndexKey(tenantA, agent.Index{Kind: kind, Value: value}, id)}, store.IfAbsent()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
			t.Fatal(err)
		}
	}
	at := func(ts time.Time) string { return ulid.MustNew(ulid.Timestamp(ts), rand.Reader).String() }
	// Entries of agents that are offline, of agents that never existed (before, between
	// and after the real ones), and a type entry that disagrees with the agent.
	for _, a := range agents {
		plant(agent.ByStatus, agentv1.StatusOnline, a.ID)
	}
	for i := range 40 {
		plant(agent.ByStatus, agentv1.StatusOnline, at(time.Unix(int64(1_000_000+i), 0)))
		plant(agent.ByStatus, agentv1.StatusOnline, at(time.Now().Add(time.Duration(i+1)*time.Hour)))
	}
	plant(agent.ByType, agentv1.TypeSupervisor, agents[2].ID)

	for _, limit := range []int{1, 2, 5, 100} {
		if got := ids(f.listAll(t, ctx, agentv1.ListRequest{Status: agentv1.StatusOnline, Limit: limit})); !slices.Equal(got, online) {
			t.Fatalf("limit %d: got %v, want %v", limit, got, online)
		}
	}
	// The last match is followed only by stale entries: its page carries no cursor.
	var page agentv1.ListResponse
	f.call(t, ctx, agentv1.OpList, agentv1.ListRequest{Status: agentv1.StatusOnline, Limit: 2}, &page)
	if len(page.Agents) != 2 || page.Cursor != "" {
		t.Fatalf("the last page: %d agents, cursor %q", len(page.Agents), page.Cursor)
	}
	if got := f.listAll(t, ctx, agentv1.ListRequest{Type: agentv1.TypeSupervisor}); len(got) != 0 {
		t.Fatalf("a disagreeing entry was listed: %v", ids(got))
	}
	// Agents being deleted are stale as well: mark one without finishing.
	a, err := f.repo.Get(context.Background(), tenantA, agents[4].ID)
	if err != nil {
		t.Fatal(err)
	}
	marked := a
	now := time.Now()
	marked.DeletingSince = &now
	if err := f.repo.Update(context.Background(), a, &marked); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.listAll(t, ctx, agentv1.ListRequest{Status: agentv1.StatusOnline, Limit: 1})); !slices.Equal(got, online[:1]) {
		t.Fatalf("with a deleting agent: %v", got)
	}
	if got := f.listAll(t, ctx, agentv1.ListRequest{Limit: 1}); len(got) != len(agents)-1 {
		t.Fatalf("unfiltered with a deleting agent: %d", len(got))
	}
}

// A large tenant: every agent exactly once in pages of 100, and a filtered page costs
// O(page) store reads however many agents do not match.
func TestLargeTenant(t *testing.T) {
	t.Parallel()
	n := 1000
	if storetest.Backend() == store.BackendDynamoDB {
		n = 150 // dynalite is single-threaded
	}
	const special = 12 // supervisors, of which half are busy and a third have "gpu"
	f := start(t)
	ctx := user(tenantA)
	agents := f.createMany(t, ctx, n, func(i int) agentv1.CreateBody {
		b := agentv1.CreateBody{Name: fmt.Sprint("a", i), Capabilities: []agentv1.Capability{{Name: "common"}}}
		if i%(n/special) == 0 {
			b.Type = agentv1.TypeSupervisor
			if i%3 == 0 {
				b.Capabilities = append(b.Capabilities, agentv1.Capability{Name: "gpu"})
			}
		}
		return b
	})
	var supervisors []string
	for i, a := range agents {
		if a.Type == agentv1.TypeSupervisor {
			supervisors = append(supervisors, a.ID)
			if len(supervisors)%2 == 0 {
				agents[i] = f.setStatus(t, ctx, a.ID, agentv1.StatusBusy)
			}
		}
	}

	t.Run("pages of 100", func(t *testing.T) {
		got := f.listAll(t, ctx, agentv1.ListRequest{Limit: 100})
		if !slices.Equal(ids(got), ids(agents)) {
			t.Fatalf("listed %d agents, want %d, each once", len(got), len(agents))
		}
		q := agentv1.ListRequest{Type: agentv1.TypeWorker, Capability: "common", Limit: 100}
		if got := ids(f.listAll(t, ctx, q)); !slices.Equal(got, expect(agents, q)) {
			t.Fatalf("filtered: %d agents, want %d", len(got), len(expect(agents, q)))
		}
	})

	t.Run("filtered page is O(page)", func(t *testing.T) {
		const limit = 5
		for _, q := range []agentv1.ListRequest{
			{},
			{Type: agentv1.TypeSupervisor},
			{Status: agentv1.StatusBusy},
			{Capability: "gpu"},
			{Type: agentv1.TypeSupervisor, Status: agentv1.StatusBusy},
		} {
			q.Limit = limit
			want := expect(agents, q)
			f.table.ResetReads()
			var page agentv1.ListResponse
			f.call(t, ctx, agentv1.OpList, q, &page)
			calls, items := f.table.Reads()
			if len(page.Agents) != min(limit, len(want)) || (page.Cursor != "") != (len(want) > limit) {
				t.Fatalf("%+v: %d agents, cursor %q; want %d of %d", q, len(page.Agents), page.Cursor, min(limit, len(want)), len(want))
			}
			// At most a few reads of a few entries per agent of the page (an index read
			// and a batch read, with a look past the page or one re-read of the index to
			// place the cursor): nothing grows with n.
			if calls > 6 || items > 10*limit+2*8 {
				t.Fatalf("%+v: %d reads of %d items for a page of %d among %d agents", q, calls, items, limit, n)
			}
			t.Logf("%+v: %d reads, %d items", q, calls, items)
		}
	})
}

// Status changes racing on one agent keep the index and the counters right: the
// agent is listed under its final status only, and counted once.
func TestConcurrentStatusChanges(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	a := f.create(t, ctx, agentv1.CreateBody{Name: "flappy"}).Agent
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 8 {
				s := agentv1.Statuses[(w+i)%len(agentv1.Statuses)]
				// Lost races end in 409 after retries; that is an allowed answer.
				_ = f.client.Call(ctx, agentv1.Subject(agentv1.OpSetStatus), agentv1.SetStatusRequest{AgentID: a.ID, Changes: agentv1.SetStatusBody{Status: s}}, nil)
			}
		})
	}
	wg.Wait()
	final := f.get(t, ctx, a.ID).Status
	for _, s := range agentv1.Statuses {
		got := ids(f.listAll(t, ctx, agentv1.ListRequest{Status: s}))
		if want := s == final; (len(got) == 1) != want || len(got) > 1 {
			t.Fatalf("status %s lists %v (final status %s)", s, got, final)
		}
	}
	sum := f.summary(t, ctx)
	byStatus := map[string]int64{agentv1.StatusOnline: sum.Online, agentv1.StatusOffline: sum.Offline, agentv1.StatusBusy: sum.Busy, agentv1.StatusIdle: sum.Idle, agentv1.StatusError: sum.Error}
	for s, n := range byStatus {
		if want := int64(map[bool]int{true: 1}[s == final]); n != want {
			t.Fatalf("summary %+v, final status %s", sum, final)
		}
	}
}

// The index changes between the two reads of a page that ends inside a chunk: the page
// is read again exactly, and the list stays right.
func TestListSurvivesIndexChangesMidPage(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	agents := f.createMany(t, ctx, 12, func(i int) agentv1.CreateBody {
		return agentv1.CreateBody{Name: fmt.Sprint("a", i), Type: agentv1.TypeSupervisor}
	})
	for i := range agents {
		if i%2 == 1 {
			agents[i] = f.setStatus(t, ctx, agents[i].ID, agentv1.StatusBusy)
		}
	}
	prefix := repo.IndexKey(tenantA, agent.Index{Kind: agent.ByType, Value: agentv1.TypeSupervisor}, "").SK
	var queries atomic.Int32
	f.table.FailWith(func(op string, k store.Key) error {
		if op == "query" && k.SK == prefix && queries.Add(1) == 2 {
			// Between the chunk read and the re-read that places the cursor.
			old := ulid.MustNew(ulid.Timestamp(time.Unix(1_000_000, 0)), rand.Reader).String()
			if _, err := f.table.Table.Put(context.Background(), store.Item{Key: repo.IndexKey(tenantA, agent.Index{Kind: agent.ByType, Value: agentv1.TypeSupervisor}, old)}, store.IfAbsent()); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	q := agentv1.ListRequest{Type: agentv1.TypeSupervisor, Status: agentv1.StatusBusy, Limit: 2}
	want := expect(agents, q)
	var first agentv1.ListResponse
	f.call(t, ctx, agentv1.OpList, q, &first)
	// Without the change: one chunk read and one re-read. With it: the exact reads too.
	if n := queries.Load(); n < 3 {
		t.Fatalf("%d index reads for the first page: it was not read again", n)
	}
	f.table.FailWith(nil)
	if got := ids(first.Agents); !slices.Equal(got, want[:2]) || first.Cursor == "" {
		t.Fatalf("first page %v (cursor %q), want %v", got, first.Cursor, want[:2])
	}
	rest := q
	rest.Cursor = first.Cursor
	if got := ids(f.listAll(t, ctx, rest)); !slices.Equal(got, want[2:]) {
		t.Fatalf("the rest: got %v, want %v", got, want[2:])
	}
}
