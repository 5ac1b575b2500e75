package tenant

import (
	"context"
	"crypto/subtle"
	"errors"
)

// LookupMembership returns userID's role in a live tenant, for the gateway.
func (s *Service) LookupMembership(ctx context.Context, tenantID, userID string) (Membership, error) {
	if userID == "" {
		return Membership{}, errorf(ErrNotFound, "membership not found")
	}
	t, m, err := s.repo.GetTenantWithMember(ctx, tenantID, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Membership{}, errorf(ErrNotFound, "membership not found")
	case err != nil:
		return Membership{}, err
	case t.Deleting || m.Role == "":
		return Membership{}, errorf(ErrNotFound, "membership not found")
	}
	return Membership{Tenant: t, Role: m.Role}, nil
}

// LookupUserTenants returns up to limit (default 2) of userID's memberships and whether
// there are more: the gateway only needs to know if there is exactly one.
func (s *Service) LookupUserTenants(ctx context.Context, userID string, limit int) ([]Membership, bool, error) {
	if userID == "" {
		return nil, false, nil
	}
	ms, cursor, err := s.memberships(ctx, userID, clampLimit(limit, DefaultLookupLimit), "")
	return ms, cursor != "", err
}

// LookupAPIKey returns the live tenant whose current API key has hash. A rotated key's
// index item may linger; the tenant's own hash decides.
func (s *Service) LookupAPIKey(ctx context.Context, hash string) (Tenant, error) {
	notFound := errorf(ErrNotFound, "API key not found")
	if !IsKeyHash(hash) {
		return Tenant{}, notFound
	}
	tenantID, err := s.repo.GetAPIKey(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, notFound
	}
	if err != nil {
		return Tenant{}, err
	}
	t, err := s.repo.GetTenant(ctx, tenantID)
	if errors.Is(err, ErrNotFound) {
		return Tenant{}, notFound
	}
	if err != nil {
		return Tenant{}, err
	}
	if t.Deleting || subtle.ConstantTimeCompare([]byte(t.APIKeyHash), []byte(hash)) != 1 {
		return Tenant{}, notFound
	}
	return t, nil
}

// LookupTenant returns a live tenant (the gateway asks for agents' tenants).
func (s *Service) LookupTenant(ctx context.Context, tenantID string) (Tenant, error) {
	t, err := s.repo.GetTenant(ctx, tenantID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Tenant{}, errorf(ErrNotFound, "tenant not found")
	case err != nil:
		return Tenant{}, err
	case t.Deleting:
		return Tenant{}, errorf(ErrNotFound, "tenant not found")
	}
	return t, nil
}
