// Package storetest is the one conformance suite of store.Table (every adapter's tests
// call Run, so the embedded store and DynamoDB behave the same for every service) and
// the fresh tables services' tests run on (NewTable).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Run runs the suite as parallel subtests. newTable must return a new, empty table for
// each call (and close or drop it in t.Cleanup).
func Run(t *testing.T, newTable func(t *testing.T) store.Table) {
	tests := []struct {
		name string
		fn   func(t *testing.T, tbl store.Table)
	}{
		{"CreateIfAbsent", testCreateIfAbsent},
		{"UpdateIfExists", testUpdateIfExists},
		{"UpdateIfVersion", testUpdateIfVersion},
		{"VersionIncrements", testVersionIncrements},
		{"OptimisticConcurrency", testOptimisticConcurrency},
		{"Delete", testDelete},
		{"GetMissing", testGetMissing},
		{"PutKeepsCount", testPutKeepsCount},
		{"DataRoundTrip", testDataRoundTrip},
		{"InvalidArguments", testInvalidArguments},
		{"BatchGet", testBatchGet},
		{"QueryPrefix", testQueryPrefix},
		{"QueryPartitionIsolation", testQueryPartitionIsolation},
		{"QueryReverse", testQueryReverse},
		{"Pagination", testPagination},
		{"PaginationSkipsExpired", testPaginationSkipsExpired},
		{"PaginationAfterDeletedItem", testPaginationAfterDeletedItem},
		{"CursorTampering", testCursorTampering},
		{"CursorFromAnotherQuery", testCursorFromAnotherQuery},
		{"AddConcurrent", testAddConcurrent},
		{"AddBounds", testAddBounds},
		{"AddBoundsConcurrent", testAddBoundsConcurrent},
		{"AddExpiry", testAddExpiry},
		{"Expiry", testExpiry},
		{"ExpiryTransition", testExpiryTransition},
		{"ContextCancelled", testContextCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newTable(t))
		})
	}
}

// --- helpers ---

func key(pk, sk string) store.Key { return store.Key{PK: pk, SK: sk} }

func mustPut(t *testing.T, tbl store.Table, it store.Item, cond store.Cond) int64 {
	t.Helper()
	v, err := tbl.Put(t.Context(), it, cond)
	if err != nil {
		t.Fatalf("Put %v: %v", it.Key, err)
	}
	return v
}

func mustGet(t *testing.T, tbl store.Table, k store.Key) store.Item {
	t.Helper()
	it, err := tbl.Get(t.Context(), k)
	if err != nil {
		t.Fatalf("Get %v: %v", k, err)
	}
	return it
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func wantNotFound(t *testing.T, tbl store.Table, k store.Key) {
	t.Helper()
	_, err := tbl.Get(t.Context(), k)
	wantErr(t, fmt.Sprintf("Get %v", k), err, store.ErrNotFound)
}

func wantItem(t *testing.T, got store.Item, k store.Key, data string, version, count int64) {
	t.Helper()
	if got.Key != k || string(got.Data) != data || got.Version != version || got.Count != count {
		t.Fatalf("item = {%v %q v%d n%d}, want {%v %q v%d n%d}",
			got.Key, got.Data, got.Version, got.Count, k, data, version, count)
	}
}

func sks(items []store.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.SK
	}
	return out
}

// queryAll pages through a query, checking the page rules, and returns the SKs in the
// order received.
func queryAll(t *testing.T, tbl store.Table, pk string, opts store.QueryOptions) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("query does not end")
		}
		page, err := tbl.Query(t.Context(), pk, opts)
		if err != nil {
			t.Fatalf("Query %q %+v: %v", pk, opts, err)
		}
		limit := opts.Limit
		if limit == 0 {
			limit = 100
		}
		if len(page.Items) > limit {
			t.Fatalf("page of %d items with limit %d", len(page.Items), limit)
		}
		if page.Cursor != "" && len(page.Items) == 0 {
			t.Fatalf("empty page with a cursor (after %d items)", len(all))
		}
		if page.Cursor != "" && len(page.Items) < limit {
			t.Fatalf("short page (%d of %d) with a cursor", len(page.Items), limit)
		}
		for _, it := range page.Items {
			if it.PK != pk {
				t.Fatalf("item of partition %q in a query of %q", it.PK, pk)
			}
		}
		all = append(all, sks(page.Items)...)
		if page.Cursor == "" {
			return all
		}
		opts.Cursor = page.Cursor
	}
}

func wantSKs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func past() time.Time { return time.Now().Add(-100 * time.Millisecond) }

func later() time.Time { return time.Now().Add(time.Hour) }

func int64p(v int64) *int64 { return &v }

// --- conditional writes ---

func testCreateIfAbsent(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	if v := mustPut(t, tbl, store.Item{Key: k, Data: []byte("one")}, store.IfAbsent()); v != 1 {
		t.Fatalf("version after create = %d, want 1", v)
	}
	_, err := tbl.Put(t.Context(), store.Item{Key: k, Data: []byte("two")}, store.IfAbsent())
	wantErr(t, "second create", err, store.ErrConditionFailed)
	wantItem(t, mustGet(t, tbl, k), k, "one", 1, 0)
}

