package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrInUse: the embedded store's file is held by another process (or another Open in
// this one). The embedded store serves one process per file.
var ErrInUse = errors.New("store: embedded store file is already in use")

type boltConfig struct {
	sweepEvery time.Duration
	batchDelay time.Duration
	lockWait   time.Duration
}

// BoltOption tunes OpenBolt.
type BoltOption func(*boltConfig)

// WithSweepInterval sets how often expired items are deleted from the file (default
// one minute; 0 turns the sweeper off). Reads never see expired items whatever the
// interval.
func WithSweepInterval(d time.Duration) BoltOption {
	return func(c *boltConfig) { c.sweepEvery = d }
}

// WithBatchDelay sets how long a write waits for concurrent writes to share its
// transaction and fsync (bbolt's MaxBatchDelay; default 1 ms). On a 2-core machine
// 0.5–2 ms gave the best put throughput from 2 to 64 concurrent writers; bbolt's own
// 10 ms default cost 2–4× in both throughput and latency.
func WithBatchDelay(d time.Duration) BoltOption {
	return func(c *boltConfig) { c.batchDelay = d }
}

// boltTable keeps one table as one bucket of a bbolt file. Keys are
// uvarint(len(pk)) | pk | sk, so the items of a partition are contiguous and in SK byte
// order, and no partition key can be mistaken for a prefix of another. Values are
// format(1) | version(8) | count(8) | expiry ms(8) | data.
type boltTable struct {
	db     *bolt.DB
	bucket []byte

	stop      chan struct{}
	swept     sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// OpenBolt opens (creating if needed) the bbolt file at path and the bucket table in
// it, and starts the sweeper of expired items. A file already open elsewhere fails
// within about a second with ErrInUse rather than waiting.
func OpenBolt(path, table string, opts ...BoltOption) (Table, error) {
	cfg := boltConfig{sweepEvery: time.Minute, batchDelay: time.Millisecond, lockWait: time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if table == "" {
		return nil, errors.New("store: empty table name")
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: cfg.lockWait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is already in use by another process (only one process may open an embedded store; run more replicas on DynamoDB)", ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.MaxBatchDelay = cfg.batchDelay
	t := &boltTable{db: db, bucket: []byte(table), stop: make(chan struct{})}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(t.bucket)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: create bucket %q in %s: %w", table, path, err)
	}
	if cfg.sweepEvery > 0 {
		t.swept.Add(1)
		go t.sweepLoop(cfg.sweepEvery)
	}
	return t, nil
}

func (t *boltTable) Backend() string { return BackendEmbedded }

func (t *boltTable) Close() error {
	t.closeOnce.Do(func() {
		close(t.stop)
		t.swept.Wait()
		t.closeErr = t.db.Close()
	})
	return t.closeErr
}

// --- encoding ---

const boltFormat = 1
const boltHeader = 1 + 8 + 8 + 8

func boltPartition(pk string) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(pk)), uint64(len(pk)))
	return append(b, pk...)
}

// boltKey is boltPartition(k.PK) followed by k.SK, built in one allocation (every read
// makes one).
func boltKey(k Key) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(k.PK)+len(k.SK)), uint64(len(k.PK)))
	return append(append(b, k.PK...), k.SK...)
}

type boltValue struct {
	version, count, exp int64
	data                []byte
}

func (v boltValue) encode() []byte {
	b := make([]byte, boltHeader, boltHeader+len(v.data))
	b[0] = boltFormat
	binary.BigEndian.PutUint64(b[1:], uint64(v.version))
	binary.BigEndian.PutUint64(b[9:], uint64(v.count))
	binary.BigEndian.PutUint64(b[17:], uint64(v.exp))
	return append(b, v.data...)
}

// decodeBoltValue copies what it keeps: bbolt's bytes are valid only inside the
// transaction.
func decodeBoltValue(b []byte) (boltValue, error) {
	if len(b) < boltHeader || b[0] != boltFormat {
		return boltValue{}, errors.New("store: corrupt item in embedded store")
	}
	v := boltValue{
		version: int64(binary.BigEndian.Uint64(b[1:])),
		count:   int64(binary.BigEndian.Uint64(b[9:])),
		exp:     int64(binary.BigEndian.Uint64(b[17:])),
	}
	if len(b) > boltHeader {
		v.data = bytes.Clone(b[boltHeader:])
	}
	return v, nil
}

// boltExp reads only the expiry of an encoded value.
func boltExp(b []byte) (int64, bool) {
	if len(b) < boltHeader || b[0] != boltFormat {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[17:])), true
}

