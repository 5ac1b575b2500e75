package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/channel/internal/repo"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const tenant = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"

func newChannel(id string) *channel.Channel {
	now := time.Now().UTC()
	return &channel.Channel{Channel: channelv1.Channel{
		ID: id, ChannelID: id, TenantID: tenant, Name: "c", Type: channelv1.TypePublic, Status: channelv1.StatusActive,
		Metadata: map[string]any{}, History: channelv1.History{MaxMessages: 10}, CreatedAt: now, UpdatedAt: now,
		// Dynamic fields are never stored.
		SubscriberCount: 99, TotalMessages: 42, LastMessageAt: &now,
	}}
}

// Versions guard every write; dynamic fields are not stored; the subscriber count
// comes with the channel.
func TestChannelItem(t *testing.T) {
	t.Parallel()
	r := repo.New(storetest.NewTable(t, repo.Table))
	ctx := context.Background()
	c := newChannel("01J00000000000000000000001")
	if err := r.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := r.Create(ctx, newChannel(c.ID)); !errors.Is(err, channel.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	if err := r.AddSubscribers(ctx, tenant, c.ID, 2); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, tenant, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubscriberCount != 2 || got.TotalMessages != 0 || got.LastMessageAt != nil || got.Version != c.Version || got.History.MaxMessages != 10 {
		t.Fatalf("read %+v", got)
	}
	next := got
	next.Name = "renamed"
	if err := r.Update(ctx, got, &next); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, got, &next); !errors.Is(err, channel.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if ok, err := r.Delete(ctx, got); ok || err != nil {
		t.Fatalf("stale delete: %v %v", ok, err)
	}
	if ok, err := r.Delete(ctx, next); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if _, err := r.Get(ctx, tenant, c.ID); !errors.Is(err, channel.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

// A channel's items go, however many pages they fill, and nothing of another channel.
func TestRemoveChannelItems(t *testing.T) {
	t.Parallel()
	tbl := storetest.NewTable(t, repo.Table)
	r := repo.New(tbl)
	ctx := context.Background()
	doomed, kept := "01J00000000000000000000001", "01J00000000000000000000002"
	n := 230
	if storetest.Backend() == store.BackendDynamoDB {
		n = 120 // dynalite is slow; still more than one page
	}
	for i := range n {
		for _, ch := range []string{doomed, kept} {
			s := channelv1.Subscription{ID: "s", SubscriptionID: "s", ChannelID: ch, AgentID: fmt.Sprintf("01J0000000000000000000%04d", i), Role: channelv1.RoleSubscriber}
			if err := r.AddSubscription(ctx, tenant, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ch := range []string{doomed, kept} {
		if err := r.AddSubscribers(ctx, tenant, ch, int64(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RemoveChannelItems(ctx, tenant, doomed); err != nil {
		t.Fatal(err)
	}
	left := 0
	cursor := ""
	for {
		page, err := tbl.Query(ctx, repo.Partition(tenant), store.QueryOptions{Limit: 1000, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if it.SK == repo.SubscribersKey(tenant, doomed).SK || strings.HasPrefix(it.SK, "S#"+doomed) {
				t.Fatalf("item %s left", it.SK)
			}
			left++
		}
		if page.Cursor == "" {
			break
		}
		cursor = page.Cursor
	}
	if left != n+1 {
		t.Fatalf("%d items left, want the other channel's %d", left, n+1)
	}
}
