package usage_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/usage/internal/repo"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

const (
	tenantX = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantY = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"
	agent1  = "01HZY3K9W8X7V6T5S4R3Q2P1N0"
	date    = "2026-03-10"
)

var at = time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)

// racingRepo runs hook once, right before the first day row of tenantX is read (after
// the entry's marker was written, before its row is).
type racingRepo struct {
	usage.Repository
	once sync.Once
	hook func()
}

func (r *racingRepo) GetDay(ctx context.Context, tenantID, date string) (usage.StoredDay, error) {
	if tenantID == tenantX && r.hook != nil {
		r.once.Do(r.hook)
	}
	return r.Repository.GetDay(ctx, tenantID, date)
}

func counts(source string, batch, prev uint64, tenantID string) usagev1.CountsEvent {
	return usagev1.CountsEvent{Source: source, Batch: batch, Entries: []usagev1.CountsEntry{{
		TenantID: tenantID, Date: date, Prev: prev, Counts: usagev1.Counts{APICalls: 3}, PeakConnections: 1,
		ActiveAgents: []string{agent1},
	}}}
}

// items lists the sort keys stored for a tenant.
func items(t *testing.T, table store.Table, tenantID string) []string {
	t.Helper()
	page, err := table.Query(context.Background(), repo.Partition(tenantID), store.QueryOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var sks []string
	for _, it := range page.Items {
		sks = append(sks, it.SK)
	}
	return sks
}

// Metering events of a deleted tenant that are still in flight (the stream keeps them
// until the usage service applies them) never bring its rows back, whether they arrive
// after the purge or while it runs, and whatever batch they continue.
func TestEventsOfADeletedTenantAreDiscarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	table := storetest.NewTable(t, repo.Table)
	svc := usage.NewService(repo.New(table), usage.WithClock(func() time.Time { return at }))

	for _, tenantID := range []string{tenantX, tenantY} {
		if res, err := svc.ApplyCounts(ctx, counts("S1", 1, 0, tenantID)); err != nil || res[usage.Applied] != 1 {
			t.Fatalf("first flush of %s: %v %v", tenantID, res, err)
		}
	}
	if err := svc.Purge(ctx, tenantX); err != nil {
		t.Fatal(err)
	}
	if got := items(t, table, tenantX); len(got) != 1 || got[0] != "deleted" {
		t.Fatalf("X after the purge: %q, want only its tombstone", got)
	}

	// After the purge: the sender's next flush (its predecessor's row is gone, so it
	// would otherwise wait forever), a new sender's first flush and a gauge.
	for _, ev := range []usagev1.CountsEvent{counts("S1", 2, 1, tenantX), counts("S2", 1, 0, tenantX)} {
		res, err := svc.ApplyCounts(ctx, ev)
		if err != nil || res[usage.Discarded] != 1 || !res.Complete() {
			t.Fatalf("%s/%d after the purge: %v %v", ev.Source, ev.Batch, res, err)
		}
	}
	if changed, err := svc.ApplyGauge(ctx, usagev1.GaugeEvent{TenantID: tenantX, Kind: usagev1.GaugeAgents, Value: 4, At: at}); err != nil || changed {
		t.Fatalf("gauge after the purge: changed %v, %v", changed, err)
	}

	// During the purge: the event writes its active-agent marker, then the whole
	// deletion runs, then the event writes its row.
	table2 := storetest.NewTable(t, repo.Table)
	r2 := &racingRepo{Repository: repo.New(table2)}
	svc2 := usage.NewService(r2, usage.WithClock(func() time.Time { return at }))
	r2.hook = func() {
		if err := svc2.Purge(ctx, tenantX); err != nil {
			t.Error(err)
		}
	}
	res, err := svc2.ApplyCounts(ctx, counts("S1", 1, 0, tenantX))
	if err != nil || res[usage.Discarded] != 1 {
		t.Fatalf("flush racing the purge: %v %v", res, err)
	}
	if got := items(t, table2, tenantX); len(got) != 1 || got[0] != "deleted" {
		t.Fatalf("X after a flush that raced its purge: %q, want only its tombstone", got)
	}

	// Y is untouched throughout.
	if got := items(t, table, tenantY); len(got) != 2 {
		t.Fatalf("Y's items: %q, want its row and its active marker", got)
	}
}
