package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"
	"unicode/utf8"
)

// The logic both adapters share: key checks, expiry, cursors, page assembly and the
// bounds of Add. Each adapter only knows how to read its backend in SK order.

// Limits both adapters enforce, so that what works on the embedded store also works on
// DynamoDB (its key and item size limits).
const (
	maxPKBytes   = 2048
	maxSKBytes   = 1024
	maxDataBytes = 390 * 1024 // an item is at most 400 KB including its keys and numbers
	maxBatchGet  = 100

	defaultLimit = 100
	maxLimit     = 1000
)

var errNoCondition = errors.New("store: a write needs a condition (IfAbsent, IfExists or IfVersion)")

func checkKey(k Key) error {
	switch {
	case k.PK == "":
		return errors.New("store: empty partition key")
	case k.SK == "":
		return errors.New("store: empty sort key")
	case len(k.PK) > maxPKBytes:
		return fmt.Errorf("store: partition key is %d bytes, more than %d", len(k.PK), maxPKBytes)
	case len(k.SK) > maxSKBytes:
		return fmt.Errorf("store: sort key is %d bytes, more than %d", len(k.SK), maxSKBytes)
	case !utf8.ValidString(k.PK) || !utf8.ValidString(k.SK):
		return errors.New("store: key is not valid UTF-8")
	}
	return nil
}

func checkPut(item Item, cond Cond) error {
	if err := checkKey(item.Key); err != nil {
		return err
	}
	if len(item.Data) > maxDataBytes {
		return fmt.Errorf("store: item data is %d bytes, more than %d", len(item.Data), maxDataBytes)
	}
	if cond.kind == 0 {
		return errNoCondition
	}
	return nil
}

func checkDelete(key Key, cond Cond) error {
	if err := checkKey(key); err != nil {
		return err
	}
	switch {
	case cond.kind == 0:
		return errNoCondition
	case cond.IsAbsent():
		return errors.New("store: Delete does not take IfAbsent")
	}
	return nil
}

func checkBatchGet(keys []Key) error {
	if len(keys) > maxBatchGet {
		return fmt.Errorf("store: BatchGet of %d keys, more than %d", len(keys), maxBatchGet)
	}
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return err
		}
	}
	return nil
}

// nowMillis is the clock of expiry: items carry their expiry in milliseconds.
func nowMillis() int64 { return time.Now().UnixMilli() }

// expMillis turns an expiry into milliseconds, 0 meaning none.
func expMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	ms := t.UnixMilli()
	if ms <= 0 {
		// Before 1970: already expired; keep it distinguishable from "no expiry".
		return 1
	}
	return ms
}

// expTime is the inverse of expMillis.
func expTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// expired reports whether an item whose expiry is expMs is invisible at nowMs.
func expired(expMs, nowMs int64) bool { return expMs != 0 && expMs <= nowMs }

// query is a validated QueryOptions for one partition.
type query struct {
	pk      string
	prefix  string
	limit   int
	reverse bool
	// after is the SK the page starts after ("" for the first page).
	after    string
	hasAfter bool
}

func newQuery(pk string, o QueryOptions) (query, error) {
	if pk == "" {
		return query{}, errors.New("store: empty partition key")
	}
	if len(pk) > maxPKBytes || len(o.Prefix) > maxSKBytes {
		return query{}, errors.New("store: partition key or prefix too long")
	}
	if !utf8.ValidString(pk) || !utf8.ValidString(o.Prefix) {
		return query{}, errors.New("store: partition key or prefix is not valid UTF-8")
	}
	q := query{pk: pk, prefix: o.Prefix, limit: o.Limit, reverse: o.Reverse}
	switch {
	case q.limit <= 0:
		q.limit = defaultLimit
	case q.limit > maxLimit:
		q.limit = maxLimit
	}
	if o.Cursor != "" {
		sk, err := q.decodeCursor(o.Cursor)
		if err != nil {
			return query{}, err
		}
		q.after, q.hasAfter = sk, true
	}
	return q, nil
}

