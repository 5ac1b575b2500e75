// Package sshkey is the domain of the sshkey service: agents' SSH public keys (parsing,
// fingerprints, the type and size rules, per-tenant uniqueness and the plan's key limit)
// and the challenge–response login (challenges bound to a key or agent and consumed by
// the first attempt, signature verification, rate limits), as use cases on Service that
// keep the multi-item invariants without transactions.
package sshkey

import (
	"context"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// Key is an SSH key as stored.
type Key struct {
	ID          string
	TenantID    string
	Name        string
	PublicKey   string // authorized_keys form without options or comment
	KeyType     string // sshkeyv1.TypeAccess, TypeAgent or TypeDeployment
	AgentID     string // "" when not bound to an agent
	Fingerprint string
	Algorithm   string
	Status      string // sshkeyv1.StatusActive or StatusRevoked
	RevokedAt   *time.Time
	// RevocationReason is nil when none was given.
	RevocationReason *string
	LastUsed         *time.Time
	Metadata         map[string]any
	CreatedAt        time.Time
	UpdatedAt        time.Time
	// Version is the store version read, for optimistic concurrency.
	Version int64
}

// Active reports whether the key has not been revoked.
func (k Key) Active() bool { return k.Status == sshkeyv1.StatusActive }

// CanLogIn reports whether the key may answer a login challenge for agentID ("" = the
// agent the key is bound to): only active agent keys bound to an agent log in.
func (k Key) CanLogIn(agentID string) bool {
	return k.Active() && k.KeyType == sshkeyv1.TypeAgent && k.AgentID != "" &&
		(agentID == "" || agentID == k.AgentID)
}

// Scope is who a tenant-scoped request is for, as the gateway resolved it.
type Scope struct {
	TenantID string
	// Plan is the tenant's tier; count limits come from plans.Get(Plan).
	Plan string
}

// CreateInput is a key to register. Ids are upper-case ULIDs (or "").
type CreateInput struct {
	Name      string
	PublicKey string
	KeyType   string // "" = agent when AgentID is given, else access
	AgentID   string
	Metadata  map[string]any
}

// ListFilter selects keys; empty fields do not filter.
type ListFilter struct {
	AgentID string
	KeyType string
}

// Login names a tenant and who will answer a challenge, with the caller's address.
type Login struct {
	TenantID string
	KeyID    string // upper-case ULID or ""
	AgentID  string // upper-case ULID or ""
	ClientIP string
}

// Challenge is an issued challenge.
type Challenge struct {
	TenantID  string
	Value     string // 64 lower-case hex characters
	KeyID     string
	AgentID   string
	ExpiresAt time.Time
	Version   int64
}

// Verified names who logged in.
type Verified struct {
	TenantID string
	AgentID  string
	KeyID    string
}

// Claim reserves a fingerprint in a tenant for one key.
type Claim struct {
	KeyID     string
	CreatedAt time.Time
	Version   int64
}

// Index names one secondary index of keys.
type Index struct {
	Kind  IndexKind
	Value string // the agent id or the key type
}

// IndexKind is what an index is by.
type IndexKind int

// The indexes of keys.
const (
	ByAgent IndexKind = iota + 1
	ByType
)

// Repository is the service's table, one conditional single-item write per call. It
// returns ErrNotFound, ErrConflict (a write condition or an Add bound failed),
// ErrInvalidCursor and ErrUnavailable.
type Repository interface {
	// CreateKey writes k if no key has its id and sets k.Version.
	CreateKey(ctx context.Context, k *Key) error
	GetKey(ctx context.Context, tenantID, keyID string) (Key, error)
	// GetKeys returns the keys among keyIDs that exist, in the order of keyIDs.
	GetKeys(ctx context.Context, tenantID string, keyIDs []string) ([]Key, error)
	// UpdateKey writes k if the stored version is still k.Version and sets the new one.
	UpdateKey(ctx context.Context, k *Key) error
	// DeleteKey removes the key at version: ErrConflict when it moved or is gone.
	DeleteKey(ctx context.Context, tenantID, keyID string, version int64) error
	// ListKeys pages through the tenant's keys in id order.
	ListKeys(ctx context.Context, tenantID string, limit int, cursor string) ([]Key, string, error)

	// CreateClaim reserves fingerprint for c.KeyID (ErrConflict when taken).
	CreateClaim(ctx context.Context, tenantID, fingerprint string, c Claim) error
	GetClaim(ctx context.Context, tenantID, fingerprint string) (Claim, error)
	// DeleteClaim removes the claim at version (ErrConflict when it moved or is gone).
	DeleteClaim(ctx context.Context, tenantID, fingerprint string, version int64) error

	// PutIndex records keyID under ix (an existing entry is fine).
	PutIndex(ctx context.Context, tenantID string, ix Index, keyID string) error
	// DeleteIndex removes the entry (absent is fine).
	DeleteIndex(ctx context.Context, tenantID string, ix Index, keyID string) error
	// ListIndex pages through the key ids under ix in id order. Entries are hints:
	// readers check them against the key.
	ListIndex(ctx context.Context, tenantID string, ix Index, limit int, cursor string) ([]string, string, error)

	// AddKeyCount adds delta to the tenant's key counter within [0, max] (no upper bound
	// when max is nil); ErrConflict when a bound would be crossed.
	AddKeyCount(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error)
	KeyCount(ctx context.Context, tenantID string) (int64, error)

	// CreateChallenge stores c until c.ExpiresAt (ErrConflict if its value exists).
	CreateChallenge(ctx context.Context, c *Challenge) error
	// GetChallenge returns a live challenge (ErrNotFound when absent or expired).
	GetChallenge(ctx context.Context, tenantID, value string) (Challenge, error)
	// DeleteChallenge removes it at version: ErrConflict when someone else did first.
	DeleteChallenge(ctx context.Context, tenantID, value string, version int64) error

	// Hit counts one request in a rate-limit window (bucket is already hashed): the
	// counter lives until expires; ErrConflict when it would pass max.
	Hit(ctx context.Context, bucket string, window time.Time, max int64, expires time.Time) error

	// PurgePage deletes up to limit items of the tenant's partition and returns how
	// many it found (0 = nothing left).
	PurgePage(ctx context.Context, tenantID string, limit int) (int, error)
}

// Agents asks the agent service about agents.
type Agents interface {
	// Lookup returns nil when agentID is a live agent of tenantID, ErrNotFound when it
	// is not, ErrUnavailable when the agent service cannot answer.
	Lookup(ctx context.Context, tenantID, agentID string) error
}

// Events publishes what other parts of the platform must learn.
type Events interface {
	// KeyChanged tells gateway caches to forget a key (revoked or deleted); best effort.
	KeyChanged(ctx context.Context, k Key, change string)
}
