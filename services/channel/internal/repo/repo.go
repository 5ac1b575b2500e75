// Package repo keeps the channel service's items in its kit/store table: key builders,
// item ⇄ domain mapping and store error → domain error mapping.
//
// Every item of a tenant lives in the tenant's partition, so a list reads one partition
// and the tenant cascade deletes one partition:
//
//	T#<tenant>  C#<channel>              the channel: its wire JSON (channelv1.Channel;
//	                                     total_messages and last_message_at are not
//	                                     stored, they come from the stream)
//	T#<tenant>  S#<channel>#<agent>      a subscription: its wire JSON
//	T#<tenant>  G#<agent>#<channel>      an agent's index entry for that subscription
//	                                     (deleting an agent finds its subscriptions
//	                                     without a scan)
//	T#<tenant>  N#TOTAL                  the channel counter (Item.Count), max_channels
//	T#<tenant>  N#SUBS#<channel>         the channel's subscriber count (Item.Count)
//
// The index entry is written before its subscription and removed after it, so a crash
// leaves at most an entry without a subscription (skipped and removed when the agent
// goes), never a subscription its agent's deletion cannot find.
//
// The subscriber count is an item of its own, not the channel item's Count: an Add
// creates a missing item, and a late increment must never bring back a deleted channel.
package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Table is the table name of the channel service (the store adds its prefix).
const Table = store.TableChannels

const (
	tenantPrefix       = "T#"
	channelPrefix      = "C#"
	subscriptionPrefix = "S#"
	agentIndexPrefix   = "G#"
	totalSK            = "N#TOTAL"
	subscribersPrefix  = "N#SUBS#"

	// purgePage is how many items a purge deletes per read.
	purgePage = 100
)

// Repo implements channel.Repository on a store.Table.
type Repo struct {
	t store.Table
}

var _ channel.Repository = (*Repo)(nil)

// New returns the repository on table t.
func New(t store.Table) *Repo { return &Repo{t: t} }

// Partition is the partition key of a tenant's items.
func Partition(tenantID string) string { return tenantPrefix + tenantID }

// ChannelKey is the key of a channel item.
func ChannelKey(tenantID, id string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: channelPrefix + id}
}

// SubscriptionKey is the key of the subscription of agentID to channelID.
func SubscriptionKey(tenantID, channelID, agentID string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: subscriptionsOf(channelID) + agentID}
}

// SubscribersKey is the key of a channel's subscriber counter.
func SubscribersKey(tenantID, channelID string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: subscribersPrefix + channelID}
}

// AgentIndexKey is the key of agentID's index entry for its subscription to channelID.
func AgentIndexKey(tenantID, agentID, channelID string) store.Key {
	return store.Key{PK: Partition(tenantID), SK: agentIndexOf(agentID) + channelID}
}

func subscriptionsOf(channelID string) string { return subscriptionPrefix + channelID + "#" }

func agentIndexOf(agentID string) string { return agentIndexPrefix + agentID + "#" }

func totalKey(tenantID string) store.Key { return store.Key{PK: Partition(tenantID), SK: totalSK} }

// domainErr classifies a store error once; the store error stays in the chain for logs.
func domainErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", channel.ErrNotFound, err)
	case errors.Is(err, store.ErrConditionFailed):
		return fmt.Errorf("%w (%w)", channel.ErrConflict, err)
	case errors.Is(err, store.ErrInvalidCursor):
		return fmt.Errorf("%w (%w)", channel.ErrInvalidCursor, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w (%w)", channel.ErrUnavailable, err)
	}
	return err
}

func channelItem(c *channel.Channel) (store.Item, error) {
	stored := c.Channel
	// Dynamic fields are never stored: the count has its own item, the stats come from
	// the stream.
	stored.SubscriberCount, stored.TotalMessages, stored.LastMessageAt = 0, 0, nil
	b, err := json.Marshal(&stored)
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding channel: %w", err)
	}
	return store.Item{Key: ChannelKey(c.TenantID, c.ID), Data: b}, nil
}

func channelFrom(it store.Item) (channel.Channel, error) {
	c := channel.Channel{Version: it.Version}
	if err := json.Unmarshal(it.Data, &c.Channel); err != nil || c.ID == "" {
		return channel.Channel{}, fmt.Errorf("decoding channel %s %s: %v", it.PK, it.SK, err)
	}
	return c, nil
}

func subscriptionFrom(it store.Item) (channelv1.Subscription, error) {
	var s channelv1.Subscription
	if err := json.Unmarshal(it.Data, &s); err != nil || s.AgentID == "" {
		return channelv1.Subscription{}, fmt.Errorf("decoding subscription %s %s: %v", it.PK, it.SK, err)
	}
	return s, nil
}

