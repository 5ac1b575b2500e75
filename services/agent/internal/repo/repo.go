// Package repo keeps the agent service's items in its kit/store table: key builders,
// item ⇄ domain mapping and store error → domain error mapping.
//
// Every item of a tenant lives in the tenant's partition, so a list reads one partition
// and the tenant cascade deletes one partition:
//
//	T#<tenant>  A#<id>                   the agent {deleting_since?, presence?, agent: <wire JSON>}
//	T#<tenant>  S#<status>#<id>          status index (no data)
//	T#<tenant>  Y#<type>#<id>            type index
//	T#<tenant>  C#<capability hash>#<id> capability index, one per capability; the hash is
//	                                     the first 32 hex digits of SHA-256(name), since
//	                                     names are free text
//	T#<tenant>  N#TOTAL                  the agent counter (Item.Count), the max_agents limit
//	T#<tenant>  N#S#<status>             agents per status (Item.Count)
//
// Index items are written before the agent item and checked against it on read, so a
// leftover entry is harmless: lists skip entries whose agent is gone or disagrees.
package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Table is the table name of the agent service (the store adds its prefix).
const Table = store.TableAgents

const (
	tenantPrefix     = "T#"
	agentPrefix      = "A#"
	statusPrefix     = "S#"
	typePrefix       = "Y#"
	capabilityPrefix = "C#"
	totalSK          = "N#TOTAL"
	statusCountPfx   = "N#S#"

	// purgePage is how many items Purge deletes per read.
	purgePage = 100
	// upsertAttempts bounds the create-or-touch loop of an index item.
	upsertAttempts = 4
	// cleanupTimeout bounds the removal of index items after a failed commit.
	cleanupTimeout = 5 * time.Second
)

// Repo implements agent.Repository on a store.Table.
type Repo struct {
	t store.Table
}

var _ agent.Repository = (*Repo)(nil)

// New returns the repository on table t.
func New(t store.Table) *Repo { return &Repo{t: t} }

func partition(tenantID string) string { return tenantPrefix + tenantID }

// AgentKey is the key of an agent item.
func AgentKey(tenantID, id string) store.Key {
	return store.Key{PK: partition(tenantID), SK: agentPrefix + id}
}

// CapabilityHash is how a capability name appears in index keys.
func CapabilityHash(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func indexPrefix(idx agent.Index) string {
	switch idx.Kind {
	case agent.ByStatus:
		return statusPrefix + idx.Value + "#"
	case agent.ByType:
		return typePrefix + idx.Value + "#"
	case agent.ByCapability:
		return capabilityPrefix + CapabilityHash(idx.Value) + "#"
	}
	panic(fmt.Sprintf("repo: unknown index kind %d", idx.Kind)) // a programming error
}

// IndexKey is the key of one index entry (tests and operators use it to inspect or
// plant entries).
func IndexKey(tenantID string, idx agent.Index, id string) store.Key {
	return store.Key{PK: partition(tenantID), SK: indexPrefix(idx) + id}
}

// indexSKs are the sort keys of the index items a needs.
func indexSKs(a *agentv1.Agent) []string {
	sks := make([]string, 0, 2+len(a.Capabilities))
	sks = append(sks,
		indexPrefix(agent.Index{Kind: agent.ByStatus, Value: a.Status})+a.ID,
		indexPrefix(agent.Index{Kind: agent.ByType, Value: a.Type})+a.ID)
	for _, c := range a.Capabilities {
		sks = append(sks, indexPrefix(agent.Index{Kind: agent.ByCapability, Value: c.Name})+a.ID)
	}
	return sks
}

// minus returns the elements of a that are not in b.
func minus(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

// domainErr classifies a store error once; the store error stays in the chain for logs.
func domainErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", agent.ErrNotFound, err)
	case errors.Is(err, store.ErrConditionFailed):
		return fmt.Errorf("%w (%w)", agent.ErrConflict, err)
	case errors.Is(err, store.ErrInvalidCursor):
		return fmt.Errorf("%w (%w)", agent.ErrInvalidCursor, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w (%w)", agent.ErrUnavailable, err)
	}
	return err
}

// record is the stored form of an agent: the wire JSON as it is sent, so a read relays
// it, and the bookkeeping beside it. The field order is part of the format: a live
// agent's record is liveRecordPrefix + agent JSON + "}", or presenceRecordPrefix +
// presence object + `,"agent":` + agent JSON + "}" once presence wrote it, which lets the
// hot read cut the agent out without decoding anything (the presence object holds a
// status and a number, so its first "}" ends it). A deleting agent's record starts with
// deleting_since and takes the decoding path.
type record struct {
	DeletingSince *time.Time      `json:"deleting_since,omitempty"`
	Presence      *presence       `json:"presence,omitempty"`
	Agent         json.RawMessage `json:"agent"`
}

// presence is the stored agent.Presence (only a status and numbers: see record).
type presence struct {
	Status string `json:"status"`
	Rev    uint64 `json:"rev"`
	Epoch  int64  `json:"epoch,omitempty"`
}

const (
	liveRecordPrefix     = `{"agent":`
	presenceRecordPrefix = `{"presence":{`
)

func agentItem(a *agent.Agent) (store.Item, error) {
	wire, err := json.Marshal(&a.Agent)
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding agent: %w", err)
	}
	r := record{Agent: wire, DeletingSince: a.DeletingSince}
	if p := a.Presence; p != nil {
		r.Presence = &presence{Status: p.Status, Rev: p.Rev, Epoch: p.Epoch}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding agent: %w", err)
	}
	return store.Item{Key: AgentKey(a.TenantID, a.ID), Data: b}, nil
}