func testUpdateIfExists(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	_, err := tbl.Put(t.Context(), store.Item{Key: k, Data: []byte("x")}, store.IfExists())
	wantErr(t, "IfExists on a missing item", err, store.ErrConditionFailed)
	wantNotFound(t, tbl, k)

	mustPut(t, tbl, store.Item{Key: k, Data: []byte("one")}, store.IfAbsent())
	if v := mustPut(t, tbl, store.Item{Key: k, Data: []byte("two")}, store.IfExists()); v != 2 {
		t.Fatalf("version after update = %d, want 2", v)
	}
	wantItem(t, mustGet(t, tbl, k), k, "two", 2, 0)
}

func testUpdateIfVersion(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	_, err := tbl.Put(t.Context(), store.Item{Key: k, Data: []byte("x")}, store.IfVersion(1))
	wantErr(t, "IfVersion on a missing item", err, store.ErrConditionFailed)
	wantNotFound(t, tbl, k)

	mustPut(t, tbl, store.Item{Key: k, Data: []byte("one")}, store.IfAbsent())
	if v := mustPut(t, tbl, store.Item{Key: k, Data: []byte("two")}, store.IfVersion(1)); v != 2 {
		t.Fatalf("version = %d, want 2", v)
	}
	for _, stale := range []int64{1, 3, 0} {
		_, err := tbl.Put(t.Context(), store.Item{Key: k, Data: []byte("stale")}, store.IfVersion(stale))
		wantErr(t, fmt.Sprintf("IfVersion(%d) at version 2", stale), err, store.ErrConditionFailed)
	}
	wantItem(t, mustGet(t, tbl, k), k, "two", 2, 0)
}

func testVersionIncrements(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	mustPut(t, tbl, store.Item{Key: k}, store.IfAbsent())
	for want := int64(2); want <= 6; want++ {
		cond := store.IfVersion(want - 1)
		if want%2 == 0 {
			cond = store.IfExists()
		}
		if v := mustPut(t, tbl, store.Item{Key: k, Data: fmt.Appendf(nil, "%d", want)}, cond); v != want {
			t.Fatalf("version = %d, want %d", v, want)
		}
	}
	wantItem(t, mustGet(t, tbl, k), k, "6", 6, 0)
}

// Read-modify-write with IfVersion from many goroutines loses no update.
func testOptimisticConcurrency(t *testing.T, tbl store.Table) {
	k := key("p", "counter")
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("0")}, store.IfAbsent())
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				it, err := tbl.Get(t.Context(), k)
				if err != nil {
					errs <- err
					return
				}
				n, err := strconv.Atoi(string(it.Data))
				if err != nil {
					errs <- err
					return
				}
				_, err = tbl.Put(t.Context(), store.Item{Key: k, Data: fmt.Appendf(nil, "%d", n+1)}, store.IfVersion(it.Version))
				switch {
				case err == nil:
					done++
				case !errors.Is(err, store.ErrConditionFailed):
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantItem(t, mustGet(t, tbl, k), k, fmt.Sprint(workers*each), 1+workers*each, 0)
}

func testDelete(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	wantErr(t, "Delete IfExists of a missing item", tbl.Delete(t.Context(), k, store.IfExists()), store.ErrConditionFailed)
	wantErr(t, "Delete IfVersion of a missing item", tbl.Delete(t.Context(), k, store.IfVersion(1)), store.ErrConditionFailed)

	mustPut(t, tbl, store.Item{Key: k, Data: []byte("one")}, store.IfAbsent())
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("two")}, store.IfExists())
	wantErr(t, "Delete with a stale version", tbl.Delete(t.Context(), k, store.IfVersion(1)), store.ErrConditionFailed)
	wantItem(t, mustGet(t, tbl, k), k, "two", 2, 0)
	if err := tbl.Delete(t.Context(), k, store.IfAbsent()); err == nil || errors.Is(err, store.ErrConditionFailed) {
		t.Fatalf("Delete IfAbsent: err = %v, want a usage error", err)
	}
	mustGet(t, tbl, k)
	if err := tbl.Delete(t.Context(), k, store.IfVersion(2)); err != nil {
		t.Fatalf("Delete IfVersion(2): %v", err)
	}
	wantNotFound(t, tbl, k)

	// Deleted means absent: create starts again at version 1, count 0.
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("again")}, store.IfAbsent())
	if err := tbl.Delete(t.Context(), k, store.IfExists()); err != nil {
		t.Fatalf("Delete IfExists: %v", err)
	}
	wantNotFound(t, tbl, k)
	wantErr(t, "second delete", tbl.Delete(t.Context(), k, store.IfExists()), store.ErrConditionFailed)
}

