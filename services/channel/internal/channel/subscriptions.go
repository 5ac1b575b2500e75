package channel

import (
	"context"
	"errors"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
)

// AddSubscription makes an agent of the tenant a member of a channel with a role
// (subscriber by default). The agent must exist (asked of the agent service: 422 on
// agent_id otherwise); a second subscription of the same agent is 409. The subscription
// item is the commit; the subscriber counter follows it.
func (s *Service) AddSubscription(ctx context.Context, actor Actor, channelID string, in channelv1.SubscriptionAddBody) (channelv1.Subscription, error) {
	if err := actor.may(accessManage); err != nil {
		return channelv1.Subscription{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return channelv1.Subscription{}, err
	}
	agentID, ok := channelv1.NormalizeID(in.AgentID)
	if !ok {
		return channelv1.Subscription{}, notAnAgent()
	}
	role := in.Role
	if role == "" {
		role = channelv1.RoleSubscriber
	}
	if _, err := s.repo.Get(ctx, tenantID, channelID); err != nil {
		return channelv1.Subscription{}, notFoundIf(err)
	}
	if err := s.agents.Lookup(ctx, tenantID, agentID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return channelv1.Subscription{}, notAnAgent()
		}
		return channelv1.Subscription{}, err
	}

	now := s.clock()
	id, err := s.ids.Next(now)
	if err != nil {
		return channelv1.Subscription{}, err
	}
	sub := channelv1.Subscription{ID: id, SubscriptionID: id, ChannelID: channelID, AgentID: agentID, Role: role, CreatedAt: now}
	// The agent's index entry first: a subscription its agent's deletion cannot find
	// would outlive the agent. A failure after it leaves only the entry (harmless; it is
	// skipped and removed when the agent goes); on 409 it is the existing record's.
	if err := s.repo.PutAgentIndex(ctx, tenantID, agentID, channelID); err != nil {
		return channelv1.Subscription{}, err
	}
	if err := s.repo.AddSubscription(ctx, tenantID, sub); err != nil {
		if errors.Is(err, ErrConflict) {
			return channelv1.Subscription{}, errorf(ErrConflict, "agent %s already has a subscription to this channel", agentID)
		}
		return channelv1.Subscription{}, err
	}
	if err := s.repo.AddSubscribers(ctx, tenantID, channelID, 1); err != nil {
		// Without its count the subscription would make the count drift: take it back.
		detached(ctx, "subscription not taken back after a failed count", func(ctx context.Context) error {
			return s.removeRecord(ctx, tenantID, channelID, agentID, false)
		})
		return channelv1.Subscription{}, err
	}
	// A deletion of the channel that ran meanwhile may have missed this subscription:
	// clean up after it, so nothing of the channel stays behind.
	if _, err := s.repo.Get(ctx, tenantID, channelID); errors.Is(err, ErrNotFound) {
		detached(ctx, "subscriptions of a deleted channel left behind", func(ctx context.Context) error {
			return s.repo.RemoveChannelItems(ctx, tenantID, channelID)
		})
		return channelv1.Subscription{}, notFound()
	}
	// Likewise a deletion of the agent: one that marked the agent after the lookup above
	// may have read the agent's index before this entry was written. Asked again after
	// the commit, a deleted agent is seen either here or by its deletion's removal.
	if err := s.agents.Lookup(ctx, tenantID, agentID); errors.Is(err, ErrNotFound) {
		detached(ctx, "subscription of a deleted agent left behind", func(ctx context.Context) error {
			return s.removeRecord(ctx, tenantID, channelID, agentID, true)
		})
		return channelv1.Subscription{}, notAnAgent()
	}
	s.events.SubscriptionAdded(ctx, tenantID, sub)
	return sub, nil
}

