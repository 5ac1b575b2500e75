package agent_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/agent/internal/testtable"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const tenantID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"

// keys is an agent.Keys that remembers deletions (the sshkey service itself is faked at
// its NATS contract in the natsapi tests).
type keys struct {
	mu      sync.Mutex
	deleted []string
	fail    error
}

func (k *keys) CheckPublicKey(context.Context, string) error { return k.fail }
func (k *keys) CreateForAgent(_ context.Context, agentID, name, _ string) (*sshkeyv1.Key, error) {
	if k.fail != nil {
		return nil, k.fail
	}
	return &sshkeyv1.Key{ID: "K", AgentID: &agentID, Name: name}, nil
}
func (k *keys) DeleteForAgent(_ context.Context, agentID string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deleted = append(k.deleted, agentID)
	return nil
}

// chans is an agent.Channels that remembers removals and fails on demand (the channel
// service itself is faked at its NATS contract in the natsapi tests).
type chans struct {
	mu      sync.Mutex
	removed []string
	fail    error
}

func (c *chans) RemoveAgent(_ context.Context, agentID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.removed = append(c.removed, agentID)
	return nil
}

func (c *chans) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

func (c *chans) calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.removed...)
}

// hints is an agent.Events that remembers what was published (the NATS publisher has
// its own tests in package events).
type hints struct {
	mu      sync.Mutex
	deleted []string
	events  []string // "<tenant> <action> <agent>[ <previous>→<status>]"
}

func (h *hints) AgentDeleted(_ context.Context, _, agentID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted = append(h.deleted, agentID)
}

func (h *hints) Changed(_ context.Context, tenantID, action string, ref eventsv1.AgentRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, tenantID+" "+action+" "+ref.AgentID)
}

func (h *hints) StatusChanged(_ context.Context, tenantID string, st eventsv1.AgentStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, tenantID+" status "+st.AgentID+" "+st.Previous+"→"+st.Status)
}

func (h *hints) published() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

type env struct {
	svc   *agent.Service
	repo  *repo.Repo
	table *testtable.Counting
	keys  *keys
	chans *chans
	hints *hints
	now   atomic.Int64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{table: testtable.NewCounting(storetest.NewTable(t, repo.Table)), keys: &keys{}, chans: &chans{}, hints: &hints{}}
	e.repo = repo.New(e.table)
	e.now.Store(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC).UnixNano())
	e.svc = agent.NewService(e.repo, e.keys, e.chans, e.hints, agent.WithClock(func() time.Time { return time.Unix(0, e.now.Load()) }))
	return e
}

func (e *env) advance(d time.Duration) { e.now.Add(int64(d)) }

var owner = agent.Actor{TenantID: tenantID, Kind: natsrpc.KindUser, ID: "u", Role: natsrpc.RoleOwner, Plan: plans.Enterprise}

// crashAfterMark leaves an agent as a deletion that stopped right after its mark.
func (e *env) crashAfterMark(t *testing.T, id string) {
	t.Helper()
	a, err := e.repo.Get(context.Background(), tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	marked := a
	since := time.Unix(0, e.now.Load()).UTC()
	marked.DeletingSince = &since
	if err := e.repo.Update(context.Background(), a, &marked); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteResumesAfterACrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a", Capabilities: []agentv1.Capability{{Name: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.crashAfterMark(t, a.ID)
	if _, err := e.svc.Get(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("get of a deleting agent: %v", err)
	}
	if _, err := e.svc.Lookup(ctx, tenantID, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("lookup of a deleting agent: %v", err)
	}

	// Soon after the mark the deletion may still be running: nothing is touched.
	if err := e.svc.Delete(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("delete of a fresh mark: %v", err)
	}
	if _, err := e.repo.Get(ctx, tenantID, a.ID); err != nil || len(e.keys.deleted) != 0 {
		t.Fatalf("a fresh mark was resumed: %v %v", err, e.keys.deleted)
	}

	// Later, the next delete finishes it.
	e.advance(2 * time.Minute)
	if err := e.svc.Delete(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("delete of a stale mark: %v", err)
	}
	if _, err := e.repo.Get(ctx, tenantID, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("the agent item remains: %v", err)
	}
	if len(e.keys.deleted) != 1 || e.keys.deleted[0] != a.ID || len(e.hints.deleted) != 1 {
		t.Fatalf("keys deleted %v, hints %v", e.keys.deleted, e.hints.deleted)
	}
	if got := e.chans.calls(); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("subscriptions removed for %v", got)
	}
	if c, _ := e.repo.Counts(ctx, tenantID); c.Total != 0 || c.ByStatus[agentv1.StatusOffline] != 0 {
		t.Fatalf("counts: %+v", c)
	}
}

