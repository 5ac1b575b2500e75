package channel

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// maxAttempts bounds optimistic read-modify-write retries before giving up with 409.
const maxAttempts = 8

// Page sizes of lists and history reads.
const (
	DefaultListLimit = 50
	MaxListLimit     = 100
)

// Service holds the use cases.
type Service struct {
	repo     Repository
	agents   Agents
	messages Messages
	events   Events
	gauges   Gauges
	now      func() time.Time
	ids      *domain.IDs
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Gauges receives the tenant's count after every change of it (usage metering).
type Gauges = domain.Gauges

// WithGauges sends the tenant's channel count to g after every change (usage gauges).
func WithGauges(g Gauges) Option { return func(s *Service) { s.gauges = g } }

// NewService returns the use cases on repo, asking the agent service through agents,
// reading and purging stored messages through messages and publishing through events.
func NewService(repo Repository, agents Agents, messages Messages, events Events, opts ...Option) *Service {
	s := &Service{repo: repo, agents: agents, messages: messages, events: events, gauges: domain.NoGauges{}, now: time.Now, ids: domain.NewIDs()}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// addTotal changes the tenant's channel counter and reports the new count (usage gauge).
func (s *Service) addTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	n, err := s.repo.AddTotal(ctx, tenantID, delta, max)
	if err == nil {
		s.gauges.Report(tenantID, usagev1.GaugeChannels, n)
	}
	return n, err
}

// backoff spreads out writers retrying the same item.
var backoff = domain.Backoff

// detached runs fn on a context that survives the request's (clean-up after the
// commit), logging a failure as what.
func detached(ctx context.Context, what string, fn func(ctx context.Context) error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), domain.CompensateTimeout)
	defer cancel()
	if err := fn(cctx); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg(what)
	}
}

func listLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultListLimit
	case n > MaxListLimit:
		return MaxListLimit
	}
	return n
}

