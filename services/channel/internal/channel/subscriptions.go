package channel

import (
	"context"
	"errors"

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
	id, err := s.ids.next(now)
	if err != nil {
		return channelv1.Subscription{}, err
	}
	sub := channelv1.Subscription{ID: id, SubscriptionID: id, ChannelID: channelID, AgentID: agentID, Role: role, CreatedAt: now}
	if err := s.repo.AddSubscription(ctx, tenantID, sub); err != nil {
		if errors.Is(err, ErrConflict) {
			return channelv1.Subscription{}, errorf(ErrConflict, "agent %s already has a subscription to this channel", agentID)
		}
		return channelv1.Subscription{}, err
	}
	if err := s.repo.AddSubscribers(ctx, tenantID, channelID, 1); err != nil {
		// Without its count the subscription would make the count drift: take it back.
		detached(ctx, "subscription not taken back after a failed count", func(ctx context.Context) error {
			return s.repo.RemoveSubscription(ctx, tenantID, channelID, agentID)
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
	return sub, nil
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
	return nil
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
