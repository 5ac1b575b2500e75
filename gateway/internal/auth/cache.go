package auth

import (
	"sync"
	"time"
)

// ttlCache is a bounded map whose entries expire ttl after they were set.
//
// Why not hashicorp's expirable LRU: it starts a sweeper goroutine per cache that can
// never be stopped (one per Authenticator, ticking every ttl/100), and every Get takes an
// exclusive lock to reorder its list. On the request path a read lock and a map lookup
// are enough; expired entries are swept when the map is full, and when it is still full
// an arbitrary tenth is dropped (a cache miss only costs a lookup).
type ttlCache[K comparable, V any] struct {
	ttl   time.Duration
	max   int
	mu    sync.RWMutex
	items map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v   V
	exp time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: max, items: make(map[K]ttlEntry[V])}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.items[k]
	c.mu.RUnlock()
	if !ok || !time.Now().Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) set(k K, v V) { c.setUntil(k, v, time.Time{}) }

// setUntil stores v until the earlier of until (when not zero) and ttl from now.
func (c *ttlCache[K, V]) setUntil(k K, v V, until time.Time) {
	now := time.Now()
	exp := now.Add(c.ttl)
	if !until.IsZero() && until.Before(exp) {
		exp = until
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; !ok && len(c.items) >= c.max {
		c.makeRoom(now)
	}
	c.items[k] = ttlEntry[V]{v: v, exp: exp}
}

// makeRoom runs with mu held.
func (c *ttlCache[K, V]) makeRoom(now time.Time) {
	for k, e := range c.items {
		if !now.Before(e.exp) {
			delete(c.items, k)
		}
	}
	drop := len(c.items) - c.max + 1
	if drop <= 0 {
		return
	}
	drop = max(drop, c.max/10)
	for k := range c.items {
		if drop == 0 {
			break
		}
		delete(c.items, k)
		drop--
	}
}

// removeIf deletes every entry for which match is true.
func (c *ttlCache[K, V]) removeIf(match func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if match(k, e.v) {
			delete(c.items, k)
		}
	}
}

func (c *ttlCache[K, V]) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.items)
}

func (c *ttlCache[K, V]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}
