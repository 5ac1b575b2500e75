package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Page sizes of lists.
const (
	DefaultListLimit = 50
	MaxListLimit     = 100
	// peekSize is how many entries a look past a full page reads at a time, to learn
	// whether another matching agent follows (no cursor is returned otherwise).
	peekSize = 8
	// maxChunk bounds one read of index entries (the store's BatchGet takes 100 keys).
	maxChunk = 100
	// overread is how many entries per missing agent a list with a filter beyond its
	// index reads at once, so that a page needs few round trips.
	overread = 3
)

// ListQuery selects a page of the tenant's agents; filters match exactly and combine
// with AND.
type ListQuery struct {
	Status     string
	Type       string
	Capability string
	Limit      int
	Cursor     string
}

// filtered reports whether any filter is set.
func (q ListQuery) filtered() bool { return q.Status != "" || q.Type != "" || q.Capability != "" }

// index picks the one index a filtered list reads: the most selective kind first
// (capability, then type, then status); the other filters are checked on the agents.
func (q ListQuery) index() Index {
	switch {
	case q.Capability != "":
		return Index{Kind: ByCapability, Value: q.Capability}
	case q.Type != "":
		return Index{Kind: ByType, Value: q.Type}
	default:
		return Index{Kind: ByStatus, Value: q.Status}
	}
}

// secondary reports whether a filter beyond the index's is set: then entries of the
// index may be live agents that do not match, not only stale ones.
func (q ListQuery) secondary() bool {
	n := 0
	for _, f := range []string{q.Status, q.Type, q.Capability} {
		if f != "" {
			n++
		}
	}
	return n > 1
}

// matches reports whether a stored agent is live and passes every filter. Index entries
// whose agent is gone or has changed (stale) fail here.
func (q ListQuery) matches(st Stored) (bool, error) {
	if st.Deleting {
		return false, nil
	}
	if !q.filtered() {
		return true, nil
	}
	var v filterView
	if err := json.Unmarshal(st.JSON, &v); err != nil {
		return false, fmt.Errorf("decoding agent %s: %w", st.ID, err)
	}
	if q.Status != "" && v.Status != q.Status || q.Type != "" && v.Type != q.Type {
		return false, nil
	}
	if q.Capability != "" && !slices.ContainsFunc(v.Capabilities, func(c capabilityName) bool { return c.Name == q.Capability }) {
		return false, nil
	}
	return true, nil
}

// List returns a page of the tenant's agents in id order, as stored JSON, and the
// cursor of the next page ("" on the last).
//
// The cost is O(page) whatever the tenant's size: an unfiltered list reads the agent
// items, a filtered one reads one index and the agents of the entries read. Entries
// that turn out stale (or agents being deleted) are skipped and reading goes on until
// the page is full, and a cursor is returned only when another matching agent follows,
// so a page is never empty while a cursor is set.
func (s *Service) List(ctx context.Context, actor Actor, q ListQuery) ([]json.RawMessage, string, error) {
	if err := actor.may(accessRead, ""); err != nil {
		return nil, "", err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return nil, "", err
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultListLimit
	case limit > MaxListLimit:
		limit = MaxListLimit
	}
	r := s.reader(tenantID, q)
	out, cursor, err := s.page(ctx, r, limit, q.Cursor, !q.secondary())
	if errors.Is(err, errIndexMoved) {
		// The index changed between two reads of this page: read it again the slow,
		// exact way, which needs no second look.
		out, cursor, err = s.page(ctx, r, limit, q.Cursor, true)
	}
	return out, cursor, err
}

// errIndexMoved: the entries before a page's end changed while the page was read.
var errIndexMoved = errors.New("agent: index changed while reading a page")

