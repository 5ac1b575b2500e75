// Package repo keeps the sshkey service's items in its kit/store table: key builders,
// item ⇄ domain mapping (JSON in Item.Data) and store error → domain error mapping.
//
// Items:
//
//	T#<tenant>  K#<key id>               a key
//	T#<tenant>  F#<fingerprint>          the fingerprint's claim {key_id, created_at}: one key per fingerprint
//	T#<tenant>  G#<agent id>#<key id>    index: keys by agent {key_id}; checked against the key
//	T#<tenant>  Y#<key type>#<key id>    index: keys by type {key_id}; checked against the key
//	T#<tenant>  N#KEYS                   the tenant's key counter (Item.Count)
//	T#<tenant>  CH#<challenge>           an issued challenge {key_id, agent_id, expires_at}, expiring
//	RL#<bucket> W#<window start, unix s> a login rate-limit counter (bucket = hashed address/key), expiring
package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
)

// Table is the table name of the sshkey service (the store adds its prefix).
const Table = store.TableSSHKeys

const (
	tenantPrefix    = "T#"
	keyPrefix       = "K#"
	claimPrefix     = "F#"
	agentIxPrefix   = "G#"
	typeIxPrefix    = "Y#"
	challengePrefix = "CH#"
	rateLimitPrefix = "RL#"
	windowPrefix    = "W#"
	countSK         = "N#KEYS"
)

// maxBatch is the store's BatchGet limit.
const maxBatch = 100

// Repo implements sshkey.Repository on a store.Table.
type Repo struct {
	t store.Table
}

var _ sshkey.Repository = (*Repo)(nil)

// New returns the repository on table t.
func New(t store.Table) *Repo { return &Repo{t: t} }

func partition(tenantID string) string { return tenantPrefix + tenantID }

func keyKey(tenantID, keyID string) store.Key {
	return store.Key{PK: partition(tenantID), SK: keyPrefix + keyID}
}
func claimKey(tenantID, fp string) store.Key {
	return store.Key{PK: partition(tenantID), SK: claimPrefix + fp}
}
func countKey(tenantID string) store.Key { return store.Key{PK: partition(tenantID), SK: countSK} }
func challengeKey(tenantID, value string) store.Key {
	return store.Key{PK: partition(tenantID), SK: challengePrefix + value}
}

// indexPrefix is the SK prefix of one index's entries.
func indexPrefix(ix sshkey.Index) string {
	if ix.Kind == sshkey.ByAgent {
		return agentIxPrefix + ix.Value + "#"
	}
	return typeIxPrefix + ix.Value + "#"
}

func indexKey(tenantID string, ix sshkey.Index, keyID string) store.Key {
	return store.Key{PK: partition(tenantID), SK: indexPrefix(ix) + keyID}
}

// domainErr classifies a store error once; the store error stays in the chain for logs.
func domainErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", sshkey.ErrNotFound, err)
	case errors.Is(err, store.ErrConditionFailed):
		return fmt.Errorf("%w (%w)", sshkey.ErrConflict, err)
	case errors.Is(err, store.ErrInvalidCursor):
		return fmt.Errorf("%w (%w)", sshkey.ErrInvalidCursor, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w (%w)", sshkey.ErrUnavailable, err)
	}
	return err
}