func testGetMissing(t *testing.T, tbl store.Table) {
	wantNotFound(t, tbl, key("p", "nothing"))
	mustPut(t, tbl, store.Item{Key: key("p", "a")}, store.IfAbsent())
	wantNotFound(t, tbl, key("p", "b"))
	wantNotFound(t, tbl, key("q", "a"))
	wantNotFound(t, tbl, key("p", "a\x01"))
}

func testPutKeepsCount(t *testing.T, tbl store.Table) {
	k := key("p", "a")
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("one")}, store.IfAbsent())
	if n, err := tbl.Add(t.Context(), k, 5, store.AddOptions{}); err != nil || n != 5 {
		t.Fatalf("Add = %d, %v; want 5", n, err)
	}
	// Add leaves the version alone.
	wantItem(t, mustGet(t, tbl, k), k, "one", 1, 5)
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("two"), Count: 99, Version: 42}, store.IfExists())
	wantItem(t, mustGet(t, tbl, k), k, "two", 2, 5)
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("three")}, store.IfVersion(2))
	wantItem(t, mustGet(t, tbl, k), k, "three", 3, 5)
}

func testDataRoundTrip(t *testing.T, tbl store.Table) {
	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0}
	big := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	cases := map[string][]byte{"empty": nil, "binary": bin, "big": big, "json": []byte(`{"a":1}`)}
	for sk, data := range cases {
		mustPut(t, tbl, store.Item{Key: key("p", sk), Data: data}, store.IfAbsent())
		if got := mustGet(t, tbl, key("p", sk)); !bytes.Equal(got.Data, data) {
			t.Fatalf("%s: data of %d bytes came back as %d bytes", sk, len(data), len(got.Data))
		}
	}
	// Updating to empty data empties it.
	mustPut(t, tbl, store.Item{Key: key("p", "json")}, store.IfExists())
	if got := mustGet(t, tbl, key("p", "json")); len(got.Data) != 0 {
		t.Fatalf("data after an update to empty = %q", got.Data)
	}
	// Unicode keys round-trip and sort by their UTF-8 bytes.
	for _, sk := range []string{"é", "z", "日本", "Z"} {
		mustPut(t, tbl, store.Item{Key: key("ü", sk)}, store.IfAbsent())
	}
	wantSKs(t, "unicode order", queryAll(t, tbl, "ü", store.QueryOptions{}), []string{"Z", "z", "é", "日本"})
}

func testInvalidArguments(t *testing.T, tbl store.Table) {
	ctx := t.Context()
	bad := []store.Key{{PK: "", SK: "a"}, {PK: "p", SK: ""}, {PK: "p", SK: string(bytes.Repeat([]byte("s"), 1025))}, {PK: "p\xff", SK: "a"}}
	for _, k := range bad {
		if _, err := tbl.Put(ctx, store.Item{Key: k}, store.IfAbsent()); err == nil {
			t.Errorf("Put %q: no error", k)
		}
		if _, err := tbl.Get(ctx, k); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get %q: err = %v, want a usage error", k, err)
		}
		if _, err := tbl.Add(ctx, k, 1, store.AddOptions{}); err == nil {
			t.Errorf("Add %q: no error", k)
		}
	}
	if _, err := tbl.Put(ctx, store.Item{Key: key("p", "a")}, store.Cond{}); err == nil {
		t.Error("Put without a condition: no error")
	}
	if err := tbl.Delete(ctx, key("p", "a"), store.Cond{}); err == nil {
		t.Error("Delete without a condition: no error")
	}
	if _, err := tbl.Put(ctx, store.Item{Key: key("p", "big"), Data: make([]byte, 400*1024)}, store.IfAbsent()); err == nil {
		t.Error("Put of 400 KiB: no error")
	}
	if _, err := tbl.Query(ctx, "", store.QueryOptions{}); err == nil {
		t.Error("Query of an empty partition key: no error")
	}
	keys := make([]store.Key, 101)
	for i := range keys {
		keys[i] = key("p", fmt.Sprint(i))
	}
	if _, err := tbl.BatchGet(ctx, keys); err == nil {
		t.Error("BatchGet of 101 keys: no error")
	}
	// Nothing was written by any of it.
	wantSKs(t, "items after invalid calls", queryAll(t, tbl, "p", store.QueryOptions{}), nil)
}

// --- reads ---

