package tenant

import (
	"context"
	"errors"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// purgePage is how many member items Purge handles per read.
const purgePage = 100

// Purge removes everything the tenant service keeps for a deleted tenant: member items
// with their user-index items, the owners' owned-tenants counts, the API key index item,
// and the tenant item last (so a retry still finds what remains). It is idempotent: the
// cascade consumer calls it again after a crash or a redelivery.
func (s *Service) Purge(ctx context.Context, tenantID string) error {
	cursor := ""
	for {
		members, next, err := s.repo.ListMembers(ctx, tenantID, purgePage, cursor)
		if err != nil {
			return err
		}
		for _, m := range members {
			// The index item before the member item: once the member item is gone a
			// redelivery could no longer find the index item.
			if err := s.repo.DeleteUserIndex(ctx, m.UserID, tenantID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			err := s.repo.DeleteMember(ctx, tenantID, m.UserID, 0)
			if errors.Is(err, ErrNotFound) {
				continue // someone else deleted it, and uncounted it
			}
			if err != nil {
				return err
			}
			// Only after our own delete succeeded, so a redelivery never uncounts twice.
			if m.Role == natsrpc.RoleOwner {
				if _, err := s.repo.AddOwned(ctx, m.UserID, -1, nil); err != nil && !errors.Is(err, ErrConflict) {
					return err
				}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	t, err := s.repo.GetTenant(ctx, tenantID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.APIKeyHash != "" {
		if err := s.repo.DeleteAPIKey(ctx, t.APIKeyHash); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	if err := s.repo.DeleteTenant(ctx, tenantID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}