// A cursor is base64url(version | last SK | check), where check is the first bytes of
// a SHA-256 over the query it belongs to (partition, prefix, direction) and the SK. The
// check is not a secret: it makes a tampered or misplaced cursor fail loudly as
// ErrInvalidCursor instead of silently starting somewhere else.
const (
	cursorVersion  = 1
	cursorCheckLen = 8
)

// cursorEncoding is strict, so that changing the unused bits of the last character
// does not decode to the same cursor.
func cursorEncoding() *base64.Encoding { return base64.RawURLEncoding.Strict() }

func (q query) cursorCheck(sk string) []byte {
	h := sha256.New()
	dir := byte('f')
	if q.reverse {
		dir = 'r'
	}
	// Lengths first, so that no two (pk, prefix, sk) tuples hash the same bytes.
	fmt.Fprintf(h, "%d:%d:%d:%c:", len(q.pk), len(q.prefix), len(sk), dir)
	h.Write([]byte(q.pk))
	h.Write([]byte(q.prefix))
	h.Write([]byte(sk))
	return h.Sum(nil)[:cursorCheckLen]
}

func (q query) encodeCursor(sk string) string {
	b := make([]byte, 0, 1+len(sk)+cursorCheckLen)
	b = append(b, cursorVersion)
	b = append(b, sk...)
	b = append(b, q.cursorCheck(sk)...)
	return cursorEncoding().EncodeToString(b)
}

func (q query) decodeCursor(c string) (string, error) {
	b, err := cursorEncoding().DecodeString(c)
	if err != nil || len(b) < 1+1+cursorCheckLen || b[0] != cursorVersion {
		return "", ErrInvalidCursor
	}
	sk := string(b[1 : len(b)-cursorCheckLen])
	check := b[len(b)-cursorCheckLen:]
	if !bytes.Equal(check, q.cursorCheck(sk)) || len(sk) < len(q.prefix) || sk[:len(q.prefix)] != q.prefix {
		return "", ErrInvalidCursor
	}
	return sk, nil
}

// readPage assembles one page from items, which an adapter yields in query order
// starting after the cursor (expired ones included or not). It reads one live item
// past the page so that a cursor is returned only when more live items exist, and
// skips expired items, so a page is never empty while a cursor is set. Stopping the
// range stops the adapter's read.
func readPage(q query, nowMs int64, items iter.Seq2[Item, error]) (Page, error) {
	var out []Item
	for it, err := range items {
		if err != nil {
			return Page{}, err
		}
		if expired(expMillis(it.ExpiresAt), nowMs) {
			continue
		}
		if len(out) == q.limit {
			return Page{Items: out, Cursor: q.encodeCursor(out[len(out)-1].SK)}, nil
		}
		out = append(out, it)
	}
	return Page{Items: out}, nil
}

// addRange returns the range [lo, hi] the current count must be in for count+delta to
// stay within opts' bounds and within int64; ok is false when no count can be.
// bounded reports whether each side constrains anything, so DynamoDB can leave it out.
func addRange(delta int64, opts AddOptions) (lo, hi int64, loBounded, hiBounded, ok bool) {
	minV, maxV := int64(math.MinInt64), int64(math.MaxInt64)
	if opts.Min != nil {
		minV = *opts.Min
	}
	if opts.Max != nil {
		maxV = *opts.Max
	}
	if minV > maxV {
		return 0, 0, false, false, false
	}
	// count >= minV - delta
	switch {
	case delta > 0 && minV < math.MinInt64+delta: // minV-delta is below every int64
		lo = math.MinInt64
	case delta < 0 && minV > math.MaxInt64+delta: // minV-delta is above every int64
		return 0, 0, false, false, false
	default:
		lo = minV - delta
	}
	// count <= maxV - delta
	switch {
	case delta > 0 && maxV < math.MinInt64+delta:
		return 0, 0, false, false, false
	case delta < 0 && maxV > math.MaxInt64+delta:
		hi = math.MaxInt64
	default:
		hi = maxV - delta
	}
	return lo, hi, lo != math.MinInt64, hi != math.MaxInt64, lo <= hi
}