func (v boltValue) item(k Key) Item {
	return Item{Key: k, Data: v.data, Version: v.version, Count: v.count, ExpiresAt: expTime(v.exp)}
}

// live returns the live value under key in b, if any.
func boltLive(b *bolt.Bucket, key []byte, nowMs int64) (boltValue, bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return boltValue{}, false, nil
	}
	v, err := decodeBoltValue(raw)
	if err != nil || expired(v.exp, nowMs) {
		return boltValue{}, false, err
	}
	return v, true, nil
}

// condHolds tells whether cond holds for the live value (found says whether there is one).
func condHolds(cond Cond, v boltValue, found bool) bool {
	if cond.IsAbsent() {
		return !found
	}
	if want, ok := cond.Version(); ok {
		return found && v.version == want
	}
	return found
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// --- reads ---

func (t *boltTable) Get(ctx context.Context, key Key) (Item, error) {
	if err := checkKey(key); err != nil {
		return Item{}, err
	}
	if err := ctxErr(ctx); err != nil {
		return Item{}, err
	}
	var (
		v     boltValue
		found bool
	)
	err := t.db.View(func(tx *bolt.Tx) (err error) {
		v, found, err = boltLive(tx.Bucket(t.bucket), boltKey(key), nowMillis())
		return err
	})
	if err != nil {
		return Item{}, err
	}
	if !found {
		return Item{}, ErrNotFound
	}
	return v.item(key), nil
}

func (t *boltTable) BatchGet(ctx context.Context, keys []Key) ([]Item, error) {
	if err := checkBatchGet(keys); err != nil {
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	out := make([]Item, 0, len(keys))
	err := t.db.View(func(tx *bolt.Tx) error {
		b, now := tx.Bucket(t.bucket), nowMillis()
		for _, k := range keys {
			v, found, err := boltLive(b, boltKey(k), now)
			if err != nil {
				return err
			}
			if found {
				out = append(out, v.item(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *boltTable) Query(ctx context.Context, pk string, opts QueryOptions) (Page, error) {
	q, err := newQuery(pk, opts)
	if err != nil {
		return Page{}, err
	}
	if err := ctxErr(ctx); err != nil {
		return Page{}, err
	}
	var page Page
	err = t.db.View(func(tx *bolt.Tx) (err error) {
		page, err = readPage(q, nowMillis(), t.scan(ctx, tx.Bucket(t.bucket), q))
		return err
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

// scan yields the items of q's partition and prefix after q's cursor, in q's order.
func (t *boltTable) scan(ctx context.Context, b *bolt.Bucket, q query) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		part := boltPartition(q.pk)
		prefix := append(bytes.Clone(part), q.prefix...)
		c := b.Cursor()
		var k, raw []byte
		switch {
		case !q.reverse && q.hasAfter:
			after := append(bytes.Clone(part), q.after...)
			k, raw = c.Seek(after)
			if bytes.Equal(k, after) {
				k, raw = c.Next()
			}
		case !q.reverse:
			k, raw = c.Seek(prefix)
		default:
			// Start at the last key below the upper bound: the cursor's key, or the
			// first key past every key with the prefix.
			var bound []byte
			if q.hasAfter {
				bound = append(bytes.Clone(part), q.after...)
			} else {
				bound = prefixEnd(prefix)
			}
			if bound == nil {
				k, raw = c.Last()
			} else if k, _ = c.Seek(bound); k == nil {
				k, raw = c.Last()
			} else {
				k, raw = c.Prev()
			}
		}
		for n := 0; k != nil && bytes.HasPrefix(k, prefix); n++ {
			if n%256 == 255 {
				if err := ctxErr(ctx); err != nil {
					yield(Item{}, err)
					return
				}
			}
			v, err := decodeBoltValue(raw)
			if err != nil {
				yield(Item{}, err)
				return
			}
			if !yield(v.item(Key{PK: q.pk, SK: string(k[len(part):])}), nil) {
				return
			}
			if q.reverse {
				k, raw = c.Prev()
			} else {
				k, raw = c.Next()
			}
		}
	}
}

// prefixEnd returns the smallest key greater than every key starting with p, or nil
// when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// --- writes ---

// write runs fn in a bbolt batch. bbolt may run fn more than once (it re-runs a batch
// when one of its functions fails), so fn must set its results from scratch on every
// run; a failed condition is a result, not a transaction error, so it does not make
// the rest of the batch roll back and re-run.
func (t *boltTable) write(ctx context.Context, fn func(b *bolt.Bucket, nowMs int64) error) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	return t.db.Batch(func(tx *bolt.Tx) error {
		return fn(tx.Bucket(t.bucket), nowMillis())
	})
}

func (t *boltTable) Put(ctx context.Context, item Item, cond Cond) (int64, error) {
	if err := checkPut(item, cond); err != nil {
		return 0, err
	}
	key := boltKey(item.Key)
	var (
		version int64
		result  error
	)
	err := t.write(ctx, func(b *bolt.Bucket, now int64) error {
		version, result = 0, nil
		if result = ctxErr(ctx); result != nil {
			return nil
		}
		cur, found, err := boltLive(b, key, now)
		if err != nil {
			return err
		}
		if !condHolds(cond, cur, found) {
			result = ErrConditionFailed
			return nil
		}
		next := boltValue{version: 1, data: item.Data, exp: expMillis(item.ExpiresAt)}
		if found {
			next.version, next.count = cur.version+1, cur.count
		}
		version = next.version
		return b.Put(key, next.encode())
	})
	if err != nil {
		return 0, fmt.Errorf("store: put: %w", err)
	}
	return version, result
}

func (t *boltTable) Delete(ctx context.Context, key Key, cond Cond) error {
	if err := checkDelete(key, cond); err != nil {
		return err
	}
	k := boltKey(key)
	var result error
	err := t.write(ctx, func(b *bolt.Bucket, now int64) error {
		result = nil
		if result = ctxErr(ctx); result != nil {
			return nil
		}
		cur, found, err := boltLive(b, k, now)
		if err != nil {
			return err
		}
		if !condHolds(cond, cur, found) {
			result = ErrConditionFailed
			return nil
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("store: delete: %w", err)
	}
	return result
}

func (t *boltTable) Add(ctx context.Context, key Key, delta int64, opts AddOptions) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	lo, hi, _, _, ok := addRange(delta, opts)
	if !ok {
		return 0, ErrConditionFailed
	}
	k := boltKey(key)
	var (
		count  int64
		result error
	)
	err := t.write(ctx, func(b *bolt.Bucket, now int64) error {
		count, result = 0, nil
		if result = ctxErr(ctx); result != nil {
			return nil
		}
		cur, found, err := boltLive(b, k, now)
		if err != nil {
			return err
		}
		if !found {
			// Absent or expired: a new item that starts from 0.
			cur = boltValue{version: 1, exp: expMillis(opts.ExpiresAt)}
		}
		if cur.count < lo || cur.count > hi {
			result = ErrConditionFailed
			return nil
		}
		cur.count += delta
		count = cur.count
		return b.Put(k, cur.encode())
	})
	if err != nil {
		return 0, fmt.Errorf("store: add: %w", err)
	}
	return count, result
}

// --- sweeper ---

func (t *boltTable) sweepLoop(every time.Duration) {
	defer t.swept.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			// A failed sweep is retried at the next tick; reads never depend on it.
			_, _ = t.sweep()
		}
	}
}

// sweepChunk bounds how many keys one sweep transaction reads or deletes, so a large
// table never holds one long read transaction (which would keep bbolt from reusing
// pages) or one huge write.
const sweepChunk = 1000

// sweep deletes the expired items and returns how many it deleted.
func (t *boltTable) sweep() (int, error) {
	deleted := 0
	var from []byte
	for {
		select {
		case <-t.stop:
			return deleted, nil
		default:
		}
		var (
			victims [][]byte
			next    []byte
		)
		now := nowMillis()
		err := t.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(t.bucket).Cursor()
			k, raw := c.First()
			if from != nil {
				k, raw = c.Seek(from)
			}
			for n := 0; k != nil; n++ {
				if n == sweepChunk {
					next = bytes.Clone(k)
					return nil
				}
				if exp, ok := boltExp(raw); ok && expired(exp, now) {
					victims = append(victims, bytes.Clone(k))
				}
				k, raw = c.Next()
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
		if len(victims) > 0 {
			n := 0
			err = t.db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(t.bucket)
				n = 0
				// Re-check: an item may have been re-created since the read.
				for _, k := range victims {
					if _, found, err := boltLive(b, k, now); err == nil && !found && b.Get(k) != nil {
						if err := b.Delete(k); err != nil {
							return err
						}
						n++
					}
				}
				return nil
			})
			if err != nil {
				return deleted, err
			}
			deleted += n
		}
		if next == nil {
			return deleted, nil
		}
		from = next
	}
}
