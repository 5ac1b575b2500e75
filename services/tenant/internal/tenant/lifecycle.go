package tenant

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// SetPlan changes a tenant's plan, status or payment status (platform admins only). A
// downgrade deletes nothing: counts over the new limits only block new creates.
func (s *Service) SetPlan(ctx context.Context, actor Actor, tenantID string, ch PlanChanges) (Tenant, error) {
	if !actor.PlatformAdmin {
		return Tenant{}, errorf(ErrForbidden, "only platform admins may change a tenant's plan or status")
	}
	var plan plans.Plan
	switch {
	case ch.Tier == "" && ch.Status == "" && ch.PaymentStatus == "":
		return Tenant{}, &ValidationError{Field: "subscription_tier", Message: "give subscription_tier, status or payment_status"}
	case ch.Tier != "":
		var ok bool
		if plan, ok = plans.Get(ch.Tier); !ok {
			return Tenant{}, &ValidationError{Field: "subscription_tier", Message: "must be one of free, basic, pro, enterprise"}
		}
	}
	if ch.Status != "" && ch.Status != tenantv1.StatusActive && ch.Status != tenantv1.StatusSuspended {
		return Tenant{}, &ValidationError{Field: "status", Message: "must be one of active, suspended"}
	}
	switch ch.PaymentStatus {
	case "", tenantv1.PaymentTrial, tenantv1.PaymentActive, tenantv1.PaymentPastDue:
	default:
		return Tenant{}, &ValidationError{Field: "payment_status", Message: "must be one of trial, active, past_due"}
	}
	t, err := s.updateTenant(ctx, tenantID, func(t *Tenant) error {
		if ch.Tier != "" {
			t.Tier = plan.ID
		}
		if ch.Status != "" {
			t.Status = ch.Status
		}
		if ch.PaymentStatus != "" {
			t.PaymentStatus = ch.PaymentStatus
		}
		t.UpdatedAt = s.clock()
		return nil
	})
	if err != nil {
		return Tenant{}, err
	}
	s.events.TenantChanged(ctx, tenantID, tenantv1.ChangeStatus)
	return t, nil
}

// Delete deletes a tenant (owners only). The stored TenantDeleted event is the commit:
// once it is acknowledged every service's cascade consumer will remove its part, this
// one included (Purge). Without the acknowledgement nothing happened and the caller gets
// ErrUnavailable. The tenant is then marked deleting so it reads as absent at once.
func (s *Service) Delete(ctx context.Context, actor Actor, tenantID string) error {
	_, role, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return err
	}
	if actor.Kind != natsrpc.KindUser || role != natsrpc.RoleOwner {
		return errorf(ErrForbidden, "only an owner may delete the tenant")
	}
	if err := s.events.TenantDeleted(ctx, tenantID, s.clock()); err != nil {
		return err
	}
	if _, err := s.updateTenant(ctx, tenantID, func(t *Tenant) error {
		t.Deleting = true
		return nil
	}); err != nil && !errors.Is(err, ErrNotFound) {
		// Best effort: the cascade removes the tenant anyway.
		zerolog.Ctx(ctx).Warn().Err(err).Msg("marking a deleted tenant failed; the cascade will remove it")
	}
	s.events.TenantChanged(ctx, tenantID, tenantv1.ChangeDeleted)
	return nil
}

// RotateAPIKey replaces the tenant's API key (admins and owners, not the key itself).
// The new index item is written first, then the tenant item's hash is swapped (the
// commit: lookups compare against it, so the old key stops working at that instant),
// then the old index item is removed.
func (s *Service) RotateAPIKey(ctx context.Context, actor Actor, tenantID string) (string, error) {
	_, role, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return "", err
	}
	if err := canManageMembers(actor, role); err != nil {
		return "", errorf(ErrForbidden, "rotating the API key needs a user with the admin or owner role")
	}
	key, hash := newAPIKey()
	if err := s.repo.PutAPIKey(ctx, hash, tenantID); err != nil {
		return "", err
	}
	var old string
	if _, err := s.updateTenant(ctx, tenantID, func(t *Tenant) error {
		old = t.APIKeyHash
		t.APIKeyHash = hash
		t.UpdatedAt = s.clock()
		return nil
	}); err != nil {
		domain.Compensation{func(ctx context.Context) error { return s.repo.DeleteAPIKey(ctx, hash) }}.Run(ctx)
		return "", err
	}
	if old != "" {
		if err := s.repo.DeleteAPIKey(ctx, old); err != nil && !errors.Is(err, ErrNotFound) {
			// Harmless: lookups check the tenant's current hash.
			zerolog.Ctx(ctx).Warn().Err(err).Msg("removing the old API key index item failed")
		}
	}
	s.events.TenantChanged(ctx, tenantID, tenantv1.ChangeAPIKey)
	return key, nil
}
