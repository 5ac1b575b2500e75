// Package repo keeps the tenant service's items in its kit/store table: key builders,
// item ⇄ domain mapping (JSON in Item.Data) and store error → domain error mapping.
//
// Items (user ids are arbitrary strings, so they appear in keys only as uh, the first
// 32 hex digits of their SHA-256):
//
//	T#<tenant_id>  TENANT       the tenant (incl. api_key_hash, owner_count, deleting)
//	T#<tenant_id>  M#<uh>       a member {user_id, email, role, joined_at}
//	U#<uh>         T#<tenant_id> index of a user's tenants {tenant_id}; checked against the member item
//	U#<uh>         OWNED        the user's owned-tenants counter (Item.Count)
//	K#<key hash>   KEY          API key index {tenant_id}; checked against the tenant's current hash
package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

// Table is the table name of the tenant service (the store adds its prefix).
const Table = store.TableTenants

const (
	tenantPrefix = "T#"
	memberPrefix = "M#"
	userPrefix   = "U#"
	keyPrefix    = "K#"
	tenantSK     = "TENANT"
	ownedSK      = "OWNED"
	keySK        = "KEY"
)

// maxBatch is the store's BatchGet limit.
const maxBatch = 100

// Repo implements tenant.Repository on a store.Table.
type Repo struct {
	t store.Table
}

var _ tenant.Repository = (*Repo)(nil)

// New returns the repository on table t.
func New(t store.Table) *Repo { return &Repo{t: t} }

// UserHash is how a user id appears in keys.
func UserHash(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(sum[:16])
}

func tenantKey(id string) store.Key { return store.Key{PK: tenantPrefix + id, SK: tenantSK} }
func memberKey(tenantID, userID string) store.Key {
	return store.Key{PK: tenantPrefix + tenantID, SK: memberPrefix + UserHash(userID)}
}
func userIndexKey(userID, tenantID string) store.Key {
	return store.Key{PK: userPrefix + UserHash(userID), SK: tenantPrefix + tenantID}
}
func ownedKey(userID string) store.Key {
	return store.Key{PK: userPrefix + UserHash(userID), SK: ownedSK}
}
func apiKeyKey(hash string) store.Key { return store.Key{PK: keyPrefix + hash, SK: keySK} }

// domainErr classifies a store error once; the store error stays in the chain for logs.
func domainErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w (%w)", tenant.ErrNotFound, err)
	case errors.Is(err, store.ErrConditionFailed):
		return fmt.Errorf("%w (%w)", tenant.ErrConflict, err)
	case errors.Is(err, store.ErrInvalidCursor):
		return fmt.Errorf("%w (%w)", tenant.ErrInvalidCursor, err)
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w (%w)", tenant.ErrUnavailable, err)
	}
	return err
}

// deleteExisting deletes key if present; absent is ErrNotFound.
func (r *Repo) deleteExisting(ctx context.Context, key store.Key) error {
	err := r.t.Delete(ctx, key, store.IfExists())
	if errors.Is(err, store.ErrConditionFailed) {
		return fmt.Errorf("%w (%w)", tenant.ErrNotFound, err)
	}
	return domainErr(err)
}

// tenantRecord is the stored form of a tenant.
type tenantRecord struct {
	ID                    string         `json:"id"`
	Name                  string         `json:"name"`
	AdminEmail            string         `json:"admin_email"`
	Tier                  string         `json:"subscription_tier"`
	Status                string         `json:"status"`
	PaymentStatus         string         `json:"payment_status"`
	SubscriptionExpiresAt *time.Time     `json:"subscription_expires_at,omitempty"`
	Metadata              map[string]any `json:"metadata"`
	Description           *string        `json:"description,omitempty"`
	Website               *string        `json:"website,omitempty"`
	LogoURL               *string        `json:"logo_url,omitempty"`
	PrimaryColor          *string        `json:"primary_color,omitempty"`
	SecondaryColor        *string        `json:"secondary_color,omitempty"`
	CreatedAt             time.Time      `json:"created_at"`
	UpdatedAt             time.Time      `json:"updated_at"`
	APIKeyHash            string         `json:"api_key_hash"`
	OwnerCount            int            `json:"owner_count"`
	Deleting              bool           `json:"deleting,omitempty"`
}

