package storetest_test

import (
	"testing"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

// The DynamoDB leg of `make test` must really run on DynamoDB.
func TestNewTableFollowsTheEnvironment(t *testing.T) {
	if got, want := store.Backend(storetest.NewTable(t, "items")), storetest.Backend(); got != want {
		t.Fatalf("tables open on %s, want %s", got, want)
	}
	t.Logf("backend: %s", storetest.Backend())
}

// Every call is a table of its own, even with the same name.
func TestNewTableIsFresh(t *testing.T) {
	a, b := storetest.NewTable(t, "items"), storetest.NewTable(t, "items")
	k := store.Key{PK: "p", SK: "s"}
	if _, err := a.Put(t.Context(), store.Item{Key: k}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), store.Item{Key: k}, store.IfAbsent()); err != nil {
		t.Fatalf("the second table is not empty: %v", err)
	}
}
