package store_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

func openBolt(t testing.TB, opts ...store.BoltOption) store.Table {
	t.Helper()
	tbl, err := store.OpenBolt(filepath.Join(t.TempDir(), "test.db"), "items", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tbl.Close(); err != nil {
			t.Error(err)
		}
	})
	return tbl
}

func TestBoltConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Table { return openBolt(t) })
}

func TestBoltSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.db")
	first, err := store.OpenBolt(path, "items")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	done := make(chan error, 1)
	go func() {
		second, err := store.OpenBolt(path, "items")
		if err == nil {
			second.Close()
		}
		done <- err
	}()
	// The store gives up after about a second; a minute means it hangs.
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("second OpenBolt of the same file hangs")
	}
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("second open: err = %v, want ErrInUse", err)
	}
	for _, want := range []string{path, "already in use by another process", "run more replicas on DynamoDB"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	// Once the first is closed, the file opens again with its data.
	ctx := t.Context()
	if _, err := first.Put(ctx, store.Item{Key: store.Key{PK: "p", SK: "s"}, Data: []byte("kept")}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := store.OpenBolt(path, "items")
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	defer again.Close()
	if it, err := again.Get(ctx, store.Key{PK: "p", SK: "s"}); err != nil || string(it.Data) != "kept" {
		t.Fatalf("after reopen: %v, %v", it, err)
	}
}

// Tables in one file are separate buckets.
func TestBoltTablesAreSeparate(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	k := store.Key{PK: "p", SK: "s"}
	a, err := store.OpenBolt(filepath.Join(dir, "f.db"), "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put(ctx, store.Item{Key: k}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b, err := store.OpenBolt(filepath.Join(dir, "f.db"), "b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get in another bucket: %v", err)
	}
}

// putExpiring writes n items, all expired but every 100th, and returns how many are
// live. It writes from several goroutines, so the writes share batches.
func putExpiring(t *testing.T, tbl store.Table, n int) int {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				it := store.Item{Key: store.Key{PK: fmt.Sprint("p", i%3), SK: fmt.Sprintf("%05d", i)}}
				if i%100 != 0 {
					it.ExpiresAt = time.Now().Add(-time.Second)
				}
				if _, err := tbl.Put(t.Context(), it, store.IfAbsent()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return (n + 99) / 100
}

func TestBoltSweep(t *testing.T) {
	tbl := openBolt(t, store.WithSweepInterval(0)) // no background sweeper
	// More than one sweep chunk, with live items among the expired ones.
	const n = 2500
	live := putExpiring(t, tbl, n)
	if raw, err := store.RawBoltKeys(tbl); err != nil || raw != n {
		t.Fatalf("raw keys before the sweep: %d, %v", raw, err)
	}
	deleted, err := store.SweepBolt(tbl)
	if err != nil || deleted != n-live {
		t.Fatalf("sweep deleted %d, %v; want %d", deleted, err, n-live)
	}
	if raw, err := store.RawBoltKeys(tbl); err != nil || raw != live {
		t.Fatalf("raw keys after the sweep: %d, %v; want %d", raw, err, live)
	}
	total := 0
	for p := range 3 {
		page, err := tbl.Query(t.Context(), fmt.Sprint("p", p), store.QueryOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		total += len(page.Items)
	}
	if total != live {
		t.Fatalf("live items after the sweep: %d, want %d", total, live)
	}
	if deleted, err := store.SweepBolt(tbl); err != nil || deleted != 0 {
		t.Fatalf("second sweep deleted %d, %v", deleted, err)
	}
}

func TestBoltSweeperRunsInBackground(t *testing.T) {
	tbl := openBolt(t, store.WithSweepInterval(10*time.Millisecond))
	live := putExpiring(t, tbl, 300)
	// Waits for the sweeper, however slow the machine; does not time it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		raw, err := store.RawBoltKeys(tbl)
		if err != nil {
			t.Fatal(err)
		}
		if raw == live {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background sweeper left %d raw keys, want %d", raw, live)
		}
	}
}

func TestBoltCloseIsIdempotent(t *testing.T) {
	tbl, err := store.OpenBolt(filepath.Join(t.TempDir(), "c.db"), "items")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tbl.Get(t.Context(), store.Key{PK: "p", SK: "s"}); err == nil {
		t.Fatal("Get after Close: no error")
	}
}

func TestBoltOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := store.OpenBolt(filepath.Join(dir, "missing", "x.db"), "items"); err == nil {
		t.Error("open in a missing directory: no error")
	}
	if _, err := store.OpenBolt(filepath.Join(dir, "x.db"), ""); err == nil {
		t.Error("open without a table name: no error")
	}
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a bolt file", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(garbage, "items"); err == nil {
		t.Error("open of a file that is not bbolt: no error")
	}
}

func BenchmarkBoltGet(b *testing.B) {
	tbl := openBolt(b)
	ctx := b.Context()
	const n = 10000
	var wg sync.WaitGroup
	for w := range 32 { // concurrent, so the setup shares fsyncs
		wg.Go(func() {
			for i := w; i < n; i += 32 {
				k := store.Key{PK: "tenant#t1", SK: fmt.Sprintf("agent#%06d", i)}
				if _, err := tbl.Put(ctx, store.Item{Key: k, Data: make([]byte, 300)}, store.IfAbsent()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := store.Key{PK: "tenant#t1", SK: fmt.Sprintf("agent#%06d", next.Add(1)%n)}
			if _, err := tbl.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBoltPut measures durable writes: serial (one fsync per write) and
// concurrent (writes sharing a batch and its fsync).
func BenchmarkBoltPut(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			tbl := openBolt(b)
			ctx := b.Context()
			data := make([]byte, 300)
			var next atomic.Int64
			put := func() {
				k := store.Key{PK: "tenant#t1", SK: fmt.Sprintf("agent#%09d", next.Add(1))}
				if _, err := tbl.Put(ctx, store.Item{Key: k, Data: data}, store.IfAbsent()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			if mode == "serial" {
				for b.Loop() {
					put()
				}
				return
			}
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					put()
				}
			})
		})
	}
}