// Get implements channel.Repository: the channel and its counter in one read.
func (r *Repo) Get(ctx context.Context, tenantID, id string) (channel.Channel, error) {
	c, _, err := r.get(ctx, tenantID, id, "")
	return c, err
}

// GetWithRole implements channel.Repository: the channel, its counter and the agent's
// subscription in one read.
func (r *Repo) GetWithRole(ctx context.Context, tenantID, id, agentID string) (channel.Channel, string, error) {
	return r.get(ctx, tenantID, id, agentID)
}

func (r *Repo) get(ctx context.Context, tenantID, id, agentID string) (channel.Channel, string, error) {
	keys := []store.Key{ChannelKey(tenantID, id), SubscribersKey(tenantID, id)}
	if agentID != "" {
		keys = append(keys, SubscriptionKey(tenantID, id, agentID))
	}
	items, err := r.t.BatchGet(ctx, keys)
	if err != nil {
		return channel.Channel{}, "", domainErr(err)
	}
	var (
		c     channel.Channel
		found bool
		count int64
		role  string
	)
	for _, it := range items {
		switch {
		case it.SK == keys[0].SK:
			if c, err = channelFrom(it); err != nil {
				return channel.Channel{}, "", err
			}
			found = true
		case it.SK == keys[1].SK:
			count = it.Count
		default:
			s, err := subscriptionFrom(it)
			if err != nil {
				return channel.Channel{}, "", err
			}
			role = s.Role
		}
	}
	if !found {
		return channel.Channel{}, "", fmt.Errorf("%w: channel %s", channel.ErrNotFound, id)
	}
	c.SubscriberCount = max(count, 0)
	return c, role, nil
}

// Create implements channel.Repository.
func (r *Repo) Create(ctx context.Context, c *channel.Channel) error {
	it, err := channelItem(c)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfAbsent())
	if err != nil {
		return domainErr(err)
	}
	c.Version = v
	return nil
}

// Update implements channel.Repository.
func (r *Repo) Update(ctx context.Context, old channel.Channel, c *channel.Channel) error {
	it, err := channelItem(c)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfVersion(old.Version))
	if err != nil {
		return domainErr(err)
	}
	c.Version = v
	return nil
}

// Delete implements channel.Repository.
func (r *Repo) Delete(ctx context.Context, c channel.Channel) (bool, error) {
	err := r.t.Delete(ctx, ChannelKey(c.TenantID, c.ID), store.IfVersion(c.Version))
	if errors.Is(err, store.ErrConditionFailed) {
		return false, nil
	}
	if err != nil {
		return false, domainErr(err)
	}
	return true, nil
}

// List implements channel.Repository: one query and one read of the page's counters.
func (r *Repo) List(ctx context.Context, tenantID string, limit int, cursor string) ([]channel.Channel, string, error) {
	page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Prefix: channelPrefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	out := make([]channel.Channel, 0, len(page.Items))
	keys := make([]store.Key, 0, len(page.Items))
	for _, it := range page.Items {
		c, err := channelFrom(it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, c)
		keys = append(keys, SubscribersKey(tenantID, c.ID))
	}
	if len(keys) > 0 {
		counts, err := r.t.BatchGet(ctx, keys)
		if err != nil {
			return nil, "", domainErr(err)
		}
		byID := make(map[string]int64, len(counts))
		for _, it := range counts {
			byID[strings.TrimPrefix(it.SK, subscribersPrefix)] = it.Count
		}
		for i := range out {
			out[i].SubscriberCount = max(byID[out[i].ID], 0)
		}
	}
	return out, page.Cursor, nil
}

// AddTotal implements channel.Repository.
func (r *Repo) AddTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	n, err := r.t.Add(ctx, totalKey(tenantID), delta, store.AddOptions{Max: max})
	return n, domainErr(err)
}

// Total implements channel.Repository.
func (r *Repo) Total(ctx context.Context, tenantID string) (int64, error) {
	it, err := r.t.Get(ctx, totalKey(tenantID))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, domainErr(err)
	}
	return it.Count, nil
}

// AddSubscription implements channel.Repository.
func (r *Repo) AddSubscription(ctx context.Context, tenantID string, s channelv1.Subscription) error {
	b, err := json.Marshal(&s)
	if err != nil {
		return fmt.Errorf("encoding subscription: %w", err)
	}
	_, err = r.t.Put(ctx, store.Item{Key: SubscriptionKey(tenantID, s.ChannelID, s.AgentID), Data: b}, store.IfAbsent())
	return domainErr(err)
}

