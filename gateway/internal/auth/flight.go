package auth

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// coalescer runs each upstream lookup once for every concurrent caller asking the same
// question, and keeps an answer out of the cache when a forget overlapped its lookup.
type coalescer struct {
	timeout time.Duration
	flights singleflight.Group
	// gen changes on every forget; a lookup that overlapped one is not cached, so an
	// answer computed before a change never outlives the event announcing it.
	gen atomic.Uint64
	// mu makes "check gen, then store" atomic with respect to forget.
	mu sync.RWMutex
	// wait is what a caller gets when its own context ends while it waits.
	wait func() error
}

// generation is the value to hand to shared and cacheIfCurrent for one lookup.
func (c *coalescer) generation() uint64 { return c.gen.Load() }

// shared runs lookup once per (key, generation): a caller arriving after a forget starts
// a fresh lookup. The lookup runs on its own deadline, not the first caller's; each caller
// still stops waiting when its own context ends.
func (c *coalescer) shared(ctx context.Context, key string, gen uint64, lookup func(context.Context) (any, error)) (any, error) {
	ch := c.flights.DoChan(key+"\x00"+strconv.FormatUint(gen, 10), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		return lookup(lctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, c.wait()
	}
}

// cacheIfCurrent stores an answer only if no forget happened since its lookup began.
func (c *coalescer) cacheIfCurrent(gen uint64, store func()) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.gen.Load() == gen {
		store()
	}
}

// forget runs drop (which removes cached answers) as one step with moving to a new
// generation, so no lookup that began earlier can store after it.
func (c *coalescer) forget(drop func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen.Add(1)
	drop()
}
