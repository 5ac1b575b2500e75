// Package store is the table abstraction every service keeps its data in: items under a
// partition key (PK) and a sort key (SK), each write carrying a condition, queries by
// partition and SK prefix with opaque cursors, atomic counters and expiry.
//
// Two adapters implement Table: an embedded file store (bbolt, one file per service, the
// default for local runs) and DynamoDB (production; dynalite in tests). Both pass the one
// conformance suite in storetest. There are no transactions: multi-item invariants are
// built from single-item conditional writes (see ARCHITECTURE.md).
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every adapter returns, so callers classify with errors.Is.
var (
	// ErrNotFound: no live item under the key (expired items count as absent).
	ErrNotFound = errors.New("store: not found")
	// ErrConditionFailed: the write's condition did not hold; nothing was written. After
	// it, re-read: the adapter does not return the current image.
	ErrConditionFailed = errors.New("store: condition failed")
	// ErrUnavailable: the backend is throttling or unreachable; the caller may retry.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInvalidCursor: a cursor that this table did not produce for this query.
	ErrInvalidCursor = errors.New("store: invalid cursor")
)

// Key addresses one item.
type Key struct {
	PK string
	SK string
}

// Item is one stored item. Data is opaque to the store (services keep JSON there).
type Item struct {
	Key
	Data []byte
	// Version is managed by the store: 1 after the create, +1 on every Put. Add does not
	// change it.
	Version int64
	// Count is the item's atomic counter, changed only by Add (0 on a new item).
	Count int64
	// ExpiresAt, when not zero, makes the item invisible from that instant on (millisecond
	// precision): reads skip it and IfAbsent treats it as absent. Expired items are
	// removed in the background (bbolt sweeper, DynamoDB TTL on the "ttl" attribute).
	ExpiresAt time.Time
}

// Cond is the condition of a write.
type Cond struct {
	kind    condKind
	version int64
}

type condKind int

const (
	condAbsent condKind = iota + 1
	condExists
	condVersion
)

// IfAbsent holds when no live item has the key (create).
func IfAbsent() Cond { return Cond{kind: condAbsent} }

// IfExists holds when a live item has the key (update or delete whatever its version).
func IfExists() Cond { return Cond{kind: condExists} }

// IfVersion holds when a live item has the key and exactly version v (optimistic
// concurrency: read, change, write back with the version read).
func IfVersion(v int64) Cond { return Cond{kind: condVersion, version: v} }

// IsAbsent, IsExists and Version let adapters read a condition.
func (c Cond) IsAbsent() bool { return c.kind == condAbsent }
func (c Cond) IsExists() bool { return c.kind == condExists }

// Version returns the expected version and whether c is a version condition.
func (c Cond) Version() (int64, bool) { return c.version, c.kind == condVersion }

// AddOptions bound an atomic add. The add fails with ErrConditionFailed, changing
// nothing, when the new value would leave [Min, Max].
type AddOptions struct {
	Min *int64
	Max *int64
	// ExpiresAt is set when Add creates the item (or revives an expired one, which then
	// starts from 0); an existing live item keeps its expiry.
	ExpiresAt time.Time
}

// QueryOptions select part of one partition, in SK order.
type QueryOptions struct {
	// Prefix restricts the query to sort keys that start with it.
	Prefix string
	// Limit is the page size: 1–1000; 0 means 100.
	Limit int
	// Cursor continues after the previous page; "" starts at the beginning.
	Cursor string
	// Reverse walks in descending SK order.
	Reverse bool
}

// Page is one page of a query. Items is empty only when nothing is left; Cursor is ""
// on the last page and otherwise means at least one more live item existed when the
// page was read.
type Page struct {
	Items  []Item
	Cursor string
}

// Table is one service's table.
type Table interface {
	// Get returns the live item under key, or ErrNotFound.
	Get(ctx context.Context, key Key) (Item, error)
	// BatchGet returns the live items among keys (at most 100), in the order of keys,
	// skipping the missing ones.
	BatchGet(ctx context.Context, keys []Key) ([]Item, error)
	// Put writes item.Data and item.ExpiresAt under item.Key if cond holds and returns
	// the new version. item.Version and item.Count are ignored; Count is kept.
	Put(ctx context.Context, item Item, cond Cond) (int64, error)
	// Delete removes the item under key if cond holds (IfAbsent is not allowed).
	Delete(ctx context.Context, key Key, cond Cond) error
	// Add adds delta to the item's Count atomically, creating the item when absent, and
	// returns the new Count.
	Add(ctx context.Context, key Key, delta int64, opts AddOptions) (int64, error)
	// Query returns a page of live items of partition pk.
	Query(ctx context.Context, pk string, opts QueryOptions) (Page, error)
	// Close releases the table's resources.
	Close() error
}
