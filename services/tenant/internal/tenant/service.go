package tenant

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Defaults of list operations.
const (
	DefaultListLimit   = 50
	MaxListLimit       = 100
	DefaultLookupLimit = 2
)

// maxAttempts bounds optimistic read-modify-write retries before giving up with 409.
const maxAttempts = 8

// Service holds the use cases.
type Service struct {
	repo   Repository
	events Events
	now    func() time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// NewService returns the use cases on repo, publishing through events.
func NewService(repo Repository, events Events, opts ...Option) *Service {
	s := &Service{repo: repo, events: events, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// access reads a live tenant and the actor's role in it. Roles come from the member
// items, not from the gateway's (cached) view, so every rule here uses current data.
// A platform admin or a system caller who is not a member gets role "" (read-only);
// anybody else without access gets ErrNotFound, never a hint that the tenant exists.
func (s *Service) access(ctx context.Context, actor Actor, tenantID string) (Tenant, string, error) {
	switch actor.Kind {
	case natsrpc.KindUser, natsrpc.KindAPIKey, natsrpc.KindSystem:
	default:
		return Tenant{}, "", errorf(ErrForbidden, "this caller may not use tenant operations")
	}
	var (
		t   Tenant
		m   Member
		err error
	)
	if actor.Kind == natsrpc.KindUser {
		t, m, err = s.repo.GetTenantWithMember(ctx, tenantID, actor.ID)
	} else {
		t, err = s.repo.GetTenant(ctx, tenantID)
	}
	if err != nil {
		return Tenant{}, "", notFoundTenant(err)
	}
	if t.Deleting {
		return Tenant{}, "", errorf(ErrNotFound, "tenant not found")
	}
	switch {
	case actor.Kind == natsrpc.KindAPIKey && actor.ID == tenantID:
		return t, natsrpc.RoleAdmin, nil
	case actor.Kind == natsrpc.KindUser && m.Role != "":
		return t, m.Role, nil
	case actor.PlatformAdmin || actor.Kind == natsrpc.KindSystem:
		return t, "", nil
	}
	return Tenant{}, "", errorf(ErrNotFound, "tenant not found")
}

// memberAccess is access for reads that need membership (or the tenant's API key, or a
// system caller: other services reading for themselves).
func (s *Service) memberAccess(ctx context.Context, actor Actor, tenantID string) (Tenant, string, error) {
	t, role, err := s.access(ctx, actor, tenantID)
	if err == nil && role == "" && actor.Kind != natsrpc.KindSystem {
		err = errorf(ErrForbidden, "only members of the tenant may do this")
	}
	return t, role, err
}

func notFoundTenant(err error) error {
	if errors.Is(err, ErrNotFound) {
		return errorf(ErrNotFound, "tenant not found")
	}
	return err
}

// updateTenant is a version-conditioned read-modify-write of a live tenant: fn changes
// the copy read (or returns an error to give up), and a lost race re-reads and retries.
func (s *Service) updateTenant(ctx context.Context, id string, fn func(t *Tenant) error) (Tenant, error) {
	for attempt := range maxAttempts {
		t, err := s.repo.GetTenant(ctx, id)
		if err != nil {
			return Tenant{}, notFoundTenant(err)
		}
		if t.Deleting {
			return Tenant{}, errorf(ErrNotFound, "tenant not found")
		}
		if err := fn(&t); err != nil {
			return Tenant{}, err
		}
		err = s.repo.UpdateTenant(ctx, &t)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Tenant{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return Tenant{}, err
		}
	}
	return Tenant{}, errorf(ErrConflict, "the tenant is being changed by other requests; try again")
}

// backoff spreads out writers retrying the same item.
var backoff = domain.Backoff

// newAPIKey returns a fresh key (art_ + 32 random bytes, base64url) and its hash.
func newAPIKey() (key, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	key = tenantv1.APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashAPIKey(key)
}

// Create makes a tenant owned by the calling user and returns it with its API key, the
// only time the key is seen in clear.
//
// Writes, without transactions: the owned-tenants counter first (the limit), then the
// member, user-index and API-key items, and the tenant item last as the commit. Until the
// tenant item exists the others are invisible (every read checks the tenant); on failure
// they are deleted again and the counter is decremented.
func (s *Service) Create(ctx context.Context, actor Actor, in CreateInput) (Tenant, string, error) {
	if actor.Kind != natsrpc.KindUser || actor.ID == "" {
		return Tenant{}, "", errorf(ErrForbidden, "only users may create tenants")
	}
	tier := in.Tier
	if tier == "" {
		tier = plans.DefaultTier
	}
	ok := plans.Valid(tier)
	switch {
	case !ok:
		return Tenant{}, "", &ValidationError{Field: "subscription_tier", Message: "must be one of free, basic, pro, enterprise"}
	case tier == plans.Enterprise && !actor.PlatformAdmin:
		return Tenant{}, "", &ValidationError{Field: "subscription_tier", Message: "only a platform admin may choose enterprise"}
	case in.TrialDays < 0:
		return Tenant{}, "", &ValidationError{Field: "trial_days", Message: "must not be negative"}
	case in.TrialDays > tenantv1.MaxTrialDays && !actor.PlatformAdmin:
		return Tenant{}, "", &ValidationError{Field: "trial_days", Message: fmt.Sprintf("must be at most %d", tenantv1.MaxTrialDays)}
	}

	// Platform admins are counted too (so deletions keep the counter right) but not capped.
	var limit *int64
	if !actor.PlatformAdmin {
		l := int64(tenantv1.MaxOwnedTenants)
		limit = &l
	}
	if _, err := s.repo.AddOwned(ctx, actor.ID, 1, limit); err != nil {
		if errors.Is(err, ErrConflict) {
			return Tenant{}, "", errorf(ErrTooManyTenants, "you already own %d tenants, the most one user may own; delete one first", tenantv1.MaxOwnedTenants)
		}
		return Tenant{}, "", err
	}
	undo := domain.Compensation{func(ctx context.Context) error {
		_, err := s.repo.AddOwned(ctx, actor.ID, -1, nil)
		return err
	}}

	id, err := uuid.NewRandom()
	if err != nil {
		undo.Run(ctx)
		return Tenant{}, "", fmt.Errorf("tenant id: %w", err)
	}
	now := s.clock()
	key, hash := newAPIKey()
	t := Tenant{
		ID:            id.String(),
		Name:          in.Name,
		AdminEmail:    in.AdminEmail,
		Tier:          tier,
		Status:        tenantv1.StatusActive,
		PaymentStatus: tenantv1.PaymentActive,
		Metadata:      in.Metadata,
		CreatedAt:     now,
		UpdatedAt:     now,
		APIKeyHash:    hash,
		OwnerCount:    1,
	}
	if t.Metadata == nil {
		t.Metadata = map[string]any{}
	}
	if in.TrialDays > 0 {
		exp := now.Add(time.Duration(in.TrialDays) * 24 * time.Hour)
		t.PaymentStatus = tenantv1.PaymentTrial
		t.SubscriptionExpiresAt = &exp
	}
	m := Member{TenantID: t.ID, UserID: actor.ID, Email: actor.Email, Role: natsrpc.RoleOwner, JoinedAt: now}

	steps := []struct {
		do   func(context.Context) error
		undo func(context.Context) error
	}{
		{func(ctx context.Context) error { return s.repo.CreateMember(ctx, &m) },
			func(ctx context.Context) error { return s.repo.DeleteMember(ctx, t.ID, actor.ID, 0) }},
		{func(ctx context.Context) error { return s.repo.PutUserIndex(ctx, actor.ID, t.ID) },
			func(ctx context.Context) error { return s.repo.DeleteUserIndex(ctx, actor.ID, t.ID) }},
		{func(ctx context.Context) error { return s.repo.PutAPIKey(ctx, hash, t.ID) },
			func(ctx context.Context) error { return s.repo.DeleteAPIKey(ctx, hash) }},
		{func(ctx context.Context) error { return s.repo.CreateTenant(ctx, &t) }, nil},
	}
	for _, st := range steps {
		if err := st.do(ctx); err != nil {
			undo.Run(ctx)
			return Tenant{}, "", err
		}
		if st.undo != nil {
			undo = append(undo, st.undo)
		}
	}
	return t, key, nil
}

// Get returns a tenant the actor may see.
func (s *Service) Get(ctx context.Context, actor Actor, tenantID string) (Tenant, error) {
	t, _, err := s.access(ctx, actor, tenantID)
	return t, err
}

// List pages through the calling user's tenants, each with the user's role.
func (s *Service) List(ctx context.Context, actor Actor, limit int, cursor string) ([]Membership, string, error) {
	if actor.Kind != natsrpc.KindUser || actor.ID == "" {
		return nil, "", errorf(ErrForbidden, "only users have a list of tenants")
	}
	return s.memberships(ctx, actor.ID, clampLimit(limit, DefaultListLimit), cursor)
}

func clampLimit(limit, def int) int {
	switch {
	case limit <= 0:
		return def
	case limit > MaxListLimit:
		return MaxListLimit
	}
	return limit
}

// memberships reads the user's index items and keeps those confirmed by a member item
// of a live tenant. Index items that fail the check (left by an interrupted write) are
// skipped without producing short or empty pages: it keeps reading until the page is
// full, and returns a cursor only if a confirmed membership follows.
func (s *Service) memberships(ctx context.Context, userID string, limit int, cursor string) ([]Membership, string, error) {
	out := make([]Membership, 0, limit)
	for {
		// Reading exactly what is missing makes the store's cursor land right after the
		// last entry this page consumed.
		ids, next, err := s.repo.ListUserIndex(ctx, userID, limit-len(out), cursor)
		if err != nil {
			return nil, "", err
		}
		found, err := s.confirm(ctx, userID, ids)
		if err != nil {
			return nil, "", err
		}
		out = append(out, found...)
		cursor = next
		if cursor == "" {
			return out, "", nil
		}
		if len(out) == limit {
			break
		}
	}
	more, err := s.anyConfirmed(ctx, userID, cursor)
	if err != nil || !more {
		return out, "", err
	}
	return out, cursor, nil
}

// peekSize is the page size used to look past a full page for one more membership.
const peekSize = 10

func (s *Service) anyConfirmed(ctx context.Context, userID, cursor string) (bool, error) {
	for cursor != "" {
		ids, next, err := s.repo.ListUserIndex(ctx, userID, peekSize, cursor)
		if err != nil {
			return false, err
		}
		found, err := s.confirm(ctx, userID, ids)
		if err != nil || len(found) > 0 {
			return len(found) > 0, err
		}
		cursor = next
	}
	return false, nil
}

func (s *Service) confirm(ctx context.Context, userID string, ids []string) ([]Membership, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ms, err := s.repo.GetMemberships(ctx, userID, ids)
	if err != nil {
		return nil, err
	}
	live := ms[:0]
	for _, m := range ms {
		if !m.Tenant.Deleting {
			live = append(live, m)
		}
	}
	return live, nil
}

// Update applies the writable fields of a tenant (admin or owner, or the API key).
func (s *Service) Update(ctx context.Context, actor Actor, tenantID string, ch Changes) (Tenant, error) {
	_, role, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return Tenant{}, err
	}
	if natsrpc.RoleRank(role) < natsrpc.RoleRank(natsrpc.RoleAdmin) {
		return Tenant{}, errorf(ErrForbidden, "changing tenant settings needs the admin or owner role")
	}
	if err := ch.check(); err != nil {
		return Tenant{}, err
	}
	return s.updateTenant(ctx, tenantID, func(t *Tenant) error {
		ch.apply(t)
		t.UpdatedAt = s.clock()
		return nil
	})
}

// check re-states the rules that make a Changes value meaningless (the contract's
// Validate checks formats before it reaches the domain).
func (ch Changes) check() error {
	if ch.Name.Set && (ch.Name.Null || ch.Name.Value == "") {
		return &ValidationError{Field: "name", Message: "cannot be empty or null"}
	}
	if ch.AdminEmail.Set && (ch.AdminEmail.Null || ch.AdminEmail.Value == "") {
		return &ValidationError{Field: "admin_email", Message: "cannot be empty or null"}
	}
	return nil
}

func (ch Changes) apply(t *Tenant) {
	if ch.Name.HasValue() {
		t.Name = ch.Name.Value
	}
	if ch.AdminEmail.HasValue() {
		t.AdminEmail = ch.AdminEmail.Value
	}
	if ch.Metadata.Set {
		t.Metadata = ch.Metadata.Value
		if t.Metadata == nil { // null clears to the empty object
			t.Metadata = map[string]any{}
		}
	}
	setOptional(&t.Description, ch.Description)
	setOptional(&t.Website, ch.Website)
	setOptional(&t.LogoURL, ch.LogoURL)
	setOptional(&t.PrimaryColor, ch.PrimaryColor)
	setOptional(&t.SecondaryColor, ch.SecondaryColor)
}

func setOptional(dst **string, f patch.Field[string]) {
	switch {
	case !f.Set:
	case f.Null:
		*dst = nil
	default:
		v := f.Value
		*dst = &v
	}
}
