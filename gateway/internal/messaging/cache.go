package messaging

import (
	"sync"
	"time"
)

// chanKey names one channel of one tenant.
type chanKey struct {
	tenant, channel string
}

// factsEntry is what the cache knows about a channel: its facts, or that it does not
// exist (found false), until exp.
type factsEntry struct {
	info  ChannelInfo
	found bool
	exp   time.Time
}

type roleEntry struct {
	role string
	exp  time.Time
}

// chanEntry groups a channel's facts with the roles of agents in it, so that forgetting a
// channel (an event) is one map delete, whatever the number of agents cached for it.
type chanEntry struct {
	facts    factsEntry // zero exp: facts not cached
	roles    map[string]roleEntry
	hasFacts bool
}

// channelCache is a bounded map of channels, each with its cached facts and agent roles.
// Reads take a read lock and a map lookup. When the map is full, expired channels are
// swept and, if it is still full, an arbitrary tenth is dropped (a miss costs a lookup).
type channelCache struct {
	max   int
	mu    sync.RWMutex
	items map[chanKey]*chanEntry
	now   func() time.Time
}

func newChannelCache(max int, now func() time.Time) *channelCache {
	return &channelCache{max: max, items: make(map[chanKey]*chanEntry), now: now}
}

// facts returns the cached facts of k (found may be false: a cached "no such channel").
func (c *channelCache) facts(k chanKey) (factsEntry, bool) {
	now := c.now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.items[k]
	if !ok || !e.hasFacts || !now.Before(e.facts.exp) {
		return factsEntry{}, false
	}
	return e.facts, true
}

// role returns the cached facts of k and the cached role of agent in it; ok only when
// both are cached (or the channel is cached as absent, where the role does not matter).
func (c *channelCache) role(k chanKey, agent string) (factsEntry, string, bool) {
	now := c.now()
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.items[k]
	if !ok || !e.hasFacts || !now.Before(e.facts.exp) {
		return factsEntry{}, "", false
	}
	if !e.facts.found {
		return e.facts, "", true
	}
	r, ok := e.roles[agent]
	if !ok || !now.Before(r.exp) {
		return factsEntry{}, "", false
	}
	return e.facts, r.role, true
}

// entry returns k's entry for writing, creating it (mu held).
func (c *channelCache) entry(k chanKey) *chanEntry {
	e, ok := c.items[k]
	if !ok {
		if len(c.items) >= c.max {
			c.makeRoom()
		}
		e = &chanEntry{}
		c.items[k] = e
	}
	return e
}

// setFacts caches a channel's facts (or its absence) for ttl. A channel that changed
// from found to absent (or back) loses its cached roles.
func (c *channelCache) setFacts(k chanKey, info ChannelInfo, found bool, ttl time.Duration) {
	exp := c.now().Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(k)
	if !found {
		e.roles = nil
	}
	e.facts, e.hasFacts = factsEntry{info: info, found: found, exp: exp}, true
}

// setRole caches agent's role in k for ttl.
func (c *channelCache) setRole(k chanKey, agent, role string, ttl time.Duration) {
	exp := c.now().Add(ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(k)
	if e.roles == nil {
		e.roles = make(map[string]roleEntry, 1)
	}
	e.roles[agent] = roleEntry{role: role, exp: exp}
}

// forget drops everything cached about k.
func (c *channelCache) forget(k chanKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, k)
}

// forgetRole drops agent's cached role in k.
func (c *channelCache) forgetRole(k chanKey, agent string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		delete(e.roles, agent)
	}
}

// makeRoom runs with mu held.
func (c *channelCache) makeRoom() {
	now := c.now()
	for k, e := range c.items {
		if !e.hasFacts || !now.Before(e.facts.exp) {
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

func (c *channelCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.items)
}
