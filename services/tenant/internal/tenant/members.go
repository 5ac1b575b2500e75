package tenant

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// The tenant item's owner_count guards "a tenant always keeps an owner" with one
// conditional write, but a role change touches two items (member and tenant) without a
// transaction. The order makes any interrupted sequence err on the side of undercounting
// owners, which can only refuse a later demotion, never leave zero owners:
//   - demote or remove an owner: first decrement owner_count with a version condition
//     that it is > 1 (else ErrLastOwner), then change the member; if the member write
//     loses a race, the decrement is compensated.
//   - promote to owner: change the member first, then increment owner_count.
// Two concurrent demotions of the last two owners both read owner_count 2; only one
// version-conditioned decrement wins, the other re-reads 1 and gets ErrLastOwner.

// ListMembers pages through a tenant's members (any member, or the tenant's API key).
func (s *Service) ListMembers(ctx context.Context, actor Actor, tenantID string, limit int, cursor string) ([]Member, string, error) {
	if _, _, err := s.memberAccess(ctx, actor, tenantID); err != nil {
		return nil, "", err
	}
	return s.repo.ListMembers(ctx, tenantID, clampLimit(limit, DefaultListLimit), cursor)
}

// AddMember adds a user to a tenant with a role.
func (s *Service) AddMember(ctx context.Context, actor Actor, tenantID string, in MemberInput) (Member, error) {
	_, actorRole, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return Member{}, err
	}
	if err := canManageMembers(actor, actorRole); err != nil {
		return Member{}, err
	}
	if in.UserID == "" || len(in.UserID) > tenantv1.MaxUserID {
		return Member{}, &ValidationError{Field: "user_id", Message: "is required and at most 256 characters"}
	}
	if err := checkRoleChange(actorRole, "", in.Role); err != nil {
		return Member{}, err
	}
	// The index item first: the member item is the commit, and an index item without
	// one is ignored by readers.
	if err := s.repo.PutUserIndex(ctx, in.UserID, tenantID); err != nil && !errors.Is(err, ErrConflict) {
		return Member{}, err
	}
	m := Member{TenantID: tenantID, UserID: in.UserID, Email: in.Email, Role: in.Role, JoinedAt: s.clock()}
	if err := s.repo.CreateMember(ctx, &m); err != nil {
		if errors.Is(err, ErrConflict) {
			return Member{}, errorf(ErrConflict, "this user is already a member of the tenant")
		}
		return Member{}, err
	}
	s.roleChanged(ctx, tenantID, m.UserID, "", m.Role)
	return m, nil
}

// UpdateMember changes a member's role.
func (s *Service) UpdateMember(ctx context.Context, actor Actor, tenantID, userID, role string) (Member, error) {
	_, actorRole, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return Member{}, err
	}
	if err := canManageMembers(actor, actorRole); err != nil {
		return Member{}, err
	}
	if !validRole(role) {
		return Member{}, &ValidationError{Field: "role", Message: "must be one of owner, admin, member, viewer"}
	}
	for attempt := range maxAttempts {
		m, err := s.getMember(ctx, tenantID, userID)
		if err != nil {
			return Member{}, err
		}
		if err := checkRoleChange(actorRole, m.Role, role); err != nil {
			return Member{}, err
		}
		if m.Role == role {
			return m, nil
		}
		from := m.Role
		demote := from == natsrpc.RoleOwner
		if demote {
			if err := s.changeOwnerCount(ctx, tenantID, -1); err != nil {
				return Member{}, err
			}
		}
		m.Role = role
		err = s.repo.UpdateMember(ctx, &m)
		if err == nil {
			s.roleChanged(ctx, tenantID, userID, from, role)
			return m, nil
		}
		if demote {
			s.restoreOwnerCount(ctx, tenantID)
		}
		if !errors.Is(err, ErrConflict) {
			return Member{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return Member{}, err
		}
	}
	return Member{}, errorf(ErrConflict, "the member is being changed by other requests; try again")
}

