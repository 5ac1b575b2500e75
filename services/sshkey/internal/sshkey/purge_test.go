package sshkey_test

import (
	"context"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/repo"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

// Purge deletes every item of the tenant, over several pages (keys with their claims,
// index entries and counter, pending challenges), leaves other tenants alone, and can
// run again (the cascade redelivers).
func TestPurge(t *testing.T) {
	t.Parallel()
	table := storetest.NewTable(t, repo.Table)
	svc := sshkey.NewService(repo.New(table), everyAgent{}, noEvents{})
	ctx := context.Background()
	items := func(tenantID string) int {
		t.Helper()
		page, err := table.Query(ctx, "T#"+tenantID, store.QueryOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Items)
	}
	populate := func(tenantID string, n int) {
		t.Helper()
		sc := sshkey.Scope{TenantID: tenantID, Plan: plans.Enterprise}
		agentID := "01J00000000000000000000000"
		for range n {
			if _, err := svc.Create(ctx, sc, sshkey.CreateInput{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.Challenge(ctx, sshkey.Login{TenantID: tenantID, AgentID: agentID, ClientIP: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}

	doomed, kept := "6f1f0e3c-2d4b-4c5a-9e8f-7a6b5c4d3e2f", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	populate(doomed, 30) // 4 items a key: more than one purge page
	populate(kept, 2)
	keptItems := items(kept)
	if n := items(doomed); n <= 100 {
		t.Fatalf("%d items to purge: not more than one page", n)
	}
	for range 2 {
		if err := svc.Purge(ctx, doomed); err != nil {
			t.Fatal(err)
		}
		if n := items(doomed); n != 0 {
			t.Fatalf("%d items of the deleted tenant left", n)
		}
		if n := items(kept); n != keptItems {
			t.Fatalf("the other tenant has %d items, had %d", n, keptItems)
		}
	}
}