func testBatchGet(t *testing.T, tbl store.Table) {
	for _, k := range []store.Key{key("p", "a"), key("p", "b"), key("p", "c"), key("q", "a")} {
		mustPut(t, tbl, store.Item{Key: k, Data: []byte(k.PK + k.SK)}, store.IfAbsent())
	}
	mustPut(t, tbl, store.Item{Key: key("p", "gone"), ExpiresAt: past()}, store.IfAbsent())

	got, err := tbl.BatchGet(t.Context(), []store.Key{
		key("p", "c"), key("p", "missing"), key("q", "a"), key("p", "gone"), key("p", "a"), key("p", "c"), key("r", "b"),
	})
	if err != nil {
		t.Fatalf("BatchGet: %v", err)
	}
	want := []store.Key{key("p", "c"), key("q", "a"), key("p", "a"), key("p", "c")}
	if len(got) != len(want) {
		t.Fatalf("BatchGet returned %d items, want %d: %v", len(got), len(want), got)
	}
	for i, it := range got {
		wantItem(t, it, want[i], want[i].PK+want[i].SK, 1, 0)
	}
	empty, err := tbl.BatchGet(t.Context(), nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("BatchGet(nil) = %v, %v", empty, err)
	}
	// 100 keys is allowed.
	keys := make([]store.Key, 100)
	for i := range keys {
		keys[i] = key("p", fmt.Sprintf("k%03d", i))
	}
	keys[42] = key("p", "b")
	got, err = tbl.BatchGet(t.Context(), keys)
	if err != nil || len(got) != 1 || got[0].SK != "b" {
		t.Fatalf("BatchGet of 100 keys = %v, %v", got, err)
	}
}

func testQueryPrefix(t *testing.T, tbl store.Table) {
	for _, sk := range []string{"b#2", "a#1", "a#2", "ab", "a", "b#1", "a#10", "c"} {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	wantSKs(t, "all", queryAll(t, tbl, "p", store.QueryOptions{}), []string{"a", "a#1", "a#10", "a#2", "ab", "b#1", "b#2", "c"})
	wantSKs(t, "prefix a#", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "a#"}), []string{"a#1", "a#10", "a#2"})
	wantSKs(t, "prefix a", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "a"}), []string{"a", "a#1", "a#10", "a#2", "ab"})
	wantSKs(t, "prefix b#", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "b#", Limit: 1}), []string{"b#1", "b#2"})
	wantSKs(t, "prefix c", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "c"}), []string{"c"})
	wantSKs(t, "prefix d", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "d"}), nil)
	wantSKs(t, "prefix a#3", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "a#3"}), nil)
	wantSKs(t, "other partition", queryAll(t, tbl, "q", store.QueryOptions{}), nil)
	// Query returns whole items.
	page, err := tbl.Query(t.Context(), "p", store.QueryOptions{Prefix: "c"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("Query c = %v, %v", page, err)
	}
	wantItem(t, page.Items[0], key("p", "c"), "", 1, 0)
}

// A partition key that is a prefix of another, or that ends where another's sort key
// starts, never shows the other's items.
func testQueryPartitionIsolation(t *testing.T, tbl store.Table) {
	items := []store.Key{key("t", "1a"), key("t1", "a"), key("t1", "b"), key("t#", "x"), key("t#1", "x"), key("tt", "t")}
	for _, k := range items {
		mustPut(t, tbl, store.Item{Key: k}, store.IfAbsent())
	}
	wantSKs(t, "t", queryAll(t, tbl, "t", store.QueryOptions{}), []string{"1a"})
	wantSKs(t, "t reverse", queryAll(t, tbl, "t", store.QueryOptions{Reverse: true}), []string{"1a"})
	wantSKs(t, "t1", queryAll(t, tbl, "t1", store.QueryOptions{}), []string{"a", "b"})
	wantSKs(t, "t1 reverse", queryAll(t, tbl, "t1", store.QueryOptions{Reverse: true}), []string{"b", "a"})
	wantSKs(t, "t#", queryAll(t, tbl, "t#", store.QueryOptions{}), []string{"x"})
	wantSKs(t, "t prefix 1", queryAll(t, tbl, "t", store.QueryOptions{Prefix: "1"}), []string{"1a"})
	wantNotFound(t, tbl, key("t", "1b"))
}