// RemoveMember takes a user out of a tenant.
func (s *Service) RemoveMember(ctx context.Context, actor Actor, tenantID, userID string) error {
	_, actorRole, err := s.access(ctx, actor, tenantID)
	if err != nil {
		return err
	}
	if err := canManageMembers(actor, actorRole); err != nil {
		return err
	}
	for attempt := range maxAttempts {
		m, err := s.getMember(ctx, tenantID, userID)
		if err != nil {
			return err
		}
		if err := checkRemoval(actorRole, m.Role); err != nil {
			return err
		}
		owner := m.Role == natsrpc.RoleOwner
		if owner {
			if err := s.changeOwnerCount(ctx, tenantID, -1); err != nil {
				return err
			}
		}
		// At the version read: a concurrent promotion to owner must not slip past the
		// owner count.
		err = s.repo.DeleteMember(ctx, tenantID, userID, m.Version)
		if err == nil {
			// The member item is gone, so the index item is a dangling hint now.
			if err := s.repo.DeleteUserIndex(ctx, userID, tenantID); err != nil && !errors.Is(err, ErrNotFound) {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("removing a user index item failed")
			}
			s.roleChanged(ctx, tenantID, userID, m.Role, "")
			return nil
		}
		if owner {
			s.restoreOwnerCount(ctx, tenantID)
		}
		if !errors.Is(err, ErrConflict) && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return errorf(ErrConflict, "the member is being changed by other requests; try again")
}

func (s *Service) getMember(ctx context.Context, tenantID, userID string) (Member, error) {
	m, err := s.repo.GetMember(ctx, tenantID, userID)
	if errors.Is(err, ErrNotFound) {
		return Member{}, errorf(ErrNotFound, "member not found")
	}
	return m, err
}

// changeOwnerCount moves owner_count by delta; a decrement that would leave no owner
// fails with ErrLastOwner.
func (s *Service) changeOwnerCount(ctx context.Context, tenantID string, delta int) error {
	_, err := s.updateTenant(ctx, tenantID, func(t *Tenant) error {
		if delta < 0 && t.OwnerCount+delta < 1 {
			return errorf(ErrLastOwner, "the last owner cannot be removed or demoted")
		}
		t.OwnerCount += delta
		return nil
	})
	return err
}

// restoreOwnerCount undoes a decrement whose member write did not happen. If it fails
// the count stays one low: the safe direction.
func (s *Service) restoreOwnerCount(ctx context.Context, tenantID string) {
	domain.Compensation{func(ctx context.Context) error { return s.changeOwnerCount(ctx, tenantID, +1) }}.Run(ctx)
}

// roleChanged finishes a committed member change: a new owner is counted on the tenant
// and in the user's owned-tenants counter, a former owner leaves that counter, and
// gateways forget their cached memberships. Failures here leave counts low (the safe
// direction) and are logged.
func (s *Service) roleChanged(ctx context.Context, tenantID, userID, from, to string) {
	log := zerolog.Ctx(ctx)
	switch {
	case to == natsrpc.RoleOwner && from != natsrpc.RoleOwner:
		if err := s.changeOwnerCount(ctx, tenantID, +1); err != nil {
			log.Warn().Err(err).Msg("counting a new owner failed; the owner count stays low")
		}
		if _, err := s.repo.AddOwned(ctx, userID, 1, nil); err != nil {
			log.Warn().Err(err).Msg("counting an owned tenant failed")
		}
	case from == natsrpc.RoleOwner && to != natsrpc.RoleOwner:
		if _, err := s.repo.AddOwned(ctx, userID, -1, nil); err != nil && !errors.Is(err, ErrConflict) {
			log.Warn().Err(err).Msg("uncounting an owned tenant failed")
		}
	}
	s.events.TenantChanged(ctx, tenantID, tenantv1.ChangeMembers)
}
