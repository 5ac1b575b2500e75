// Package tenant is the domain of the tenant service: tenants, their members and API
// keys, the rules about who may change what, and the use cases (Service) that keep the
// multi-item invariants without transactions.
package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
)

// Tenant is a tenant as stored. APIKeyHash never leaves the service.
type Tenant struct {
	ID                    string
	Name                  string
	AdminEmail            string
	Tier                  string
	Status                string
	PaymentStatus         string
	SubscriptionExpiresAt *time.Time
	Metadata              map[string]any
	Description           *string
	Website               *string
	LogoURL               *string
	PrimaryColor          *string
	SecondaryColor        *string
	CreatedAt             time.Time
	UpdatedAt             time.Time

	// APIKeyHash is the SHA-256 (hex) of the current API key.
	APIKeyHash string
	// OwnerCount counts owner members; it may undercount after an interrupted change,
	// never overcount (see the write order described in members.go).
	OwnerCount int
	// Deleting is set once the deletion event is stored: the tenant reads as absent.
	Deleting bool
	// Version is the store version read, for optimistic concurrency.
	Version int64
}

// Member is one user's membership of a tenant.
type Member struct {
	TenantID string
	UserID   string
	Email    string
	Role     string
	JoinedAt time.Time
	Version  int64
}

// Membership is a tenant with the role a user has in it.
type Membership struct {
	Tenant Tenant
	Role   string
}

// Actor is who asks, as the gateway authenticated it.
type Actor struct {
	Kind natsrpc.PrincipalKind
	// ID is the user id for users, the tenant id for API keys, the agent id for agents.
	ID            string
	Email         string
	PlatformAdmin bool
}

// CreateInput is a new tenant.
type CreateInput struct {
	Name       string
	AdminEmail string
	Tier       string // "" = plans.DefaultTier
	Metadata   map[string]any
	TrialDays  int
}

// Changes is a partial update of a tenant's writable fields: absent keeps, null clears,
// a value replaces wholesale.
type Changes struct {
	Name           patch.Field[string]
	AdminEmail     patch.Field[string]
	Metadata       patch.Field[map[string]any]
	Description    patch.Field[string]
	Website        patch.Field[string]
	LogoURL        patch.Field[string]
	PrimaryColor   patch.Field[string]
	SecondaryColor patch.Field[string]
}

// PlanChanges is what a platform admin may change; "" keeps the value.
type PlanChanges struct {
	Tier          string
	Status        string
	PaymentStatus string
}

// MemberInput is a member to add.
type MemberInput struct {
	UserID string
	Email  string
	Role   string
}

// Repository is the service's table, one conditional single-item write per call. It
// returns ErrNotFound, ErrConflict (a write condition failed), ErrInvalidCursor and
// ErrUnavailable.
type Repository interface {
	// CreateTenant writes t if no tenant has its id and sets t.Version.
	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, id string) (Tenant, error)
	// UpdateTenant writes t if the stored version is still t.Version and sets the new one.
	UpdateTenant(ctx context.Context, t *Tenant) error
	// DeleteTenant removes the tenant item (ErrNotFound if absent).
	DeleteTenant(ctx context.Context, id string) error
	// GetTenantWithMember reads the tenant and userID's member item in one round trip;
	// the member is the zero Member when userID is not a member.
	GetTenantWithMember(ctx context.Context, tenantID, userID string) (Tenant, Member, error)

	// CreateMember writes m if the user is not a member yet and sets m.Version.
	CreateMember(ctx context.Context, m *Member) error
	GetMember(ctx context.Context, tenantID, userID string) (Member, error)
	// UpdateMember writes m if the stored version is still m.Version.
	UpdateMember(ctx context.Context, m *Member) error
	// DeleteMember removes a member item at version (0: whatever its version);
	// ErrNotFound when absent, ErrConflict when the version moved.
	DeleteMember(ctx context.Context, tenantID, userID string, version int64) error
	ListMembers(ctx context.Context, tenantID string, limit int, cursor string) ([]Member, string, error)

	// PutUserIndex records that userID may be a member of tenantID (ErrConflict if the
	// entry exists). Entries are hints: readers check them against the member item.
	PutUserIndex(ctx context.Context, userID, tenantID string) error
	DeleteUserIndex(ctx context.Context, userID, tenantID string) error
	// ListUserIndex pages through the tenant ids indexed for userID, ordered by id.
	ListUserIndex(ctx context.Context, userID string, limit int, cursor string) ([]string, string, error)
	// GetMemberships returns, in order, the tenants among tenantIDs that exist and of
	// which userID has a member item.
	GetMemberships(ctx context.Context, userID string, tenantIDs []string) ([]Membership, error)

	// PutAPIKey indexes an API key hash to its tenant (ErrConflict if present).
	PutAPIKey(ctx context.Context, hash, tenantID string) error
	GetAPIKey(ctx context.Context, hash string) (string, error)
	DeleteAPIKey(ctx context.Context, hash string) error

	// AddOwned adds delta to the number of tenants userID owns, within [0, max] (no
	// upper bound when max is nil); ErrConflict when the bound would be crossed.
	AddOwned(ctx context.Context, userID string, delta int64, max *int64) (int64, error)
}

// Events publishes what other parts of the platform must learn.
type Events interface {
	// TenantDeleted stores the deletion event durably; it returns nil only once the
	// event is stored (it is the commit of a deletion).
	TenantDeleted(ctx context.Context, tenantID string, at time.Time) error
	// TenantChanged tells gateway caches to forget tenantID; best effort.
	TenantChanged(ctx context.Context, tenantID, change string)
}

// HashAPIKey is the one definition of how an API key is stored and looked up: SHA-256,
// lower-case hex.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// IsKeyHash reports whether s has the shape of HashAPIKey's output.
func IsKeyHash(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
