package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/testtable"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const tenantID = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"

func newAgent(id string) agent.Agent {
	now := time.Date(2025, 1, 2, 3, 4, 5, 600, time.UTC)
	return agent.Agent{Agent: agentv1.Agent{
		ID: id, AgentID: id, TenantID: tenantID, Name: "a", Type: agentv1.TypeWorker, Status: agentv1.StatusOffline,
		Capabilities: []agentv1.Capability{{Name: "x", Parameters: map[string]any{"n": 1.5}}, {Name: "y z/#"}},
		Metadata:     map[string]any{"k": []any{"v"}}, CreatedAt: now, UpdatedAt: now,
	}}
}

// sks lists the sort keys of the tenant's partition.
func sks(t *testing.T, tb store.Table) []string {
	t.Helper()
	page, err := tb.Query(context.Background(), partition(tenantID), store.QueryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range page.Items {
		out = append(out, it.SK)
	}
	return out
}

func TestAgentRoundTripAndIndexes(t *testing.T) {
	t.Parallel()
	tb := storetest.NewTable(t, Table)
	r := New(tb)
	ctx := context.Background()
	const id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	a := newAgent(id)
	if err := r.Create(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if a.Version == 0 {
		t.Fatal("create did not set the version")
	}
	got, err := r.Get(ctx, tenantID, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
	}
	st, err := r.GetStored(ctx, tenantID, id)
	if err != nil || st.ID != id || st.Deleting {
		t.Fatalf("stored: %+v %v", st, err)
	}
	want := []string{
		"A#" + id, "C#" + CapabilityHash("x") + "#" + id, "C#" + CapabilityHash("y z/#") + "#" + id,
		"S#offline#" + id, "Y#worker#" + id,
	}
	slices.Sort(want)
	if got := sks(t, tb); !slices.Equal(got, want) {
		t.Fatalf("items:\n got %v\nwant %v", got, want)
	}
	dup := newAgent(id)
	if err := r.Create(ctx, &dup); !errors.Is(err, agent.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}

	// An update moves the index entries that changed and keeps the others.
	next := a
	next.Type, next.Status = agentv1.TypeSystem, agentv1.StatusBusy
	next.Capabilities = []agentv1.Capability{{Name: "x"}, {Name: "new"}}
	if err := r.Update(ctx, a, &next); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"A#" + id, "C#" + CapabilityHash("x") + "#" + id, "C#" + CapabilityHash("new") + "#" + id,
		"S#busy#" + id, "Y#system#" + id,
	}
	slices.Sort(want)
	if got := sks(t, tb); !slices.Equal(got, want) {
		t.Fatalf("items after update:\n got %v\nwant %v", got, want)
	}
	// A writer holding the old version loses and removes nothing.
	stale := a
	stale.Name = "stale"
	if err := r.Update(ctx, a, &stale); !errors.Is(err, agent.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if got := sks(t, tb); !slices.Contains(got, "S#busy#"+id) || !slices.Contains(got, "Y#system#"+id) {
		t.Fatalf("a lost update removed entries: %v", got)
	}

	ids, cursor, err := r.ListIndex(ctx, tenantID, agent.Index{Kind: agent.ByCapability, Value: "new"}, 10, "")
	if err != nil || !slices.Equal(ids, []string{id}) || cursor != "" {
		t.Fatalf("index list: %v %q %v", ids, cursor, err)
	}

	// Remove with an old version deletes the index items but not the item; with the
	// current one, everything.
	if removed, err := r.Remove(ctx, a); err != nil || removed {
		t.Fatalf("remove with an old version: %v %v", removed, err)
	}
	if removed, err := r.Remove(ctx, next); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if got := sks(t, tb); len(got) != 0 {
		t.Fatalf("items after remove: %v", got)
	}
}

// An entry that a concurrent writer needs again (rewritten after our read) survives
// our clean-up after the commit.
func TestUpdateKeepsARewrittenEntry(t *testing.T) {
	t.Parallel()
	tb := testtable.NewCounting(storetest.NewTable(t, Table))
	r := New(tb)
	ctx := context.Background()
	const id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	a := newAgent(id)
	if err := r.Create(ctx, &a); err != nil {
		t.Fatal(err)
	}
	offline := IndexKey(tenantID, agent.Index{Kind: agent.ByStatus, Value: agentv1.StatusOffline}, id)
	next := a
	next.Status = agentv1.StatusOnline
	// Right before our commit, another writer touches the entry (as its upsert does).
	tb.FailWith(func(op string, k store.Key) error {
		if op == "put" && k == AgentKey(tenantID, id) {
			tb.FailWith(nil)
			if _, err := tb.Table.Put(ctx, store.Item{Key: offline}, store.IfExists()); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	if err := r.Update(ctx, a, &next); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Get(ctx, offline); err != nil {
		t.Fatalf("the rewritten entry was deleted: %v", err)
	}
}

func TestCountersAndPurge(t *testing.T) {
	t.Parallel()
	tb := storetest.NewTable(t, Table)
	r := New(tb)
	ctx := context.Background()
	limit := int64(2)
	for range 2 {
		if _, err := r.AddTotal(ctx, tenantID, 1, &limit); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.AddTotal(ctx, tenantID, 1, &limit); !errors.Is(err, agent.ErrConflict) {
		t.Fatalf("over the limit: %v", err)
	}
	if err := r.AddStatus(ctx, tenantID, agentv1.StatusIdle, 2); err != nil {
		t.Fatal(err)
	}
	// No lower bound: a -1 may land before a concurrent +1.
	if err := r.AddStatus(ctx, tenantID, agentv1.StatusBusy, -1); err != nil {
		t.Fatal(err)
	}
	c, err := r.Counts(ctx, tenantID)
	if err != nil || c.Total != 2 || c.ByStatus[agentv1.StatusIdle] != 2 || c.ByStatus[agentv1.StatusBusy] != -1 {
		t.Fatalf("counts %+v %v", c, err)
	}
	for i := range 120 {
		a := newAgent(agentID(i))
		if err := r.Create(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	other := "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	if _, err := r.AddTotal(ctx, other, 1, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := r.Purge(ctx, tenantID); err != nil {
			t.Fatal(err)
		}
		if got := sks(t, tb); len(got) != 0 {
			t.Fatalf("%d items left", len(got))
		}
	}
	if c, _ := r.Counts(ctx, other); c.Total != 1 {
		t.Fatalf("the other tenant: %+v", c)
	}
}

func agentID(i int) string {
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	b := []byte("01ARZ3NDEKTSV4RRFFQ6900000")
	for p := len(b) - 1; i > 0; p-- {
		b[p] = crockford[i%32]
		i /= 32
	}
	return string(b)
}

// The hot read cuts a live agent's JSON out of its record without decoding; it must
// give what decoding gives, and never miss a deletion mark.
func TestStoredRecordFormat(t *testing.T) {
	a := newAgent("01ARZ3NDEKTSV4RRFFQ69G5FAV")
	a.Description = `tricky "}" {"agent":`
	it, err := agentItem(&a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(it.Data), liveRecordPrefix) {
		t.Fatalf("a live record starts with %.20s", it.Data)
	}
	st, err := storedFrom(it)
	if err != nil || st.Deleting || st.ID != a.ID {
		t.Fatalf("stored %+v %v", st, err)
	}
	var r record
	if err := json.Unmarshal(it.Data, &r); err != nil || !bytes.Equal(r.Agent, st.JSON) {
		t.Fatalf("fast path %s, decoded %s (%v)", st.JSON, r.Agent, err)
	}
	var back agentv1.Agent
	if err := json.Unmarshal(st.JSON, &back); err != nil || back.Description != a.Description {
		t.Fatalf("agent JSON %s: %v", st.JSON, err)
	}

	// Once presence wrote the agent, its mark comes first and the hot read still cuts.
	a.Presence = &agent.Presence{Status: agentv1.StatusBusy, Rev: 1 << 40, Epoch: 1767225600123456789}
	if it, err = agentItem(&a); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(it.Data), presenceRecordPrefix) {
		t.Fatalf("a live record with presence starts with %.20s", it.Data)
	}
	if st, err = storedFrom(it); err != nil || st.Deleting {
		t.Fatalf("stored %+v %v", st, err)
	}
	r = record{}
	if err := json.Unmarshal(it.Data, &r); err != nil || !bytes.Equal(r.Agent, st.JSON) {
		t.Fatalf("fast path %s, decoded %s (%v)", st.JSON, r.Agent, err)
	}
	if back, err := agentFrom(it); err != nil || back.Presence == nil || *back.Presence != *a.Presence {
		t.Fatalf("presence read back as %+v (%v)", back.Presence, err)
	}

	now := time.Now().UTC()
	a.DeletingSince = &now
	if it, err = agentItem(&a); err != nil {
		t.Fatal(err)
	}
	if st, err = storedFrom(it); err != nil || !st.Deleting || !json.Valid(st.JSON) {
		t.Fatalf("a deleting agent read as %+v %v", st, err)
	}
	a.Presence = nil
	if it, err = agentItem(&a); err != nil {
		t.Fatal(err)
	}
	if st, err = storedFrom(it); err != nil || !st.Deleting || !json.Valid(st.JSON) {
		t.Fatalf("a deleting agent without presence read as %+v %v", st, err)
	}
}

// Records that are not what the hot read expects are decoded (or refused), never cut
// wrongly.
func TestStoredRecordOddShapes(t *testing.T) {
	for _, d := range []string{
		`{"agent":}`,
		`{"presence":{"status":"busy"}}`,
		`{"presence":{"status":"busy","agent":{}}`,
		`{"presence":{"status":"busy"},"agent":}`,
	} {
		if j, ok := liveAgentJSON([]byte(d)); ok {
			t.Errorf("%s: cut %s", d, j)
		}
	}
}
