package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
)

// Presence is an agent's status as its live sessions say it (the presence watcher
// derives it from the PRESENCE bucket), with the bucket revision of the change that
// produced it. It is stored beside the agent, not in its wire form.
type Presence struct {
	Status string
	// Rev is the bucket revision (stream sequence) of the change. Every replica's watcher
	// sees the bucket's changes in the same order, so the revision orders their writes: a
	// replica that lags never writes an older state over a newer one.
	Rev uint64
	// Epoch names the bucket the revision counts in (its creation time, Unix ns): a
	// bucket made again starts its revisions at 1, and revisions of another bucket say
	// nothing about order.
	Epoch int64
}

// PresenceChange is one change of an agent's presence.
type PresenceChange struct {
	Presence
	// Seen is when the agent was last seen with this change (its last_seen).
	Seen time.Time
}

// noPresence is the presence of an agent no session has written yet: new agents start
// offline.
var noPresence = Presence{Status: agentv1.StatusOffline}

// presenceStatuses are the statuses sessions can produce.
var presenceStatuses = map[string]bool{
	agentv1.StatusOnline: true, agentv1.StatusBusy: true, agentv1.StatusIdle: true, agentv1.StatusOffline: true,
}

// ApplyPresence writes a presence change to an agent of tenantID and reports whether
// this call wrote it. Every replica's watcher applies the same changes, so the write is
// conditional twice over: the agent item's version (one writer wins a race), and the
// stored presence (a change already written, older than the stored one in the same
// bucket, or with the status presence already gave, writes nothing). Only the writer that changed the status
// moves the counters and publishes agents.status.
//
// A presence change replaces whatever status the agent has, an operator's override
// included; an override stands until then because it does not touch the stored presence.
// The agent's updated_at stays: presence is not an edit of the record. An agent that is
// gone (or being deleted) is not an error: there is nothing to write.
func (s *Service) ApplyPresence(ctx context.Context, tenantID, agentID string, ch PresenceChange) (bool, error) {
	if !presenceStatuses[ch.Status] {
		return false, fmt.Errorf("agent: presence cannot set status %q", ch.Status)
	}
	seen := ch.Seen.UTC()
	old, a, err := s.change(ctx, tenantID, agentID, func(a *Agent) (bool, error) {
		cur := noPresence
		if a.Presence != nil {
			cur = *a.Presence
		}
		if cur.Epoch == ch.Epoch && cur.Rev >= ch.Rev || cur.Status == ch.Status {
			return false, nil
		}
		p := ch.Presence
		a.Presence = &p
		a.Status = ch.Status
		if a.LastSeen == nil || seen.After(*a.LastSeen) {
			a.LastSeen = &seen
		}
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if a.Version == old.Version {
		return false, nil // nothing to write
	}
	if old.Status != a.Status {
		s.statusMoved(ctx, old, a)
	}
	return true, nil
}