// liveAgentJSON cuts a live agent's JSON out of its record, or reports that the record
// needs decoding.
func liveAgentJSON(d []byte) ([]byte, bool) {
	if len(d) < 2 || d[len(d)-1] != '}' {
		return nil, false
	}
	switch {
	case bytes.HasPrefix(d, []byte(liveRecordPrefix)):
		return d[len(liveRecordPrefix) : len(d)-1], len(d) > len(liveRecordPrefix)+1
	case bytes.HasPrefix(d, []byte(presenceRecordPrefix)):
		const sep = `},"agent":`
		i := bytes.IndexByte(d[len(presenceRecordPrefix):], '}')
		if i < 0 {
			return nil, false
		}
		rest := d[len(presenceRecordPrefix)+i:]
		if !bytes.HasPrefix(rest, []byte(sep)) || len(rest) <= len(sep)+1 {
			return nil, false
		}
		return rest[len(sep) : len(rest)-1], true
	}
	return nil, false
}

func storedFrom(it store.Item) (agent.Stored, error) {
	id := strings.TrimPrefix(it.SK, agentPrefix)
	if j, ok := liveAgentJSON(it.Data); ok {
		return agent.Stored{ID: id, JSON: j}, nil
	}
	var r record
	if err := json.Unmarshal(it.Data, &r); err != nil || len(r.Agent) == 0 {
		return agent.Stored{}, fmt.Errorf("decoding agent %s %s: %v", it.PK, it.SK, err)
	}
	return agent.Stored{ID: id, JSON: r.Agent, Deleting: r.DeletingSince != nil}, nil
}

func agentFrom(it store.Item) (agent.Agent, error) {
	var r record
	if err := json.Unmarshal(it.Data, &r); err != nil {
		return agent.Agent{}, fmt.Errorf("decoding agent %s %s: %w", it.PK, it.SK, err)
	}
	a := agent.Agent{DeletingSince: r.DeletingSince, Version: it.Version}
	if p := r.Presence; p != nil {
		a.Presence = &agent.Presence{Status: p.Status, Rev: p.Rev, Epoch: p.Epoch}
	}
	if err := json.Unmarshal(r.Agent, &a.Agent); err != nil {
		return agent.Agent{}, fmt.Errorf("decoding agent %s %s: %w", it.PK, it.SK, err)
	}
	return a, nil
}

// GetStored implements agent.Repository.
func (r *Repo) GetStored(ctx context.Context, tenantID, id string) (agent.Stored, error) {
	it, err := r.t.Get(ctx, AgentKey(tenantID, id))
	if err != nil {
		return agent.Stored{}, domainErr(err)
	}
	return storedFrom(it)
}

