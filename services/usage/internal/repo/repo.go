// Package repo keeps the usage service's items in its kit/store table: key builders,
// item ⇄ domain mapping and store error → domain error mapping.
//
// Every item of a tenant lives in the tenant's partition, so a read walks one partition
// and the tenant cascade deletes one partition:
//
//	T#<tenant>  day#<YYYY-MM-DD>            the day row: JSON of usage.Day (counts, peak,
//	                                        per-sender watermarks, gauges)
//	T#<tenant>  active#<YYYY-MM-DD>#<agent> the agent had a session that day (no data)
//	T#<tenant>  deleted                     the tenant was deleted (no data; kept: tenant
//	                                        ids are never reused, and metering events
//	                                        still in flight must not bring rows back)
package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/usage/internal/usage"
)

// Table is the table name of the usage service (the store adds its prefix).
const Table = store.TableUsage

const (
	tenantPrefix = "T#"
	dayPrefix    = "day#"
	activePrefix = "active#"
	tombstoneSK  = "deleted"

	// purgePage is how many items a purge deletes per read; queryPage is the page of
	// the other reads.
	purgePage = 100
	queryPage = 1000
)

// Repo implements usage.Repository on a store.Table.
type Repo struct {
	t store.Table
}

var _ usage.Repository = (*Repo)(nil)

// New returns the repository on table t.
func New(t store.Table) *Repo { return &Repo{t: t} }

// Partition is the partition key of a tenant's items.
func Partition(tenantID string) string { return tenantPrefix + tenantID }

// DayKey is the key of a day row.
func DayKey(tenantID, date string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: dayPrefix + date}
}

// ActiveKey is the key of an active-agent marker.
func ActiveKey(tenantID, date, agentID string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: activePrefix + date + "#" + agentID}
}

// TombstoneKey is the key of the marker of a deleted tenant.
func TombstoneKey(tenantID string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: tombstoneSK}
}

func domainErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", usage.ErrNotFound, err)
	case errors.Is(err, store.ErrConditionFailed):
		return fmt.Errorf("%w (%w)", usage.ErrConflict, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w (%w)", usage.ErrUnavailable, err)
	}
	return err
}

func dayFrom(it store.Item) (usage.StoredDay, error) {
	d := usage.StoredDay{Date: it.SK[len(dayPrefix):], Version: it.Version}
	if err := json.Unmarshal(it.Data, &d.Day); err != nil {
		return usage.StoredDay{}, fmt.Errorf("decoding usage row %s/%s: %w", it.PK, it.SK, err)
	}
	return d, nil
}

// GetDay implements usage.Repository.
func (r *Repo) GetDay(ctx context.Context, tenantID, date string) (usage.StoredDay, error) {
	it, err := r.t.Get(ctx, DayKey(tenantID, date))
	if errors.Is(err, store.ErrNotFound) {
		return usage.StoredDay{Date: date}, nil
	}
	if err != nil {
		return usage.StoredDay{}, domainErr(err)
	}
	return dayFrom(it)
}

// PutDay implements usage.Repository.
func (r *Repo) PutDay(ctx context.Context, tenantID string, d usage.StoredDay) error {
	b, err := json.Marshal(&d.Day)
	if err != nil {
		return fmt.Errorf("encoding usage row: %w", err)
	}
	cond := store.IfAbsent()
	if d.Version != 0 {
		cond = store.IfVersion(d.Version)
	}
	_, err = r.t.Put(ctx, store.Item{Key: DayKey(tenantID, d.Date), Data: b}, cond)
	return domainErr(err)
}

// Days implements usage.Repository.
func (r *Repo) Days(ctx context.Context, tenantID string, visit func(usage.StoredDay) bool) error {
	cursor := ""
	for {
		page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Prefix: dayPrefix, Limit: queryPage, Cursor: cursor, Reverse: true})
		if err != nil {
			return domainErr(err)
		}
		for _, it := range page.Items {
			d, err := dayFrom(it)
			if err != nil {
				return err
			}
			if !visit(d) {
				return nil
			}
		}
		if page.Cursor == "" {
			return nil
		}
		cursor = page.Cursor
	}
}

// MarkActive implements usage.Repository.
func (r *Repo) MarkActive(ctx context.Context, tenantID, date, agentID string) error {
	_, err := r.t.Put(ctx, store.Item{Key: ActiveKey(tenantID, date, agentID), Data: []byte("{}")}, store.IfAbsent())
	if errors.Is(err, store.ErrConditionFailed) {
		return nil // marked before
	}
	return domainErr(err)
}

// CountActive implements usage.Repository.
func (r *Repo) CountActive(ctx context.Context, tenantID, date string) (int64, error) {
	var n int64
	cursor := ""
	for {
		page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Prefix: activePrefix + date + "#", Limit: queryPage, Cursor: cursor})
		if err != nil {
			return 0, domainErr(err)
		}
		n += int64(len(page.Items))
		if page.Cursor == "" {
			return n, nil
		}
		cursor = page.Cursor
	}
}

// MarkDeleted implements usage.Repository.
func (r *Repo) MarkDeleted(ctx context.Context, tenantID string) error {
	_, err := r.t.Put(ctx, store.Item{Key: TombstoneKey(tenantID), Data: []byte("{}")}, store.IfAbsent())
	if errors.Is(err, store.ErrConditionFailed) {
		return nil // marked before
	}
	return domainErr(err)
}

// Deleted implements usage.Repository.
func (r *Repo) Deleted(ctx context.Context, tenantID string) (bool, error) {
	_, err := r.t.Get(ctx, TombstoneKey(tenantID))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, domainErr(err)
}

// Purge implements usage.Repository: every item but the tombstone. Each pass starts over
// (deleted items are gone from the next query), so no cursor is needed; a pass that
// found only the tombstone is the last.
func (r *Repo) Purge(ctx context.Context, tenantID string) error {
	for {
		page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Limit: purgePage})
		if err != nil {
			return domainErr(err)
		}
		deleted := 0
		for _, it := range page.Items {
			if it.SK == tombstoneSK {
				continue
			}
			if err := r.t.Delete(ctx, it.Key, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
				return domainErr(err)
			}
			deleted++
		}
		if page.Cursor == "" || deleted == 0 {
			return nil
		}
	}
}