func testQueryReverse(t *testing.T, tbl store.Table) {
	for _, sk := range []string{"a#1", "a#2", "a#3", "b#1", "0"} {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	wantSKs(t, "reverse", queryAll(t, tbl, "p", store.QueryOptions{Reverse: true}), []string{"b#1", "a#3", "a#2", "a#1", "0"})
	wantSKs(t, "reverse a#", queryAll(t, tbl, "p", store.QueryOptions{Reverse: true, Prefix: "a#"}), []string{"a#3", "a#2", "a#1"})
	wantSKs(t, "reverse a# paged", queryAll(t, tbl, "p", store.QueryOptions{Reverse: true, Prefix: "a#", Limit: 2}), []string{"a#3", "a#2", "a#1"})
	wantSKs(t, "reverse 0", queryAll(t, tbl, "p", store.QueryOptions{Reverse: true, Prefix: "0"}), []string{"0"})
	wantSKs(t, "reverse b#", queryAll(t, tbl, "p", store.QueryOptions{Reverse: true, Prefix: "b#"}), []string{"b#1"})
}

// seq returns the SKs prefix+000 … prefix+(n-1), in order.
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

func testPagination(t *testing.T, tbl store.Table) {
	const n = 60
	items := seq("item#", n)
	for _, sk := range items {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	// Neighbours on both sides that a prefix query must not return.
	for _, sk := range []string{"item", "itel", "itemz", "j"} {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	for _, limit := range []int{1, 2, 7, 20, 59, 60, 61, 0} {
		for _, reverse := range []bool{false, true} {
			want := items
			if reverse {
				want = reversed(items)
			}
			got := queryAll(t, tbl, "p", store.QueryOptions{Prefix: "item#", Limit: limit, Reverse: reverse})
			wantSKs(t, fmt.Sprintf("limit %d reverse %v", limit, reverse), got, want)
		}
	}
	// Exactly one full page: no cursor (the store reads ahead).
	page, err := tbl.Query(t.Context(), "p", store.QueryOptions{Prefix: "item#", Limit: n})
	if err != nil || len(page.Items) != n || page.Cursor != "" {
		t.Fatalf("one full page: %d items, cursor %q, err %v", len(page.Items), page.Cursor, err)
	}
	// Without a prefix the neighbours come in order too.
	all := append(slices.Clone(items), "itel", "item", "itemz", "j")
	slices.Sort(all)
	wantSKs(t, "no prefix", queryAll(t, tbl, "p", store.QueryOptions{Limit: 9}), all)
	// A limit above the maximum is capped, not an error.
	page, err = tbl.Query(t.Context(), "p", store.QueryOptions{Limit: 5000})
	if err != nil || len(page.Items) != len(all) {
		t.Fatalf("limit 5000: %d items, err %v", len(page.Items), err)
	}
}

func testPaginationSkipsExpired(t *testing.T, tbl store.Table) {
	const n = 100
	items := seq("i", n)
	var live []string
	for i, sk := range items {
		it := store.Item{Key: key("p", sk)}
		// Live: the first 10, the last 5, and 50; everything else has expired.
		if i < 10 || i >= 95 || i == 50 {
			live = append(live, sk)
			if i%2 == 0 {
				it.ExpiresAt = later()
			}
		} else {
			it.ExpiresAt = past()
		}
		mustPut(t, tbl, it, store.IfAbsent())
	}
	for _, limit := range []int{1, 3, 5, 10, 16, 17} {
		for _, reverse := range []bool{false, true} {
			want := live
			if reverse {
				want = reversed(live)
			}
			got := queryAll(t, tbl, "p", store.QueryOptions{Limit: limit, Reverse: reverse})
			wantSKs(t, fmt.Sprintf("limit %d reverse %v", limit, reverse), got, want)
		}
	}
	// When everything after a full page has expired, that page is the last one.
	for i := range 30 {
		exp := past()
		if i < 5 {
			exp = later()
		}
		mustPut(t, tbl, store.Item{Key: key("q", fmt.Sprintf("%03d", i)), ExpiresAt: exp}, store.IfAbsent())
	}
	page, err := tbl.Query(t.Context(), "q", store.QueryOptions{Limit: 5})
	if err != nil || len(page.Items) != 5 || page.Cursor != "" {
		t.Fatalf("page before only expired items: %d items, cursor %q, err %v", len(page.Items), page.Cursor, err)
	}
	page, err = tbl.Query(t.Context(), "q", store.QueryOptions{Limit: 5, Reverse: true})
	if err != nil || len(page.Items) != 5 || page.Cursor != "" {
		t.Fatalf("reverse page after only expired items: %d items, cursor %q, err %v", len(page.Items), page.Cursor, err)
	}
	// A partition of expired items only is one empty page.
	page, err = tbl.Query(t.Context(), "q", store.QueryOptions{Prefix: "02", Limit: 2})
	if err != nil || len(page.Items) != 0 || page.Cursor != "" {
		t.Fatalf("only expired items: %d items, cursor %q, err %v", len(page.Items), page.Cursor, err)
	}
}

// A cursor stays valid when the item it points after is deleted.
func testPaginationAfterDeletedItem(t *testing.T, tbl store.Table) {
	items := seq("s", 10)
	for _, sk := range items {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	for _, reverse := range []bool{false, true} {
		page, err := tbl.Query(t.Context(), "p", store.QueryOptions{Limit: 3, Reverse: reverse})
		if err != nil || page.Cursor == "" {
			t.Fatalf("first page: %v, cursor %q", err, page.Cursor)
		}
		last := page.Items[len(page.Items)-1].Key
		if err := tbl.Delete(t.Context(), last, store.IfExists()); err != nil {
			t.Fatal(err)
		}
		rest := queryAll(t, tbl, "p", store.QueryOptions{Limit: 3, Reverse: reverse, Cursor: page.Cursor})
		want := items[3:]
		if reverse {
			want = reversed(items[:len(items)-3])
		}
		wantSKs(t, fmt.Sprintf("after deleting the cursor's item (reverse %v)", reverse), rest, want)
		mustPut(t, tbl, store.Item{Key: last}, store.IfAbsent())
	}
}

func testCursorTampering(t *testing.T, tbl store.Table) {
	for _, sk := range seq("x", 5) {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
	}
	page, err := tbl.Query(t.Context(), "p", store.QueryOptions{Limit: 2})
	if err != nil || page.Cursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, page.Cursor)
	}
	c := page.Cursor
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	bad := []string{"x", "!!!!", "not a cursor", c + "A", c[:len(c)-1], c[1:], c + "=", "AQ", "eyJzayI6IngwMDEifQ"}
	// Every single-character change of a valid cursor.
	for i := range c {
		for _, r := range []byte{alphabet[(indexOf(alphabet, c[i])+1)%64], alphabet[(indexOf(alphabet, c[i])+33)%64]} {
			bad = append(bad, c[:i]+string(r)+c[i+1:])
		}
	}
	for _, b := range bad {
		_, err := tbl.Query(t.Context(), "p", store.QueryOptions{Limit: 2, Cursor: b})
		wantErr(t, fmt.Sprintf("cursor %q (from %q)", b, c), err, store.ErrInvalidCursor)
	}
	// The original still works.
	wantSKs(t, "after tampering", queryAll(t, tbl, "p", store.QueryOptions{Limit: 2, Cursor: c}), seq("x", 5)[2:])
}

func indexOf(s string, b byte) int { return bytes.IndexByte([]byte(s), b) }

func testCursorFromAnotherQuery(t *testing.T, tbl store.Table) {
	for _, sk := range append(seq("a#", 5), seq("b#", 5)...) {
		mustPut(t, tbl, store.Item{Key: key("p", sk)}, store.IfAbsent())
		mustPut(t, tbl, store.Item{Key: key("q", sk)}, store.IfAbsent())
	}
	page, err := tbl.Query(t.Context(), "p", store.QueryOptions{Prefix: "a#", Limit: 2})
	if err != nil || page.Cursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, page.Cursor)
	}
	for name, opts := range map[string]store.QueryOptions{
		"another prefix":    {Prefix: "b#", Limit: 2},
		"no prefix":         {Limit: 2},
		"a longer prefix":   {Prefix: "a#00", Limit: 2},
		"reverse direction": {Prefix: "a#", Limit: 2, Reverse: true},
	} {
		opts.Cursor = page.Cursor
		_, err := tbl.Query(t.Context(), "p", opts)
		wantErr(t, name, err, store.ErrInvalidCursor)
	}
	_, err = tbl.Query(t.Context(), "q", store.QueryOptions{Prefix: "a#", Limit: 2, Cursor: page.Cursor})
	wantErr(t, "another partition", err, store.ErrInvalidCursor)
	// A different limit is fine: the cursor is a position.
	wantSKs(t, "another limit", queryAll(t, tbl, "p", store.QueryOptions{Prefix: "a#", Limit: 1, Cursor: page.Cursor}), seq("a#", 5)[2:])
}