// Get implements agent.Repository.
func (r *Repo) Get(ctx context.Context, tenantID, id string) (agent.Agent, error) {
	it, err := r.t.Get(ctx, AgentKey(tenantID, id))
	if err != nil {
		return agent.Agent{}, domainErr(err)
	}
	return agentFrom(it)
}

// upsert creates the (data-less) index item at key, or rewrites it when it exists: the
// new version tells a concurrent writer that reads it before its own commit (Update)
// not to delete it afterwards. It reports whether it created the item.
func (r *Repo) upsert(ctx context.Context, key store.Key) (bool, error) {
	for range upsertAttempts {
		_, err := r.t.Put(ctx, store.Item{Key: key}, store.IfAbsent())
		if !errors.Is(err, store.ErrConditionFailed) {
			return err == nil, domainErr(err)
		}
		_, err = r.t.Put(ctx, store.Item{Key: key}, store.IfExists())
		if !errors.Is(err, store.ErrConditionFailed) {
			return false, domainErr(err)
		}
	}
	return false, fmt.Errorf("%w: index item %s keeps changing", agent.ErrConflict, key.SK)
}

// deleteIndexes removes index items, absent ones included, on a context that outlives
// the request's (it cleans up after a failure).
func (r *Repo) deleteIndexes(ctx context.Context, pk string, sks []string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, sk := range sks {
		if err := r.t.Delete(cctx, store.Key{PK: pk, SK: sk}, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("sk", sk).Msg("index item left behind")
		}
	}
}

// Create implements agent.Repository.
func (r *Repo) Create(ctx context.Context, a *agent.Agent) error {
	it, err := agentItem(a)
	if err != nil {
		return err
	}
	// On failure only the entries this call created go again: one that existed belongs
	// to somebody else.
	var created []string
	for _, sk := range indexSKs(&a.Agent) {
		ok, err := r.upsert(ctx, store.Key{PK: it.PK, SK: sk})
		if err != nil {
			r.deleteIndexes(ctx, it.PK, created)
			return err
		}
		if ok {
			created = append(created, sk)
		}
	}
	v, err := r.t.Put(ctx, it, store.IfAbsent())
	if err != nil {
		r.deleteIndexes(ctx, it.PK, created)
		return domainErr(err)
	}
	a.Version = v
	return nil
}

// Update implements agent.Repository.
//
// An index entry that old had and a drops is deleted after the commit only if its
// version is still the one read before the commit: a writer that needs the entry again
// rewrites it (upsert) before its own commit, which can only follow ours, so our delete
// then fails instead of removing an entry the agent needs.
func (r *Repo) Update(ctx context.Context, old agent.Agent, a *agent.Agent) error {
	it, err := agentItem(a)
	if err != nil {
		return err
	}
	oldSKs, newSKs := indexSKs(&old.Agent), indexSKs(&a.Agent)
	for _, sk := range minus(newSKs, oldSKs) {
		if _, err := r.upsert(ctx, store.Key{PK: it.PK, SK: sk}); err != nil {
			return err
		}
	}
	type entry struct {
		key     store.Key
		version int64
	}
	var drop []entry
	for _, sk := range minus(oldSKs, newSKs) {
		key := store.Key{PK: it.PK, SK: sk}
		cur, err := r.t.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return domainErr(err)
		}
		drop = append(drop, entry{key, cur.Version})
	}
	v, err := r.t.Put(ctx, it, store.IfVersion(old.Version))
	if err != nil {
		// Entries written above stay as stale entries, which lists skip.
		return domainErr(err)
	}
	a.Version = v
	for _, e := range drop {
		if err := r.t.Delete(ctx, e.key, store.IfVersion(e.version)); err != nil && !errors.Is(err, store.ErrConditionFailed) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("sk", e.key.SK).Msg("stale index item left behind")
		}
	}
	return nil
}

// Remove implements agent.Repository.
func (r *Repo) Remove(ctx context.Context, a agent.Agent) (bool, error) {
	key := AgentKey(a.TenantID, a.ID)
	for _, sk := range indexSKs(&a.Agent) {
		if err := r.t.Delete(ctx, store.Key{PK: key.PK, SK: sk}, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
			return false, domainErr(err)
		}
	}
	err := r.t.Delete(ctx, key, store.IfVersion(a.Version))
	if errors.Is(err, store.ErrConditionFailed) {
		return false, nil
	}
	if err != nil {
		return false, domainErr(err)
	}
	return true, nil
}