// keyRecord is the stored form of a key, close to the wire form.
type keyRecord struct {
	ID               string         `json:"id"`
	Name             string         `json:"name"`
	PublicKey        string         `json:"public_key"`
	KeyType          string         `json:"key_type"`
	AgentID          string         `json:"agent_id,omitempty"`
	Fingerprint      string         `json:"fingerprint"`
	Algorithm        string         `json:"algorithm"`
	Status           string         `json:"status"`
	RevokedAt        *time.Time     `json:"revoked_at,omitempty"`
	RevocationReason *string        `json:"revocation_reason,omitempty"`
	LastUsed         *time.Time     `json:"last_used,omitempty"`
	Metadata         map[string]any `json:"metadata,omitempty"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
}

func keyItem(k *sshkey.Key) (store.Item, error) {
	b, err := json.Marshal(keyRecord{
		ID: k.ID, Name: k.Name, PublicKey: k.PublicKey, KeyType: k.KeyType, AgentID: k.AgentID,
		Fingerprint: k.Fingerprint, Algorithm: k.Algorithm, Status: k.Status, RevokedAt: k.RevokedAt,
		RevocationReason: k.RevocationReason, LastUsed: k.LastUsed, Metadata: k.Metadata,
		CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt,
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding key: %w", err)
	}
	return store.Item{Key: keyKey(k.TenantID, k.ID), Data: b}, nil
}

func keyFrom(tenantID string, it store.Item) (sshkey.Key, error) {
	var r keyRecord
	if err := json.Unmarshal(it.Data, &r); err != nil {
		return sshkey.Key{}, fmt.Errorf("decoding key %s %s: %w", it.PK, it.SK, err)
	}
	if r.Metadata == nil {
		r.Metadata = map[string]any{}
	}
	return sshkey.Key{
		ID: r.ID, TenantID: tenantID, Name: r.Name, PublicKey: r.PublicKey, KeyType: r.KeyType,
		AgentID: r.AgentID, Fingerprint: r.Fingerprint, Algorithm: r.Algorithm, Status: r.Status,
		RevokedAt: r.RevokedAt, RevocationReason: r.RevocationReason, LastUsed: r.LastUsed,
		Metadata: r.Metadata, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Version: it.Version,
	}, nil
}

// CreateKey implements sshkey.Repository.
func (r *Repo) CreateKey(ctx context.Context, k *sshkey.Key) error {
	it, err := keyItem(k)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfAbsent())
	if err != nil {
		return domainErr(err)
	}
	k.Version = v
	return nil
}

// GetKey implements sshkey.Repository.
func (r *Repo) GetKey(ctx context.Context, tenantID, keyID string) (sshkey.Key, error) {
	it, err := r.t.Get(ctx, keyKey(tenantID, keyID))
	if err != nil {
		return sshkey.Key{}, domainErr(err)
	}
	return keyFrom(tenantID, it)
}

// GetKeys implements sshkey.Repository.
func (r *Repo) GetKeys(ctx context.Context, tenantID string, keyIDs []string) ([]sshkey.Key, error) {
	out := make([]sshkey.Key, 0, len(keyIDs))
	for start := 0; start < len(keyIDs); start += maxBatch {
		chunk := keyIDs[start:min(start+maxBatch, len(keyIDs))]
		keys := make([]store.Key, len(chunk))
		for i, id := range chunk {
			keys[i] = keyKey(tenantID, id)
		}
		items, err := r.t.BatchGet(ctx, keys)
		if err != nil {
			return nil, domainErr(err)
		}
		for _, it := range items {
			k, err := keyFrom(tenantID, it)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
	}
	return out, nil
}

// UpdateKey implements sshkey.Repository.
func (r *Repo) UpdateKey(ctx context.Context, k *sshkey.Key) error {
	it, err := keyItem(k)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfVersion(k.Version))
	if err != nil {
		return domainErr(err)
	}
	k.Version = v
	return nil
}

// DeleteKey implements sshkey.Repository.
func (r *Repo) DeleteKey(ctx context.Context, tenantID, keyID string, version int64) error {
	return domainErr(r.t.Delete(ctx, keyKey(tenantID, keyID), store.IfVersion(version)))
}

// ListKeys implements sshkey.Repository.
func (r *Repo) ListKeys(ctx context.Context, tenantID string, limit int, cursor string) ([]sshkey.Key, string, error) {
	page, err := r.t.Query(ctx, partition(tenantID), store.QueryOptions{Prefix: keyPrefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	out := make([]sshkey.Key, 0, len(page.Items))
	for _, it := range page.Items {
		k, err := keyFrom(tenantID, it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, k)
	}
	return out, page.Cursor, nil
}

// claimRecord is the stored form of a fingerprint claim.
type claimRecord struct {
	KeyID     string    `json:"key_id"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateClaim implements sshkey.Repository.
func (r *Repo) CreateClaim(ctx context.Context, tenantID, fingerprint string, c sshkey.Claim) error {
	b, err := json.Marshal(claimRecord{KeyID: c.KeyID, CreatedAt: c.CreatedAt})
	if err != nil {
		return fmt.Errorf("encoding claim: %w", err)
	}
	_, err = r.t.Put(ctx, store.Item{Key: claimKey(tenantID, fingerprint), Data: b}, store.IfAbsent())
	return domainErr(err)
}

// GetClaim implements sshkey.Repository.
func (r *Repo) GetClaim(ctx context.Context, tenantID, fingerprint string) (sshkey.Claim, error) {
	it, err := r.t.Get(ctx, claimKey(tenantID, fingerprint))
	if err != nil {
		return sshkey.Claim{}, domainErr(err)
	}
	var c claimRecord
	if err := json.Unmarshal(it.Data, &c); err != nil {
		return sshkey.Claim{}, fmt.Errorf("decoding claim %s %s: %w", it.PK, it.SK, err)
	}
	return sshkey.Claim{KeyID: c.KeyID, CreatedAt: c.CreatedAt, Version: it.Version}, nil
}

// DeleteClaim implements sshkey.Repository.
func (r *Repo) DeleteClaim(ctx context.Context, tenantID, fingerprint string, version int64) error {
	return domainErr(r.t.Delete(ctx, claimKey(tenantID, fingerprint), store.IfVersion(version)))
}

// indexRecord is the body of index entries: the key they point to.
type indexRecord struct {
	KeyID string `json:"key_id"`
}

// PutIndex implements sshkey.Repository.
func (r *Repo) PutIndex(ctx context.Context, tenantID string, ix sshkey.Index, keyID string) error {
	b, _ := json.Marshal(indexRecord{KeyID: keyID}) // cannot fail: one string field
	_, err := r.t.Put(ctx, store.Item{Key: indexKey(tenantID, ix, keyID), Data: b}, store.IfAbsent())
	if errors.Is(err, store.ErrConditionFailed) {
		return nil
	}
	return domainErr(err)
}

// DeleteIndex implements sshkey.Repository.
func (r *Repo) DeleteIndex(ctx context.Context, tenantID string, ix sshkey.Index, keyID string) error {
	err := r.t.Delete(ctx, indexKey(tenantID, ix, keyID), store.IfExists())
	if errors.Is(err, store.ErrConditionFailed) {
		return nil
	}
	return domainErr(err)
}

// ListIndex implements sshkey.Repository.
func (r *Repo) ListIndex(ctx context.Context, tenantID string, ix sshkey.Index, limit int, cursor string) ([]string, string, error) {
	prefix := indexPrefix(ix)
	page, err := r.t.Query(ctx, partition(tenantID), store.QueryOptions{Prefix: prefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	ids := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		ids = append(ids, strings.TrimPrefix(it.SK, prefix))
	}
	return ids, page.Cursor, nil
}

// AddKeyCount implements sshkey.Repository.
func (r *Repo) AddKeyCount(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	zero := int64(0)
	n, err := r.t.Add(ctx, countKey(tenantID), delta, store.AddOptions{Min: &zero, Max: max})
	return n, domainErr(err)
}

// KeyCount implements sshkey.Repository.
func (r *Repo) KeyCount(ctx context.Context, tenantID string) (int64, error) {
	it, err := r.t.Get(ctx, countKey(tenantID))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, domainErr(err)
	}
	return it.Count, nil
}

// challengeRecord is the stored form of a challenge.
type challengeRecord struct {
	KeyID     string    `json:"key_id,omitempty"`
	AgentID   string    `json:"agent_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateChallenge implements sshkey.Repository.
func (r *Repo) CreateChallenge(ctx context.Context, c *sshkey.Challenge) error {
	b, err := json.Marshal(challengeRecord{KeyID: c.KeyID, AgentID: c.AgentID, ExpiresAt: c.ExpiresAt})
	if err != nil {
		return fmt.Errorf("encoding challenge: %w", err)
	}
	v, err := r.t.Put(ctx, store.Item{Key: challengeKey(c.TenantID, c.Value), Data: b, ExpiresAt: c.ExpiresAt}, store.IfAbsent())
	if err != nil {
		return domainErr(err)
	}
	c.Version = v
	return nil
}

// GetChallenge implements sshkey.Repository.
func (r *Repo) GetChallenge(ctx context.Context, tenantID, value string) (sshkey.Challenge, error) {
	it, err := r.t.Get(ctx, challengeKey(tenantID, value))
	if err != nil {
		return sshkey.Challenge{}, domainErr(err)
	}
	var c challengeRecord
	if err := json.Unmarshal(it.Data, &c); err != nil {
		return sshkey.Challenge{}, fmt.Errorf("decoding challenge: %w", err)
	}
	return sshkey.Challenge{
		TenantID: tenantID, Value: value, KeyID: c.KeyID, AgentID: c.AgentID,
		ExpiresAt: c.ExpiresAt, Version: it.Version,
	}, nil
}

// DeleteChallenge implements sshkey.Repository.
func (r *Repo) DeleteChallenge(ctx context.Context, tenantID, value string, version int64) error {
	return domainErr(r.t.Delete(ctx, challengeKey(tenantID, value), store.IfVersion(version)))
}

// Hit implements sshkey.Repository.
func (r *Repo) Hit(ctx context.Context, bucket string, window time.Time, max int64, expires time.Time) error {
	key := store.Key{PK: rateLimitPrefix + bucket, SK: windowPrefix + strconv.FormatInt(window.Unix(), 10)}
	_, err := r.t.Add(ctx, key, 1, store.AddOptions{Max: &max, ExpiresAt: expires})
	return domainErr(err)
}

// PurgePage implements sshkey.Repository.
func (r *Repo) PurgePage(ctx context.Context, tenantID string, limit int) (int, error) {
	page, err := r.t.Query(ctx, partition(tenantID), store.QueryOptions{Limit: limit})
	if err != nil {
		return 0, domainErr(err)
	}
	for _, it := range page.Items {
		if err := r.t.Delete(ctx, it.Key, store.IfExists()); err != nil && !errors.Is(err, store.ErrConditionFailed) {
			return 0, domainErr(err)
		}
	}
	return len(page.Items), nil
}