// When the agent's subscriptions cannot be removed (its keys are gone by then) the agent
// stays marked, invisible to everyone, and a later DELETE finishes the deletion.
func TestDeleteWhenSubscriptionsCannotBeRemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	down := natsrpc.Unavailable("channel service down")
	e.chans.setFail(down)
	if err := e.svc.Delete(ctx, owner, a.ID); !errors.Is(err, down) {
		t.Fatalf("delete with the channel service down: %v", err)
	}
	stored, err := e.repo.Get(ctx, tenantID, a.ID)
	if err != nil || !stored.Deleting() {
		t.Fatalf("after a failed removal of its subscriptions: %+v %v (want it marked deleting)", stored, err)
	}
	if _, err := e.svc.Get(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("get of the half-deleted agent: %v", err)
	}
	if len(e.hints.deleted) != 0 {
		t.Fatalf("hints %v before the deletion finished", e.hints.deleted)
	}

	// A retry right away does not race the deletion that may still run.
	e.chans.setFail(nil)
	if err := e.svc.Delete(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("retry right away: %v", err)
	}
	if len(e.chans.calls()) != 0 {
		t.Fatal("a fresh mark was resumed")
	}
	// After resumeAfter the next DELETE finishes it.
	e.advance(2 * time.Minute)
	if err := e.svc.Delete(ctx, owner, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("retry later: %v", err)
	}
	if got := e.chans.calls(); len(got) != 1 || got[0] != a.ID {
		t.Fatalf("subscriptions removed for %v", got)
	}
	if _, err := e.repo.Get(ctx, tenantID, a.ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("the agent item remains: %v", err)
	}
	if len(e.hints.deleted) != 1 || e.hints.deleted[0] != a.ID {
		t.Fatalf("hints %v", e.hints.deleted)
	}
	if c, _ := e.repo.Counts(ctx, tenantID); c.Total != 0 {
		t.Fatalf("counts: %+v", c)
	}
}

func TestRepairFixesDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var agents []agent.Agent
	for range 5 {
		a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a"})
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	if _, err := e.svc.SetStatus(ctx, owner, agents[0].ID, agentv1.StatusOnline); err != nil {
		t.Fatal(err)
	}
	// Drift, as crashes between writes leave it: counters off, and a deletion stopped
	// after its mark.
	if _, err := e.repo.AddTotal(ctx, tenantID, 3, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.repo.AddStatus(ctx, tenantID, agentv1.StatusOnline, -1); err != nil {
		t.Fatal(err)
	}
	if err := e.repo.AddStatus(ctx, tenantID, agentv1.StatusError, 2); err != nil {
		t.Fatal(err)
	}
	e.crashAfterMark(t, agents[1].ID)
	e.advance(2 * time.Minute)

	if err := e.svc.Repair(ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	sum, err := e.svc.StatusSummary(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (agentv1.StatusSummary{Online: 1, Offline: 3, Total: 4}) {
		t.Fatalf("after repair: %+v", sum)
	}
	if _, err := e.repo.Get(ctx, tenantID, agents[1].ID); !errors.Is(err, agent.ErrNotFound) {
		t.Fatalf("the stuck deletion was not finished: %v", err)
	}
	// A second run changes nothing.
	if err := e.svc.Repair(ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.svc.StatusSummary(ctx, owner); again != sum {
		t.Fatalf("second repair: %+v", again)
	}
}

// A write failing half-way through create leaves no agent, no index item and the
// counters as they were.
func TestCreateCompensatesStoreFailures(t *testing.T) {
	t.Parallel()
	for _, failOn := range []string{"A#", "Y#", "S#", "N#S#"} {
		t.Run(failOn, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ctx := context.Background()
			e.table.FailWith(func(op string, k store.Key) error {
				if (op == "put" || op == "add") && strings.HasPrefix(k.SK, failOn) {
					return store.ErrUnavailable
				}
				return nil
			})
			_, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a", Capabilities: []agentv1.Capability{{Name: "c"}}})
			if !errors.Is(err, agent.ErrUnavailable) {
				t.Fatalf("create: %v", err)
			}
			e.table.FailWith(nil)
			page, err := e.table.Query(ctx, "T#"+tenantID, store.QueryOptions{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range page.Items {
				if !strings.HasPrefix(it.SK, "N#") || it.Count != 0 {
					t.Fatalf("left behind: %s count %d", it.SK, it.Count)
				}
			}
		})
	}
}

func TestUnknownCallersAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, a := range []agent.Actor{
		{TenantID: tenantID, Kind: "", Role: natsrpc.RoleOwner, Plan: plans.Free},
		{TenantID: tenantID, Kind: "robot", Role: natsrpc.RoleOwner, Plan: plans.Free},
		{TenantID: tenantID, Kind: natsrpc.KindUser, Role: "superuser", Plan: plans.Free},
	} {
		if _, _, err := e.svc.List(context.Background(), a, agent.ListQuery{}); !errors.Is(err, agent.ErrForbidden) {
			t.Fatalf("%+v: %v", a, err)
		}
	}
}