// removeRecord deletes agentID's subscription to channelID, then (uncount: if this call
// deleted it) its count, then the agent's index entry. A record already gone is no error.
func (s *Service) removeRecord(ctx context.Context, tenantID, channelID, agentID string, uncount bool) error {
	err := s.repo.RemoveSubscription(ctx, tenantID, channelID, agentID)
	switch {
	case err == nil:
		if uncount {
			if err := s.repo.AddSubscribers(ctx, tenantID, channelID, -1); err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Msg("subscriber counter not decremented")
			}
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	return s.repo.RemoveAgentIndex(ctx, tenantID, agentID, channelID)
}

func notAnAgent() error {
	return &ValidationError{Fields: []FieldError{{Field: "agent_id", Message: "is not an agent of this tenant"}}}
}

// RemoveSubscription takes an agent out of a channel.
func (s *Service) RemoveSubscription(ctx context.Context, actor Actor, channelID, agentID string) error {
	if err := actor.may(accessManage); err != nil {
		return err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return err
	}
	agentID, ok := channelv1.NormalizeID(agentID)
	if !ok {
		return errorf(ErrNotFound, "subscription not found")
	}
	if _, err := s.repo.Get(ctx, tenantID, channelID); err != nil {
		return notFoundIf(err)
	}
	if err := s.repo.RemoveSubscription(ctx, tenantID, channelID, agentID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return errorf(ErrNotFound, "subscription not found")
		}
		return err
	}
	detached(ctx, "subscriber counter not decremented", func(ctx context.Context) error {
		return s.repo.AddSubscribers(ctx, tenantID, channelID, -1)
	})
	detached(ctx, "agent index entry of a removed subscription left behind", func(ctx context.Context) error {
		return s.repo.RemoveAgentIndex(ctx, tenantID, agentID, channelID)
	})
	s.events.SubscriptionRemoved(ctx, tenantID, channelID, agentID)
	return nil
}

// agentPage is how many index entries RemoveAgent reads at a time.
const agentPage = 100

// RemoveAgent removes every subscription record of an agent that is being deleted
// (the agent service calls it from its delete flow, after marking the agent): found
// through the agent's index entries, each record goes, then its count, then its entry,
// and subscriptions.removed tells gateways. It is idempotent: a second call finds
// nothing, and a call after a crash goes on where the first stopped.
func (s *Service) RemoveAgent(ctx context.Context, actor Actor, agentID string) error {
	if err := actor.may(accessManage); err != nil {
		return err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return err
	}
	agentID, ok := channelv1.NormalizeID(agentID)
	if !ok {
		return errorf(ErrNotFound, "agent not found")
	}
	// Every pass removes each entry it read or fails, so reading from the start again
	// always makes progress.
	for {
		channels, err := s.repo.AgentChannels(ctx, tenantID, agentID, agentPage)
		if err != nil {
			return err
		}
		if len(channels) == 0 {
			return nil
		}
		for _, channelID := range channels {
			err := s.repo.RemoveSubscription(ctx, tenantID, channelID, agentID)
			switch {
			case err == nil:
				// Only the call that deleted the record uncounts it.
				detached(ctx, "subscriber counter not decremented", func(ctx context.Context) error {
					return s.repo.AddSubscribers(ctx, tenantID, channelID, -1)
				})
				s.events.SubscriptionRemoved(ctx, tenantID, channelID, agentID)
			case !errors.Is(err, ErrNotFound):
				return err
			}
			if err := s.repo.RemoveAgentIndex(ctx, tenantID, agentID, channelID); err != nil {
				return err
			}
		}
	}
}

// ListSubscriptions returns a page of a channel's subscriptions in agent id order.
func (s *Service) ListSubscriptions(ctx context.Context, actor Actor, channelID string, limit int, cursor string) ([]channelv1.Subscription, string, error) {
	if err := actor.may(accessRead); err != nil {
		return nil, "", err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.repo.Get(ctx, tenantID, channelID); err != nil {
		return nil, "", notFoundIf(err)
	}
	return s.repo.ListSubscriptions(ctx, tenantID, channelID, listLimit(limit), cursor)
}