// view completes stored channels with their stream stats for a reply.
func (s *Service) view(ctx context.Context, tenantID string, cs ...Channel) []channelv1.Channel {
	if len(cs) == 0 {
		return []channelv1.Channel{}
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	stats := s.messages.Stats(ctx, tenantID, ids)
	out := make([]channelv1.Channel, len(cs))
	for i, c := range cs {
		out[i] = c.Channel
		st := stats[c.ID]
		out[i].TotalMessages = st.TotalMessages
		out[i].LastMessageAt = st.LastMessageAt
	}
	return out
}

// Create makes a channel in the caller's tenant. The counter (the max_channels limit,
// atomically) goes first and the channel item last, as the commit; a failed commit
// gives the count back.
func (s *Service) Create(ctx context.Context, actor Actor, in channelv1.CreateBody) (channelv1.Channel, error) {
	if err := actor.may(accessManage); err != nil {
		return channelv1.Channel{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return channelv1.Channel{}, err
	}
	plan, err := actor.plan()
	if err != nil {
		return channelv1.Channel{}, err
	}
	history, err := resolveHistory(plan, in.History)
	if err != nil {
		return channelv1.Channel{}, err
	}

	limit := plan.Limits.MaxChannels
	if _, err := s.addTotal(ctx, tenantID, 1, limit); err != nil {
		if errors.Is(err, ErrConflict) && limit != nil {
			return channelv1.Channel{}, s.limitError(ctx, tenantID, *limit, plan.ID)
		}
		return channelv1.Channel{}, err
	}
	uncount := func() {
		detached(ctx, "channel counter not decremented", func(ctx context.Context) error {
			_, err := s.addTotal(ctx, tenantID, -1, nil)
			return err
		})
	}

	now := s.clock()
	id, err := s.ids.Next(now)
	if err != nil {
		uncount()
		return channelv1.Channel{}, err
	}
	c := Channel{Channel: channelv1.Channel{
		ID: id, ChannelID: id, TenantID: tenantID, Name: in.Name, Description: in.Description,
		Type: in.Type, Status: channelv1.StatusActive, Metadata: in.Metadata, History: history,
		CreatedAt: now, UpdatedAt: now,
	}}
	if c.Type == "" {
		c.Type = channelv1.TypePublic
	}
	normalize(&c.Channel)
	if err := s.repo.Create(ctx, &c); err != nil {
		uncount()
		return channelv1.Channel{}, err
	}
	s.events.Created(ctx, c.Channel)
	return c.Channel, nil // a new channel has no subscriber and no message
}

// limitError is the 402 answer, naming the current count.
func (s *Service) limitError(ctx context.Context, tenantID string, limit int64, plan string) error {
	current := limit
	if n, err := s.repo.Total(ctx, tenantID); err == nil && n > limit {
		current = n // over the limit after a downgrade
	}
	return errorf(ErrLimit, "channel limit reached: %d of %d on the %s plan", current, limit, plan)
}

// Get returns a channel of the caller's tenant.
func (s *Service) Get(ctx context.Context, actor Actor, id string) (channelv1.Channel, error) {
	if err := actor.may(accessRead); err != nil {
		return channelv1.Channel{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return channelv1.Channel{}, err
	}
	c, err := s.repo.Get(ctx, tenantID, id)
	if err != nil {
		return channelv1.Channel{}, notFoundIf(err)
	}
	return s.view(ctx, tenantID, c)[0], nil
}

// List returns a page of the tenant's channels in id order and the cursor of the next
// page ("" on the last). The stream stats of the whole page come from one cached read
// per tenant.
func (s *Service) List(ctx context.Context, actor Actor, limit int, cursor string) ([]channelv1.Channel, string, error) {
	if err := actor.may(accessRead); err != nil {
		return nil, "", err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return nil, "", err
	}
	cs, next, err := s.repo.List(ctx, tenantID, listLimit(limit), cursor)
	if err != nil {
		return nil, "", err
	}
	return s.view(ctx, tenantID, cs...), next, nil
}

// Update applies a partial update (SPEC §13: absent keeps, null clears, a value
// replaces wholesale). A history value is bounded by the caller's plan like on create;
// null resets it to the plan's bounds. A new max_age_seconds applies to messages
// published from then on (each message carries its TTL); a new max_messages to the
// next trim.
func (s *Service) Update(ctx context.Context, actor Actor, id string, ch channelv1.UpdateBody) (channelv1.Channel, error) {
	if err := actor.may(accessManage); err != nil {
		return channelv1.Channel{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return channelv1.Channel{}, err
	}
	var ve ValidationError
	if ch.Name.Set && (ch.Name.Null || ch.Name.Value == "") {
		ve.add("name", "cannot be empty or null")
	}
	if ch.Type.Set && (ch.Type.Null || ch.Type.Value == "") {
		ve.add("type", "cannot be empty or null")
	}
	if err := ve.err(); err != nil {
		return channelv1.Channel{}, err
	}
	var history channelv1.History
	if ch.History.Set {
		plan, err := actor.plan()
		if err != nil {
			return channelv1.Channel{}, err
		}
		var in *channelv1.History
		if ch.History.HasValue() {
			in = &ch.History.Value
		}
		if history, err = resolveHistory(plan, in); err != nil {
			return channelv1.Channel{}, err
		}
	}

	for attempt := range maxAttempts {
		old, err := s.repo.Get(ctx, tenantID, id)
		if err != nil {
			return channelv1.Channel{}, notFoundIf(err)
		}
		next := old // fields are replaced wholesale, never edited in place
		if ch.Name.HasValue() {
			next.Name = ch.Name.Value
		}
		if ch.Description.Set {
			next.Description = ch.Description.Value // null clears to ""
		}
		if ch.Type.HasValue() {
			next.Type = ch.Type.Value
		}
		if ch.Metadata.Set {
			next.Metadata = ch.Metadata.Value
		}
		if ch.History.Set {
			next.History = history
		}
		normalize(&next.Channel)
		next.UpdatedAt = s.clock()
		err = s.repo.Update(ctx, old, &next)
		if err == nil {
			s.events.Updated(ctx, next.Channel)
			return s.view(ctx, tenantID, next)[0], nil
		}
		if !errors.Is(err, ErrConflict) {
			return channelv1.Channel{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return channelv1.Channel{}, err
		}
	}
	return channelv1.Channel{}, errorf(ErrConflict, "the channel is being changed by other requests; try again")
}

// Delete removes a channel: its item first (the commit: from then on it is gone for
// every reader, the gateways' lookups included), then the counter, its subscriptions and
// subscriber counter, its stored messages, and finally channels.deleted so gateways
// drop it and tell their sessions. The steps after the commit are idempotent; one that
// fails is logged and left to the background: leftover subscription items are never
// read again, and the trimmer purges the subject of a channel that no longer exists.
func (s *Service) Delete(ctx context.Context, actor Actor, id string) error {
	if err := actor.may(accessManage); err != nil {
		return err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return err
	}
	var gone Channel
	for attempt := 0; ; attempt++ {
		c, err := s.repo.Get(ctx, tenantID, id)
		if err != nil {
			return notFoundIf(err)
		}
		deleted, err := s.repo.Delete(ctx, c)
		if err != nil {
			return err
		}
		if deleted {
			gone = c
			break
		}
		// Changed (or deleted) meanwhile: read again.
		if attempt == maxAttempts-1 {
			return errorf(ErrConflict, "the channel is being changed by other requests; try again")
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	detached(ctx, "channel counter not decremented", func(ctx context.Context) error {
		_, err := s.addTotal(ctx, tenantID, -1, nil)
		return err
	})
	detached(ctx, "subscriptions of a deleted channel left behind", func(ctx context.Context) error {
		return s.repo.RemoveChannelItems(ctx, tenantID, id)
	})
	detached(ctx, "history of a deleted channel not purged (the trimmer will)", func(ctx context.Context) error {
		return s.messages.PurgeChannel(ctx, tenantID, id)
	})
	s.events.Deleted(ctx, gone.Channel)
	return nil
}

// Lookup returns what a gateway needs to publish to or subscribe to a channel of
// tenantID (named explicitly: the gateway asks for itself), and the role of agentID in
// it when given ("" without a subscription). Not found when the channel is absent.
func (s *Service) Lookup(ctx context.Context, tenantID, channelID, agentID string) (channelv1.Lookup, error) {
	if agentID != "" {
		var ok bool
		if agentID, ok = channelv1.NormalizeID(agentID); !ok {
			agentID = "" // no agent has that id, so it has no role
		}
	}
	c, role, err := s.repo.GetWithRole(ctx, tenantID, channelID, agentID)
	if err != nil {
		return channelv1.Lookup{}, notFoundIf(err)
	}
	return channelv1.Lookup{ChannelID: c.ID, Type: c.Type, MaxAgeSeconds: c.History.MaxAgeSeconds, AgentRole: role}, nil
}

// History reads a channel's stored messages, oldest first. An agent reads a private
// channel only with a subscription to it (any role), as it subscribes.
func (s *Service) History(ctx context.Context, actor Actor, id string, q HistoryQuery) (HistoryPage, error) {
	if err := actor.may(accessRead); err != nil {
		return HistoryPage{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return HistoryPage{}, err
	}
	agentID := ""
	if actor.Kind == natsrpc.KindAgent {
		agentID = actor.ID
	}
	c, role, err := s.repo.GetWithRole(ctx, tenantID, id, agentID)
	if err != nil {
		return HistoryPage{}, notFoundIf(err)
	}
	if agentID != "" && c.Type == channelv1.TypePrivate && role == "" {
		return HistoryPage{}, errorf(ErrForbidden, "reading a private channel needs a subscription of the agent to it")
	}
	q.Limit = listLimit(q.Limit)
	return s.messages.History(ctx, tenantID, c.ID, q)
}

// MaxMessages returns a channel's history.max_messages (0: unlimited) and whether the
// channel exists, for the trimmer.
func (s *Service) MaxMessages(ctx context.Context, tenantID, channelID string) (int64, bool, error) {
	c, err := s.repo.Get(ctx, tenantID, channelID)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return c.History.MaxMessages, true, nil
}

// Purge removes everything the channel service keeps for a deleted tenant: every item
// of its partition and every stored message of its channels. It is idempotent: the
// cascade consumer calls it again after a crash or a redelivery.
func (s *Service) Purge(ctx context.Context, tenantID string) error {
	if err := s.repo.Purge(ctx, tenantID); err != nil {
		return err
	}
	return s.messages.PurgeTenant(ctx, tenantID)
}