// RemoveSubscription implements channel.Repository.
func (r *Repo) RemoveSubscription(ctx context.Context, tenantID, channelID, agentID string) error {
	err := r.t.Delete(ctx, SubscriptionKey(tenantID, channelID, agentID), store.IfExists())
	if errors.Is(err, store.ErrConditionFailed) {
		return fmt.Errorf("%w: subscription of %s to %s", channel.ErrNotFound, agentID, channelID)
	}
	return domainErr(err)
}

// ListSubscriptions implements channel.Repository.
func (r *Repo) ListSubscriptions(ctx context.Context, tenantID, channelID string, limit int, cursor string) ([]channelv1.Subscription, string, error) {
	page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Prefix: subscriptionsOf(channelID), Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	out := make([]channelv1.Subscription, 0, len(page.Items))
	for _, it := range page.Items {
		s, err := subscriptionFrom(it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, s)
	}
	return out, page.Cursor, nil
}

// AddSubscribers implements channel.Repository. The counter has no lower bound: a -1
// may land before a concurrent +1; readers clamp at 0.
func (r *Repo) AddSubscribers(ctx context.Context, tenantID, channelID string, delta int64) error {
	_, err := r.t.Add(ctx, SubscribersKey(tenantID, channelID), delta, store.AddOptions{})
	return domainErr(err)
}

// PutAgentIndex implements channel.Repository: an entry already there is as good.
func (r *Repo) PutAgentIndex(ctx context.Context, tenantID, agentID, channelID string) error {
	_, err := r.t.Put(ctx, store.Item{Key: AgentIndexKey(tenantID, agentID, channelID), Data: []byte("{}")}, store.IfAbsent())
	if errors.Is(err, store.ErrConditionFailed) {
		return nil
	}
	return domainErr(err)
}

// RemoveAgentIndex implements channel.Repository.
func (r *Repo) RemoveAgentIndex(ctx context.Context, tenantID, agentID, channelID string) error {
	return r.deleteIfExists(ctx, AgentIndexKey(tenantID, agentID, channelID))
}

// AgentChannels implements channel.Repository: the first limit entries of the agent's
// index (callers remove what they read, so the next call goes on).
func (r *Repo) AgentChannels(ctx context.Context, tenantID, agentID string, limit int) ([]string, error) {
	prefix := agentIndexOf(agentID)
	page, err := r.t.Query(ctx, Partition(tenantID), store.QueryOptions{Prefix: prefix, Limit: limit})
	if err != nil {
		return nil, domainErr(err)
	}
	out := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		out = append(out, strings.TrimPrefix(it.SK, prefix))
	}
	return out, nil
}

// RemoveChannelItems implements channel.Repository: each subscription, then its agent's
// index entry (a crash in between leaves only an entry, which the agent's deletion
// skips), then the counter.
func (r *Repo) RemoveChannelItems(ctx context.Context, tenantID, channelID string) error {
	pk, prefix := Partition(tenantID), subscriptionsOf(channelID)
	for {
		page, err := r.t.Query(ctx, pk, store.QueryOptions{Prefix: prefix, Limit: purgePage})
		if err != nil {
			return domainErr(err)
		}
		for _, it := range page.Items {
			if err := r.deleteIfExists(ctx, it.Key); err != nil {
				return err
			}
			if err := r.RemoveAgentIndex(ctx, tenantID, strings.TrimPrefix(it.SK, prefix), channelID); err != nil {
				return err
			}
		}
		if page.Cursor == "" {
			break
		}
	}
	return r.deleteIfExists(ctx, SubscribersKey(tenantID, channelID))
}

// Purge implements channel.Repository: every item of the partition, page by page.
func (r *Repo) Purge(ctx context.Context, tenantID string) error {
	return r.deleteAll(ctx, Partition(tenantID), "")
}

// deleteAll deletes every item of partition pk whose SK starts with prefix. Each pass
// starts over: deleted items are gone from the next query, so no cursor is needed.
func (r *Repo) deleteAll(ctx context.Context, pk, prefix string) error {
	for {
		page, err := r.t.Query(ctx, pk, store.QueryOptions{Prefix: prefix, Limit: purgePage})
		if err != nil {
			return domainErr(err)
		}
		for _, it := range page.Items {
			if err := r.deleteIfExists(ctx, it.Key); err != nil {
				return err
			}
		}
		if page.Cursor == "" {
			return nil
		}
	}
}

func (r *Repo) deleteIfExists(ctx context.Context, key store.Key) error {
	if err := r.t.Delete(ctx, key, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
		return domainErr(err)
	}
	return nil
}