func tenantItem(t *tenant.Tenant) (store.Item, error) {
	b, err := json.Marshal(tenantRecord{
		ID: t.ID, Name: t.Name, AdminEmail: t.AdminEmail, Tier: t.Tier, Status: t.Status,
		PaymentStatus: t.PaymentStatus, SubscriptionExpiresAt: t.SubscriptionExpiresAt,
		Metadata: t.Metadata, Description: t.Description, Website: t.Website, LogoURL: t.LogoURL,
		PrimaryColor: t.PrimaryColor, SecondaryColor: t.SecondaryColor, CreatedAt: t.CreatedAt,
		UpdatedAt: t.UpdatedAt, APIKeyHash: t.APIKeyHash, OwnerCount: t.OwnerCount, Deleting: t.Deleting,
	})
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding tenant: %w", err)
	}
	return store.Item{Key: tenantKey(t.ID), Data: b}, nil
}

func tenantFrom(it store.Item) (tenant.Tenant, error) {
	var r tenantRecord
	if err := json.Unmarshal(it.Data, &r); err != nil {
		return tenant.Tenant{}, fmt.Errorf("decoding tenant %s: %w", it.PK, err)
	}
	if r.Metadata == nil {
		r.Metadata = map[string]any{}
	}
	return tenant.Tenant{
		ID: r.ID, Name: r.Name, AdminEmail: r.AdminEmail, Tier: r.Tier, Status: r.Status,
		PaymentStatus: r.PaymentStatus, SubscriptionExpiresAt: r.SubscriptionExpiresAt,
		Metadata: r.Metadata, Description: r.Description, Website: r.Website, LogoURL: r.LogoURL,
		PrimaryColor: r.PrimaryColor, SecondaryColor: r.SecondaryColor, CreatedAt: r.CreatedAt,
		UpdatedAt: r.UpdatedAt, APIKeyHash: r.APIKeyHash, OwnerCount: r.OwnerCount, Deleting: r.Deleting,
		Version: it.Version,
	}, nil
}

