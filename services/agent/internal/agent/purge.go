package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// Purge removes every item the agent service keeps for a deleted tenant: agents, index
// items and counters. It is idempotent: the cascade consumer calls it again after a
// crash or a redelivery. The tenant's keys go through the sshkey service's own cascade.
func (s *Service) Purge(ctx context.Context, tenantID string) error {
	return s.repo.Purge(ctx, tenantID)
}

// repairPage is how many agent items Repair reads at a time.
const repairPage = 100

// Repair brings a tenant back to its invariants after crashes between writes: it
// finishes deletions that stopped half-way (marked longer than resumeAfter ago) and
// resets the counters to what the agent items say. Leftover index entries need no
// repair (lists skip them).
//
// Counters drift only when a process dies between the writes of one request; they
// never drift under concurrency. Repair reads the whole tenant (O(agents)), so it is an
// operator's tool, not a request path; a create or delete that runs at the same time
// may leave the counters off by that one change, which the next run corrects.
func (s *Service) Repair(ctx context.Context, tenantID string) error {
	ctx = natsrpc.WithIdentity(ctx, natsrpc.Identity{TenantID: tenantID, Kind: natsrpc.KindSystem, PrincipalID: "agent-repair"})
	total, byStatus := int64(0), map[string]int64{}
	cursor := ""
	for {
		items, next, err := s.repo.ListStored(ctx, tenantID, repairPage, cursor)
		if err != nil {
			return err
		}
		for _, st := range items {
			var v filterView
			if err := json.Unmarshal(st.JSON, &v); err != nil {
				return fmt.Errorf("decoding agent %s: %w", st.ID, err)
			}
			if st.Deleting {
				a, err := s.repo.Get(ctx, tenantID, st.ID)
				if errors.Is(err, ErrNotFound) {
					continue // deleted meanwhile
				}
				if err != nil {
					return err
				}
				if a.Deleting() && s.clock().Sub(*a.DeletingSince) > resumeAfter {
					if err := s.finishDelete(ctx, a); err != nil {
						return err
					}
					continue
				}
			}
			total++
			byStatus[v.Status]++
		}
		if next == "" {
			break
		}
		cursor = next
	}

	c, err := s.repo.Counts(ctx, tenantID)
	if err != nil {
		return err
	}
	if d := total - c.Total; d != 0 {
		if _, err := s.addTotal(ctx, tenantID, d, nil); err != nil {
			return err
		}
	}
	for _, status := range agentv1.Statuses {
		if d := byStatus[status] - c.ByStatus[status]; d != 0 {
			if err := s.repo.AddStatus(ctx, tenantID, status, d); err != nil {
				return err
			}
		}
	}
	zerolog.Ctx(ctx).Info().Str("tenant_id", tenantID).Int64("agents", total).Msg("agent counters repaired")
	return nil
}