// --- counters ---

func testAddConcurrent(t *testing.T, tbl store.Table) {
	k := key("p", "n")
	const workers, each = 50, 10
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range workers {
		wg.Go(func() {
			for range each {
				if _, err := tbl.Add(t.Context(), k, 1, store.AddOptions{}); err != nil {
					failures.Add(1)
					t.Errorf("Add: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	wantItem(t, mustGet(t, tbl, k), k, "", 1, workers*each)
	n, err := tbl.Add(t.Context(), k, -workers*each, store.AddOptions{})
	if err != nil || n != 0 {
		t.Fatalf("Add back to 0 = %d, %v", n, err)
	}
}

func testAddBounds(t *testing.T, tbl store.Table) {
	ctx := t.Context()
	k := key("p", "n")
	// Out of bounds on an absent item: nothing is created.
	_, err := tbl.Add(ctx, k, 3, store.AddOptions{Max: int64p(2)})
	wantErr(t, "Add 3 with Max 2 on a new item", err, store.ErrConditionFailed)
	_, err = tbl.Add(ctx, k, -1, store.AddOptions{Min: int64p(0)})
	wantErr(t, "Add -1 with Min 0 on a new item", err, store.ErrConditionFailed)
	wantNotFound(t, tbl, k)

	if n, err := tbl.Add(ctx, k, 2, store.AddOptions{Min: int64p(0), Max: int64p(2)}); err != nil || n != 2 {
		t.Fatalf("Add 2 = %d, %v", n, err)
	}
	_, err = tbl.Add(ctx, k, 1, store.AddOptions{Max: int64p(2)})
	wantErr(t, "Add past Max", err, store.ErrConditionFailed)
	_, err = tbl.Add(ctx, k, -3, store.AddOptions{Min: int64p(0)})
	wantErr(t, "Add below Min", err, store.ErrConditionFailed)
	if n, err := tbl.Add(ctx, k, -2, store.AddOptions{Min: int64p(0)}); err != nil || n != 0 {
		t.Fatalf("Add -2 down to Min = %d, %v", n, err)
	}
	// Max bounds the result whatever the sign of delta; Min alone does not bound upwards.
	if n, err := tbl.Add(ctx, k, 10, store.AddOptions{Min: int64p(20)}); !errors.Is(err, store.ErrConditionFailed) {
		t.Fatalf("Add to 10 with Min 20 = %d, %v", n, err)
	}
	if n, err := tbl.Add(ctx, k, 10, store.AddOptions{Min: int64p(5)}); err != nil || n != 10 {
		t.Fatalf("Add 10 with Min 5 = %d, %v", n, err)
	}
	if n, err := tbl.Add(ctx, k, -1, store.AddOptions{Max: int64p(5)}); !errors.Is(err, store.ErrConditionFailed) {
		t.Fatalf("Add -1 at 10 with Max 5 = %d, %v", n, err)
	}
	if n, err := tbl.Add(ctx, k, 0, store.AddOptions{Min: int64p(10), Max: int64p(10)}); err != nil || n != 10 {
		t.Fatalf("Add 0 within [10,10] = %d, %v", n, err)
	}
	// No bound: negative counts are fine.
	if n, err := tbl.Add(ctx, k, -15, store.AddOptions{}); err != nil || n != -5 {
		t.Fatalf("Add -15 = %d, %v", n, err)
	}
	wantItem(t, mustGet(t, tbl, k), k, "", 1, -5)
}

func testAddBoundsConcurrent(t *testing.T, tbl store.Table) {
	for _, existing := range []bool{false, true} {
		k := key("p", fmt.Sprint("n", existing))
		if existing {
			mustPut(t, tbl, store.Item{Key: k, Data: []byte("x")}, store.IfAbsent())
		}
		const workers, limit = 20, 5
		var ok, full atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				_, err := tbl.Add(t.Context(), k, 1, store.AddOptions{Max: int64p(limit)})
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, store.ErrConditionFailed):
					full.Add(1)
				default:
					t.Errorf("Add: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != limit || full.Load() != workers-limit {
			t.Fatalf("existing %v: %d adds succeeded and %d hit Max, want %d and %d", existing, ok.Load(), full.Load(), limit, workers-limit)
		}
		if got := mustGet(t, tbl, k); got.Count != limit {
			t.Fatalf("count = %d, want %d", got.Count, limit)
		}
	}
}

func testAddExpiry(t *testing.T, tbl store.Table) {
	ctx := t.Context()
	k := key("p", "n")
	// Created already expired: the add happens, but the item is invisible.
	if n, err := tbl.Add(ctx, k, 4, store.AddOptions{ExpiresAt: past()}); err != nil || n != 4 {
		t.Fatalf("Add creating an expired item = %d, %v", n, err)
	}
	wantNotFound(t, tbl, k)
	// Revived from 0 with the new expiry.
	exp := later()
	if n, err := tbl.Add(ctx, k, 1, store.AddOptions{ExpiresAt: exp}); err != nil || n != 1 {
		t.Fatalf("Add reviving an expired item = %d, %v, want 1", n, err)
	}
	got := mustGet(t, tbl, k)
	wantItem(t, got, k, "", 1, 1)
	if got.ExpiresAt.UnixMilli() != exp.UnixMilli() {
		t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, exp)
	}
	// A live item keeps its expiry, whatever the add says.
	if n, err := tbl.Add(ctx, k, 1, store.AddOptions{ExpiresAt: past()}); err != nil || n != 2 {
		t.Fatalf("Add to a live item = %d, %v", n, err)
	}
	if got := mustGet(t, tbl, k); got.ExpiresAt.UnixMilli() != exp.UnixMilli() || got.Count != 2 {
		t.Fatalf("after add: count %d, ExpiresAt %v; want 2, %v", got.Count, got.ExpiresAt, exp)
	}
	// Reviving starts from 0 even under a bound, and drops what the dead item had.
	k2 := key("p", "put")
	mustPut(t, tbl, store.Item{Key: k2, Data: []byte("old"), ExpiresAt: past()}, store.IfAbsent())
	if n, err := tbl.Add(ctx, k2, 1, store.AddOptions{Max: int64p(1)}); err != nil || n != 1 {
		t.Fatalf("Add over an expired Put = %d, %v", n, err)
	}
	got = mustGet(t, tbl, k2)
	wantItem(t, got, k2, "", 1, 1)
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("revived without expiry has ExpiresAt %v", got.ExpiresAt)
	}
	// Live expiry runs out: the next add starts again from 0.
	k3 := key("p", "short")
	exp = time.Now().Add(150 * time.Millisecond)
	if n, err := tbl.Add(ctx, k3, 7, store.AddOptions{ExpiresAt: exp}); err != nil || n != 7 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	wantNotFound(t, tbl, k3)
	if n, err := tbl.Add(ctx, k3, 1, store.AddOptions{}); err != nil || n != 1 {
		t.Fatalf("Add after expiry = %d, %v, want 1", n, err)
	}
	if got := mustGet(t, tbl, k3); !got.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt after revival without expiry = %v", got.ExpiresAt)
	}
}

// --- expiry ---

func testExpiry(t *testing.T, tbl store.Table) {
	ctx := t.Context()
	k := key("p", "e")
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("old"), ExpiresAt: past()}, store.IfAbsent())
	if _, err := tbl.Add(ctx, key("p", "e"), 0, store.AddOptions{Max: int64p(-1)}); !errors.Is(err, store.ErrConditionFailed) {
		t.Fatalf("Add out of bounds: %v", err)
	}
	wantNotFound(t, tbl, k)
	items, err := tbl.BatchGet(ctx, []store.Key{k})
	if err != nil || len(items) != 0 {
		t.Fatalf("BatchGet of an expired item = %v, %v", items, err)
	}
	wantSKs(t, "query", queryAll(t, tbl, "p", store.QueryOptions{}), nil)
	_, err = tbl.Put(ctx, store.Item{Key: k}, store.IfExists())
	wantErr(t, "IfExists on an expired item", err, store.ErrConditionFailed)
	_, err = tbl.Put(ctx, store.Item{Key: k}, store.IfVersion(1))
	wantErr(t, "IfVersion on an expired item", err, store.ErrConditionFailed)
	wantErr(t, "Delete of an expired item", tbl.Delete(ctx, k, store.IfExists()), store.ErrConditionFailed)

	// IfAbsent re-creates it from scratch.
	exp := later()
	if v := mustPut(t, tbl, store.Item{Key: k, Data: []byte("new"), ExpiresAt: exp}, store.IfAbsent()); v != 1 {
		t.Fatalf("version of the re-created item = %d", v)
	}
	got := mustGet(t, tbl, k)
	wantItem(t, got, k, "new", 1, 0)
	if got.ExpiresAt.UnixMilli() != exp.UnixMilli() {
		t.Fatalf("ExpiresAt = %v, want %v (ms)", got.ExpiresAt, exp)
	}
	page, err := tbl.Query(ctx, "p", store.QueryOptions{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ExpiresAt.UnixMilli() != exp.UnixMilli() {
		t.Fatalf("Query = %v, %v", page.Items, err)
	}
	// A Put sets the expiry it is given, and a zero one clears it.
	mustPut(t, tbl, store.Item{Key: k, Data: []byte("kept")}, store.IfExists())
	if got := mustGet(t, tbl, k); !got.ExpiresAt.IsZero() {
		t.Fatalf("ExpiresAt after a Put without one = %v", got.ExpiresAt)
	}
	mustPut(t, tbl, store.Item{Key: k, ExpiresAt: past()}, store.IfVersion(2))
	wantNotFound(t, tbl, k)
}

// An item is visible until its expiry and invisible from then on.
func testExpiryTransition(t *testing.T, tbl store.Table) {
	start := time.Now()
	exp := start.Add(200 * time.Millisecond)
	k := key("p", "soon")
	mustPut(t, tbl, store.Item{Key: k, ExpiresAt: exp}, store.IfAbsent())
	got, err := tbl.Get(t.Context(), k)
	// Only a slow machine gets past the expiry before this read; then there is
	// nothing to say about "before".
	if time.Now().Before(exp.Add(-50 * time.Millisecond)) {
		if err != nil {
			t.Fatalf("Get before expiry: %v", err)
		}
		if got.ExpiresAt.UnixMilli() != exp.UnixMilli() {
			t.Fatalf("ExpiresAt = %v, want %v", got.ExpiresAt, exp)
		}
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	wantNotFound(t, tbl, k)
	wantSKs(t, "query after expiry", queryAll(t, tbl, "p", store.QueryOptions{}), nil)
	if v := mustPut(t, tbl, store.Item{Key: k}, store.IfAbsent()); v != 1 {
		t.Fatalf("version after re-create = %d", v)
	}
}

// --- context ---

func testContextCancelled(t *testing.T, tbl store.Table) {
	existing := key("p", "there")
	mustPut(t, tbl, store.Item{Key: existing, Data: []byte("x")}, store.IfAbsent())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	k := key("p", "new")
	// Each operation either fails with the context's error or, for the writes, also
	// writes nothing (checked below).
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", op, err)
		}
	}
	_, err := tbl.Put(ctx, store.Item{Key: k}, store.IfAbsent())
	check("Put", err)
	_, err = tbl.Put(ctx, store.Item{Key: existing, Data: []byte("y")}, store.IfExists())
	check("Put IfExists", err)
	_, err = tbl.Add(ctx, existing, 1, store.AddOptions{})
	check("Add", err)
	check("Delete", tbl.Delete(ctx, existing, store.IfExists()))
	_, err = tbl.Get(ctx, existing)
	check("Get", err)
	_, err = tbl.BatchGet(ctx, []store.Key{existing})
	check("BatchGet", err)
	_, err = tbl.Query(ctx, "p", store.QueryOptions{})
	check("Query", err)

	wantNotFound(t, tbl, k)
	wantItem(t, mustGet(t, tbl, existing), existing, "x", 1, 0)
}