// memberRecord is the stored form of a member.
type memberRecord struct {
	UserID   string    `json:"user_id"`
	Email    string    `json:"email,omitempty"`
	Role     string    `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

func memberItem(m *tenant.Member) (store.Item, error) {
	b, err := json.Marshal(memberRecord{UserID: m.UserID, Email: m.Email, Role: m.Role, JoinedAt: m.JoinedAt})
	if err != nil {
		return store.Item{}, fmt.Errorf("encoding member: %w", err)
	}
	return store.Item{Key: memberKey(m.TenantID, m.UserID), Data: b}, nil
}

func memberFrom(tenantID string, it store.Item) (tenant.Member, error) {
	var r memberRecord
	if err := json.Unmarshal(it.Data, &r); err != nil {
		return tenant.Member{}, fmt.Errorf("decoding member %s %s: %w", it.PK, it.SK, err)
	}
	return tenant.Member{TenantID: tenantID, UserID: r.UserID, Email: r.Email, Role: r.Role, JoinedAt: r.JoinedAt, Version: it.Version}, nil
}

// refRecord is the body of index items: the tenant they point to.
type refRecord struct {
	TenantID string `json:"tenant_id"`
}

func refItem(key store.Key, tenantID string) store.Item {
	b, _ := json.Marshal(refRecord{TenantID: tenantID}) // cannot fail: one string field
	return store.Item{Key: key, Data: b}
}

// CreateTenant implements tenant.Repository.
func (r *Repo) CreateTenant(ctx context.Context, t *tenant.Tenant) error {
	it, err := tenantItem(t)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfAbsent())
	if err != nil {
		return domainErr(err)
	}
	t.Version = v
	return nil
}

// GetTenant implements tenant.Repository.
func (r *Repo) GetTenant(ctx context.Context, id string) (tenant.Tenant, error) {
	it, err := r.t.Get(ctx, tenantKey(id))
	if err != nil {
		return tenant.Tenant{}, domainErr(err)
	}
	return tenantFrom(it)
}

// UpdateTenant implements tenant.Repository.
func (r *Repo) UpdateTenant(ctx context.Context, t *tenant.Tenant) error {
	it, err := tenantItem(t)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfVersion(t.Version))
	if err != nil {
		return domainErr(err)
	}
	t.Version = v
	return nil
}

// DeleteTenant implements tenant.Repository.
func (r *Repo) DeleteTenant(ctx context.Context, id string) error {
	return r.deleteExisting(ctx, tenantKey(id))
}

// GetTenantWithMember implements tenant.Repository.
func (r *Repo) GetTenantWithMember(ctx context.Context, tenantID, userID string) (tenant.Tenant, tenant.Member, error) {
	items, err := r.t.BatchGet(ctx, []store.Key{tenantKey(tenantID), memberKey(tenantID, userID)})
	if err != nil {
		return tenant.Tenant{}, tenant.Member{}, domainErr(err)
	}
	var (
		t      tenant.Tenant
		m      tenant.Member
		haveT  bool
		mKeySK = memberKey(tenantID, userID).SK
	)
	for _, it := range items {
		switch it.SK {
		case tenantSK:
			if t, err = tenantFrom(it); err != nil {
				return tenant.Tenant{}, tenant.Member{}, err
			}
			haveT = true
		case mKeySK:
			if m, err = memberFrom(tenantID, it); err != nil {
				return tenant.Tenant{}, tenant.Member{}, err
			}
		}
	}
	if !haveT {
		return tenant.Tenant{}, tenant.Member{}, tenant.ErrNotFound
	}
	if m.UserID != userID { // a hash collision is not a membership
		m = tenant.Member{}
	}
	return t, m, nil
}

// CreateMember implements tenant.Repository.
func (r *Repo) CreateMember(ctx context.Context, m *tenant.Member) error {
	it, err := memberItem(m)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfAbsent())
	if err != nil {
		return domainErr(err)
	}
	m.Version = v
	return nil
}

// GetMember implements tenant.Repository.
func (r *Repo) GetMember(ctx context.Context, tenantID, userID string) (tenant.Member, error) {
	it, err := r.t.Get(ctx, memberKey(tenantID, userID))
	if err != nil {
		return tenant.Member{}, domainErr(err)
	}
	m, err := memberFrom(tenantID, it)
	if err != nil {
		return tenant.Member{}, err
	}
	if m.UserID != userID {
		return tenant.Member{}, tenant.ErrNotFound
	}
	return m, nil
}

// UpdateMember implements tenant.Repository.
func (r *Repo) UpdateMember(ctx context.Context, m *tenant.Member) error {
	it, err := memberItem(m)
	if err != nil {
		return err
	}
	v, err := r.t.Put(ctx, it, store.IfVersion(m.Version))
	if err != nil {
		return domainErr(err)
	}
	m.Version = v
	return nil
}

// DeleteMember implements tenant.Repository.
func (r *Repo) DeleteMember(ctx context.Context, tenantID, userID string, version int64) error {
	if version == 0 {
		return r.deleteExisting(ctx, memberKey(tenantID, userID))
	}
	return domainErr(r.t.Delete(ctx, memberKey(tenantID, userID), store.IfVersion(version)))
}

// ListMembers implements tenant.Repository.
func (r *Repo) ListMembers(ctx context.Context, tenantID string, limit int, cursor string) ([]tenant.Member, string, error) {
	page, err := r.t.Query(ctx, tenantPrefix+tenantID, store.QueryOptions{Prefix: memberPrefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	out := make([]tenant.Member, 0, len(page.Items))
	for _, it := range page.Items {
		m, err := memberFrom(tenantID, it)
		if err != nil {
			return nil, "", err
		}
		out = append(out, m)
	}
	return out, page.Cursor, nil
}

// PutUserIndex implements tenant.Repository.
func (r *Repo) PutUserIndex(ctx context.Context, userID, tenantID string) error {
	_, err := r.t.Put(ctx, refItem(userIndexKey(userID, tenantID), tenantID), store.IfAbsent())
	return domainErr(err)
}

// DeleteUserIndex implements tenant.Repository.
func (r *Repo) DeleteUserIndex(ctx context.Context, userID, tenantID string) error {
	return r.deleteExisting(ctx, userIndexKey(userID, tenantID))
}

// ListUserIndex implements tenant.Repository.
func (r *Repo) ListUserIndex(ctx context.Context, userID string, limit int, cursor string) ([]string, string, error) {
	page, err := r.t.Query(ctx, userPrefix+UserHash(userID), store.QueryOptions{Prefix: tenantPrefix, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", domainErr(err)
	}
	ids := make([]string, 0, len(page.Items))
	for _, it := range page.Items {
		ids = append(ids, strings.TrimPrefix(it.SK, tenantPrefix))
	}
	return ids, page.Cursor, nil
}

// GetMemberships implements tenant.Repository.
func (r *Repo) GetMemberships(ctx context.Context, userID string, tenantIDs []string) ([]tenant.Membership, error) {
	out := make([]tenant.Membership, 0, len(tenantIDs))
	uh := memberPrefix + UserHash(userID)
	for start := 0; start < len(tenantIDs); start += maxBatch / 2 {
		chunk := tenantIDs[start:min(start+maxBatch/2, len(tenantIDs))]
		keys := make([]store.Key, 0, 2*len(chunk))
		for _, id := range chunk {
			keys = append(keys, tenantKey(id), memberKey(id, userID))
		}
		items, err := r.t.BatchGet(ctx, keys)
		if err != nil {
			return nil, domainErr(err)
		}
		found := make(map[store.Key]store.Item, len(items))
		for _, it := range items {
			found[it.Key] = it
		}
		for _, id := range chunk {
			ti, okT := found[tenantKey(id)]
			mi, okM := found[store.Key{PK: tenantPrefix + id, SK: uh}]
			if !okT || !okM {
				continue
			}
			t, err := tenantFrom(ti)
			if err != nil {
				return nil, err
			}
			m, err := memberFrom(id, mi)
			if err != nil {
				return nil, err
			}
			if m.UserID != userID {
				continue
			}
			out = append(out, tenant.Membership{Tenant: t, Role: m.Role})
		}
	}
	return out, nil
}

// PutAPIKey implements tenant.Repository.
func (r *Repo) PutAPIKey(ctx context.Context, hash, tenantID string) error {
	_, err := r.t.Put(ctx, refItem(apiKeyKey(hash), tenantID), store.IfAbsent())
	return domainErr(err)
}

// GetAPIKey implements tenant.Repository.
func (r *Repo) GetAPIKey(ctx context.Context, hash string) (string, error) {
	it, err := r.t.Get(ctx, apiKeyKey(hash))
	if err != nil {
		return "", domainErr(err)
	}
	var ref refRecord
	if err := json.Unmarshal(it.Data, &ref); err != nil {
		return "", fmt.Errorf("decoding API key index: %w", err)
	}
	return ref.TenantID, nil
}

// DeleteAPIKey implements tenant.Repository.
func (r *Repo) DeleteAPIKey(ctx context.Context, hash string) error {
	return r.deleteExisting(ctx, apiKeyKey(hash))
}

// AddOwned implements tenant.Repository.
func (r *Repo) AddOwned(ctx context.Context, userID string, delta int64, max *int64) (int64, error) {
	zero := int64(0)
	n, err := r.t.Add(ctx, ownedKey(userID), delta, store.AddOptions{Min: &zero, Max: max})
	return n, domainErr(err)
}

// Owned returns how many tenants userID owns by the counter (tests and operators).
func (r *Repo) Owned(ctx context.Context, userID string) (int64, error) {
	it, err := r.t.Get(ctx, ownedKey(userID))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, domainErr(err)
	}
	return it.Count, nil
}