// page fills one page from r starting after start. In exact mode every read asks for
// exactly the agents still missing, so the store's cursor lands right after the last
// entry the page consumed. Otherwise (filters beyond the index: many entries may not
// match) it reads several entries per missing agent; when a read yields more matches
// than the page takes, the cursor after the page's last agent comes from reading the
// entries up to it once more.
func (s *Service) page(ctx context.Context, r reader, limit int, start string, exact bool) ([]json.RawMessage, string, error) {
	out := make([]json.RawMessage, 0, limit)
	cursor := start
	for {
		missing := limit - len(out)
		n := missing
		if !exact {
			n = min(maxChunk, overread*missing)
		}
		c, err := r.read(ctx, n, cursor)
		if err != nil {
			return nil, "", err
		}
		if len(c.matches) > missing {
			// The page ends inside this chunk, and another match follows it.
			last := c.matches[missing-1].pos
			for _, m := range c.matches[:missing] {
				out = append(out, m.json)
			}
			id, after, err := r.position(ctx, last+1, cursor)
			if err != nil {
				return nil, "", err
			}
			if id != c.entries[last] || after == "" {
				return nil, "", errIndexMoved
			}
			return out, after, nil
		}
		for _, m := range c.matches {
			out = append(out, m.json)
		}
		cursor = c.next
		if cursor == "" {
			return out, "", nil
		}
		if len(out) == limit {
			break
		}
	}
	// Look past the full page for one more match.
	for peek := cursor; peek != ""; {
		c, err := r.read(ctx, peekSize, peek)
		if err != nil {
			return nil, "", err
		}
		if len(c.matches) > 0 {
			return out, cursor, nil
		}
		peek = c.next
	}
	return out, "", nil
}

// chunk is one read of entries (agent items or index entries) in id order.
type chunk struct {
	entries []string // the agent ids of the entries read
	matches []match  // the entries whose agent matches, in order
	next    string   // the cursor after the last entry read
}

type match struct {
	pos  int // index in entries
	json json.RawMessage
}

// reader reads a list's entries.
type reader struct {
	// read reads up to n entries after cursor.
	read func(ctx context.Context, n int, cursor string) (chunk, error)
	// position reads n entries after cursor again and returns the id of the last one
	// and the cursor after it.
	position func(ctx context.Context, n int, cursor string) (string, string, error)
}

func (s *Service) reader(tenantID string, q ListQuery) reader {
	if !q.filtered() {
		return reader{read: func(ctx context.Context, n int, cursor string) (chunk, error) {
			items, next, err := s.repo.ListStored(ctx, tenantID, n, cursor)
			if err != nil {
				return chunk{}, err
			}
			c := chunk{entries: make([]string, len(items)), next: next}
			for i, st := range items {
				c.entries[i] = st.ID
				if !st.Deleting {
					c.matches = append(c.matches, match{pos: i, json: st.JSON})
				}
			}
			return c, nil
		}, position: func(ctx context.Context, n int, cursor string) (string, string, error) {
			items, next, err := s.repo.ListStored(ctx, tenantID, n, cursor)
			if err != nil || len(items) == 0 {
				return "", "", err
			}
			return items[len(items)-1].ID, next, nil
		}}
	}
	idx := q.index()
	return reader{read: func(ctx context.Context, n int, cursor string) (chunk, error) {
		ids, next, err := s.repo.ListIndex(ctx, tenantID, idx, n, cursor)
		if err != nil || len(ids) == 0 {
			return chunk{next: next}, err
		}
		agents, err := s.repo.GetManyStored(ctx, tenantID, ids)
		if err != nil {
			return chunk{}, err
		}
		c := chunk{entries: ids, next: next}
		for i, id := range ids {
			st, ok := agents[id]
			if !ok {
				continue // the agent is gone: a dangling entry
			}
			ok, err := q.matches(st)
			if err != nil {
				return chunk{}, err
			}
			if ok {
				c.matches = append(c.matches, match{pos: i, json: st.JSON})
			}
		}
		return c, nil
	}, position: func(ctx context.Context, n int, cursor string) (string, string, error) {
		ids, next, err := s.repo.ListIndex(ctx, tenantID, idx, n, cursor)
		if err != nil || len(ids) == 0 {
			return "", "", err
		}
		return ids[len(ids)-1], next, nil
	}}
}