// ListStored implements agent.Repository.
func (r *Repo) ListStored(ctx context.Context, tenantID string, limit int, cursor string) ([]agent.Stored, string, error) {
	page, err := r.t.Query(ctx, partition(tenantID), store.QueryOptions{Prefix: agentPrefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	out := make([]agent.Stored, 0, len(page.Items))
	for _, it := range page.Items {
		st, err := storedFrom(it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, st)
	}
	return out, page.Cursor, nil
}

// ListIndex implements agent.Repository.
func (r *Repo) ListIndex(ctx context.Context, tenantID string, idx agent.Index, limit int, cursor string) ([]string, string, error) {
	prefix := indexPrefix(idx)
	page, err := r.t.Query(ctx, partition(tenantID), store.QueryOptions{Prefix: prefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	ids := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		ids = append(ids, it.SK[len(prefix):])
	}
	return ids, page.Cursor, nil
}

// GetManyStored implements agent.Repository.
func (r *Repo) GetManyStored(ctx context.Context, tenantID string, ids []string) (map[string]agent.Stored, error) {
	keys := make([]store.Key, len(ids))
	for i, id := range ids {
		keys[i] = AgentKey(tenantID, id)
	}
	items, err := r.t.BatchGet(ctx, keys)
	if err != nil {
		return nil, domainErr(err)
	}
	out := make(map[string]agent.Stored, len(items))
	for _, it := range items {
		st, err := storedFrom(it)
		if err != nil {
			return nil, err
		}
		out[st.ID] = st
	}
	return out, nil
}

func totalKey(tenantID string) store.Key { return store.Key{PK: partition(tenantID), SK: totalSK} }
func statusCountKey(tenantID, status string) store.Key {
	return store.Key{PK: partition(tenantID), SK: statusCountPfx + status}
}

// add adds delta to a counter. There is no lower bound: concurrent status changes may
// apply their -1 before another change's +1 lands, and a bound would make that exact
// arithmetic drift; readers clamp at 0.
func (r *Repo) add(ctx context.Context, key store.Key, delta int64, max *int64) (int64, error) {
	n, err := r.t.Add(ctx, key, delta, store.AddOptions{Max: max})
	return n, domainErr(err)
}

// AddTotal implements agent.Repository.
func (r *Repo) AddTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	return r.add(ctx, totalKey(tenantID), delta, max)
}

// AddStatus implements agent.Repository.
func (r *Repo) AddStatus(ctx context.Context, tenantID, status string, delta int64) error {
	_, err := r.add(ctx, statusCountKey(tenantID, status), delta, nil)
	return err
}

// Counts implements agent.Repository.
func (r *Repo) Counts(ctx context.Context, tenantID string) (agent.Counts, error) {
	keys := make([]store.Key, 0, 1+len(agentv1.Statuses))
	keys = append(keys, totalKey(tenantID))
	for _, s := range agentv1.Statuses {
		keys = append(keys, statusCountKey(tenantID, s))
	}
	items, err := r.t.BatchGet(ctx, keys)
	if err != nil {
		return agent.Counts{}, domainErr(err)
	}
	c := agent.Counts{ByStatus: make(map[string]int64, len(agentv1.Statuses))}
	for _, it := range items {
		if it.SK == totalSK {
			c.Total = it.Count
		} else {
			c.ByStatus[strings.TrimPrefix(it.SK, statusCountPfx)] = it.Count
		}
	}
	return c, nil
}

// Purge implements agent.Repository: every item of the partition, page by page.
func (r *Repo) Purge(ctx context.Context, tenantID string) error {
	pk := partition(tenantID)
	cursor := ""
	for {
		page, err := r.t.Query(ctx, pk, store.QueryOptions{Limit: purgePage, Cursor: cursor})
		if err != nil {
			return domainErr(err)
		}
		for _, it := range page.Items {
			if err := r.t.Delete(ctx, it.Key, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
				return domainErr(err)
			}
		}
		if page.Cursor == "" {
			return nil
		}
		cursor = page.Cursor
	}
}
