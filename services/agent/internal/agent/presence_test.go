package agent_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

func presence(status string, rev uint64, seen time.Time) agent.PresenceChange {
	return agent.PresenceChange{Presence: agent.Presence{Status: status, Rev: rev}, Seen: seen}
}

func (e *env) summary(t *testing.T) agentv1.StatusSummary {
	t.Helper()
	sum, err := e.svc.StatusSummary(context.Background(), owner)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func (e *env) apply(t *testing.T, id string, ch agent.PresenceChange) bool {
	t.Helper()
	wrote, err := e.svc.ApplyPresence(context.Background(), tenantID, id, ch)
	if err != nil {
		t.Fatalf("apply %+v: %v", ch, err)
	}
	return wrote
}

// Presence writes only changes, in revision order; an operator's override stands until
// the next presence change, which then wins; counters, index and events follow.
func TestApplyPresence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	created := a.UpdatedAt
	t0 := time.Date(2025, 3, 4, 6, 0, 0, 0, time.UTC)

	// Presence saying what a new agent already is writes nothing.
	if e.apply(t, a.ID, presence(agentv1.StatusOffline, 3, t0)) {
		t.Fatal("offline over a new (offline) agent was written")
	}
	if !e.apply(t, a.ID, presence(agentv1.StatusOnline, 5, t0)) {
		t.Fatal("online not written")
	}
	got, err := e.repo.Get(ctx, tenantID, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != agentv1.StatusOnline || got.LastSeen == nil || !got.LastSeen.Equal(t0) || !got.UpdatedAt.Equal(created) {
		t.Fatalf("after online: status %s last_seen %v updated_at %v", got.Status, got.LastSeen, got.UpdatedAt)
	}
	// The same change again (another replica), an older one (a lagging replica), and one
	// that does not change the status write nothing.
	for _, ch := range []agent.PresenceChange{
		presence(agentv1.StatusOnline, 5, t0), presence(agentv1.StatusOffline, 4, t0), presence(agentv1.StatusOnline, 9, t0),
	} {
		if e.apply(t, a.ID, ch) {
			t.Fatalf("%+v was written", ch)
		}
	}
	if after, _ := e.repo.Get(ctx, tenantID, a.ID); after.Version != got.Version {
		t.Fatalf("version %d → %d without a change", got.Version, after.Version)
	}

	// The operator's override stands while presence does not change …
	if _, err := e.svc.SetStatus(ctx, owner, a.ID, agentv1.StatusError); err != nil {
		t.Fatal(err)
	}
	if e.apply(t, a.ID, presence(agentv1.StatusOnline, 12, t0.Add(time.Minute))) {
		t.Fatal("an unchanged presence overrode the operator")
	}
	// … and the next presence change wins.
	if !e.apply(t, a.ID, presence(agentv1.StatusBusy, 13, t0.Add(2*time.Minute))) {
		t.Fatal("busy not written over the override")
	}
	if !e.apply(t, a.ID, presence(agentv1.StatusOffline, 14, t0.Add(time.Minute))) {
		t.Fatal("offline not written")
	}
	got, _ = e.repo.Get(ctx, tenantID, a.ID)
	if got.Status != agentv1.StatusOffline || !got.LastSeen.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after offline: status %s last_seen %v (last_seen never goes back)", got.Status, got.LastSeen)
	}
	if sum := e.summary(t); sum != (agentv1.StatusSummary{Offline: 1, Total: 1}) {
		t.Fatalf("summary %+v", sum)
	}
	ids, _, err := e.repo.ListIndex(ctx, tenantID, agent.Index{Kind: agent.ByStatus, Value: agentv1.StatusOffline}, 10, "")
	if err != nil || !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("offline index %v %v", ids, err)
	}
	ids, _, _ = e.repo.ListIndex(ctx, tenantID, agent.Index{Kind: agent.ByStatus, Value: agentv1.StatusBusy}, 10, "")
	if len(ids) != 0 {
		t.Fatalf("busy index still lists %v", ids)
	}

	want := []string{
		tenantID + " created " + a.ID,
		tenantID + " status " + a.ID + " offline→online",
		tenantID + " status " + a.ID + " online→error",
		tenantID + " status " + a.ID + " error→busy",
		tenantID + " status " + a.ID + " busy→offline",
	}
	if got := e.hints.published(); !slices.Equal(got, want) {
		t.Fatalf("events\n%v\nwant\n%v", got, want)
	}

	// A bucket made again counts its revisions from 1: they are not older.
	reborn := presence(agentv1.StatusOnline, 2, t0.Add(3*time.Minute))
	reborn.Epoch = 42
	if !e.apply(t, a.ID, reborn) {
		t.Fatal("a change in a new bucket was not written")
	}
	older := agent.PresenceChange{Presence: agent.Presence{Status: agentv1.StatusOffline, Rev: 1, Epoch: 42}, Seen: t0}
	newer := older
	newer.Rev = 3
	if e.apply(t, a.ID, older) || !e.apply(t, a.ID, newer) {
		t.Fatal("revisions within the new bucket do not order writes")
	}

	// Gone agents: nothing to write, no error.
	if err := e.svc.Delete(ctx, owner, a.ID); err != nil {
		t.Fatal(err)
	}
	if e.apply(t, a.ID, presence(agentv1.StatusOnline, 20, t0)) {
		t.Fatal("presence wrote a deleted agent")
	}
	if _, err := e.svc.ApplyPresence(ctx, tenantID, a.ID, presence(agentv1.StatusError, 21, t0)); err == nil {
		t.Fatal("presence may not set error")
	}
}

// Replicas racing to write the same change: exactly one writes it, counts it and
// publishes it.
func TestApplyPresenceRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for rev, status := range []string{agentv1.StatusOnline, agentv1.StatusIdle, agentv1.StatusOffline, agentv1.StatusBusy} {
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			wrote int
		)
		for range 4 {
			wg.Go(func() {
				ok, err := e.svc.ApplyPresence(ctx, tenantID, a.ID, presence(status, uint64(10+rev), time.Now()))
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					wrote++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wrote != 1 {
			t.Fatalf("%s written %d times", status, wrote)
		}
	}
	if n := len(e.hints.published()); n != 1+4 {
		t.Fatalf("%d events: %v", n, e.hints.published())
	}
	if sum := e.summary(t); sum != (agentv1.StatusSummary{Busy: 1, Total: 1}) {
		t.Fatalf("summary %+v", sum)
	}
}

// Each committed change is published once, by the request that made it.
func TestLifecycleEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a, _, err := e.svc.Create(ctx, owner, agentv1.CreateBody{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Update(ctx, owner, a.ID, agentv1.UpdateBody{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetStatus(ctx, owner, a.ID, agentv1.StatusOffline); err != nil { // no change
		t.Fatal(err)
	}
	if err := e.svc.Delete(ctx, owner, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delete(ctx, owner, a.ID); err == nil {
		t.Fatal("second delete succeeded")
	}
	want := []string{tenantID + " created " + a.ID, tenantID + " updated " + a.ID, tenantID + " deleted " + a.ID}
	if got := e.hints.published(); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
}
