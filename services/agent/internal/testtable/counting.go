// Package testtable wraps the agent service's test tables (storetest.NewTable) to count
// the reads made through them and to make chosen operations fail, so tests can prove
// read budgets, error mapping and compensation.
package testtable

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Counting wraps a store.Table, counts the reads made through it, and can make chosen
// operations fail (to prove error mapping and compensation).
type Counting struct {
	store.Table
	reads     atomic.Int64 // Get, BatchGet and Query calls
	itemsRead atomic.Int64 // items those calls returned

	mu   sync.Mutex
	fail func(op string, key store.Key) error
}

// NewCounting wraps t.
func NewCounting(t store.Table) *Counting { return &Counting{Table: t} }

// Reads returns the read calls and the items read so far.
func (c *Counting) Reads() (calls, items int64) { return c.reads.Load(), c.itemsRead.Load() }

// ResetReads sets the read counts back to zero.
func (c *Counting) ResetReads() {
	c.reads.Store(0)
	c.itemsRead.Store(0)
}

// FailWith makes every operation for which fn returns an error fail with it ("get",
// "batch_get", "put", "delete", "add", "query"; key.SK is the prefix for a query);
// nil restores normal operation.
func (c *Counting) FailWith(fn func(op string, key store.Key) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = fn
}

func (c *Counting) injected(op string, key store.Key) error {
	c.mu.Lock()
	fn := c.fail
	c.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(op, key)
}

func (c *Counting) Get(ctx context.Context, key store.Key) (store.Item, error) {
	if err := c.injected("get", key); err != nil {
		return store.Item{}, err
	}
	c.reads.Add(1)
	it, err := c.Table.Get(ctx, key)
	if err == nil {
		c.itemsRead.Add(1)
	}
	return it, err
}

func (c *Counting) BatchGet(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	for _, k := range keys {
		if err := c.injected("batch_get", k); err != nil {
			return nil, err
		}
	}
	c.reads.Add(1)
	items, err := c.Table.BatchGet(ctx, keys)
	c.itemsRead.Add(int64(len(items)))
	return items, err
}

func (c *Counting) Query(ctx context.Context, pk string, opts store.QueryOptions) (store.Page, error) {
	if err := c.injected("query", store.Key{PK: pk, SK: opts.Prefix}); err != nil {
		return store.Page{}, err
	}
	c.reads.Add(1)
	p, err := c.Table.Query(ctx, pk, opts)
	c.itemsRead.Add(int64(len(p.Items)))
	return p, err
}

func (c *Counting) Put(ctx context.Context, item store.Item, cond store.Cond) (int64, error) {
	if err := c.injected("put", item.Key); err != nil {
		return 0, err
	}
	return c.Table.Put(ctx, item, cond)
}

func (c *Counting) Delete(ctx context.Context, key store.Key, cond store.Cond) error {
	if err := c.injected("delete", key); err != nil {
		return err
	}
	return c.Table.Delete(ctx, key, cond)
}

func (c *Counting) Add(ctx context.Context, key store.Key, delta int64, opts store.AddOptions) (int64, error) {
	if err := c.injected("add", key); err != nil {
		return 0, err
	}
	return c.Table.Add(ctx, key, delta, opts)
}

// Backend names the wrapped table's backend.
func (c *Counting) Backend() string { return store.Backend(c.Table) }
