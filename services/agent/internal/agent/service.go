package agent

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// maxAttempts bounds optimistic read-modify-write retries before giving up with 409.
const maxAttempts = 8

// resumeAfter is how old a deletion mark must be before another request finishes the
// deletion: longer than any request may run, so it never races the deletion that set it.
const resumeAfter = time.Minute

// InitialStatus is the status of a new agent: it has no session yet.
const InitialStatus = agentv1.StatusOffline

// Service holds the use cases.
type Service struct {
	repo     Repository
	keys     Keys
	channels Channels
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

// WithGauges sends the tenant's agent count to g after every change (usage gauges).
func WithGauges(g Gauges) Option { return func(s *Service) { s.gauges = g } }

// NewService returns the use cases on repo, calling the sshkey service through keys and
// the channel service through channels, and publishing through events.
func NewService(repo Repository, keys Keys, channels Channels, events Events, opts ...Option) *Service {
	s := &Service{repo: repo, keys: keys, channels: channels, events: events, gauges: domain.NoGauges{}, now: time.Now, ids: domain.NewIDs()}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// addTotal changes the tenant's agent counter and reports the new count (usage gauge).
func (s *Service) addTotal(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	n, err := s.repo.AddTotal(ctx, tenantID, delta, max)
	if err == nil {
		s.gauges.Report(tenantID, usagev1.GaugeAgents, n)
	}
	return n, err
}

// backoff spreads out writers retrying the same item.
var backoff = domain.Backoff

// Create makes an agent in the caller's tenant and, when in.PublicKey is set,
// registers that key for it through the sshkey service.
//
// Order, without transactions: the key is checked first (nothing written yet); then the
// agent counter (the limit, atomically), the status counter, the index items and the
// agent item last as the commit; then the key. Any failure undoes what was done, so no
// agent remains and the counters are back.
func (s *Service) Create(ctx context.Context, actor Actor, in agentv1.CreateBody) (Agent, *sshkeyv1.Key, error) {
	if err := actor.may(accessManage, ""); err != nil {
		return Agent{}, nil, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return Agent{}, nil, err
	}
	plan, err := actor.plan()
	if err != nil {
		return Agent{}, nil, err
	}
	if in.PublicKey != "" {
		if err := s.keys.CheckPublicKey(ctx, in.PublicKey); err != nil {
			return Agent{}, nil, err
		}
	}

	limit := plan.Limits.MaxAgents
	if _, err := s.addTotal(ctx, tenantID, 1, limit); err != nil {
		if errors.Is(err, ErrConflict) && limit != nil {
			return Agent{}, nil, s.limitError(ctx, tenantID, *limit, plan.ID)
		}
		return Agent{}, nil, err
	}
	undo := domain.Compensation{func(ctx context.Context) error {
		_, err := s.addTotal(ctx, tenantID, -1, nil)
		return err
	}}
	if err := s.repo.AddStatus(ctx, tenantID, InitialStatus, 1); err != nil {
		undo.Run(ctx)
		return Agent{}, nil, err
	}
	undo = append(undo, func(ctx context.Context) error { return s.repo.AddStatus(ctx, tenantID, InitialStatus, -1) })

	now := s.clock()
	id, err := s.ids.Next(now)
	if err != nil {
		undo.Run(ctx)
		return Agent{}, nil, err
	}
	a := Agent{Agent: agentv1.Agent{
		ID: id, AgentID: id, TenantID: tenantID, Name: in.Name, Type: in.Type,
		Description: in.Description, Status: InitialStatus, Capabilities: in.Capabilities,
		Metadata: in.Metadata, CreatedAt: now, UpdatedAt: now,
	}}
	if a.Type == "" {
		a.Type = agentv1.TypeWorker
	}
	normalize(&a.Agent)
	if err := s.repo.Create(ctx, &a); err != nil {
		undo.Run(ctx)
		return Agent{}, nil, err
	}
	if in.PublicKey == "" {
		s.events.Changed(ctx, tenantID, eventsv1.ActionCreated, eventsv1.AgentRef{AgentID: id, Name: a.Name})
		return a, nil, nil
	}

	key, err := s.keys.CreateForAgent(ctx, id, a.Name, in.PublicKey)
	if err != nil {
		if uncertain(err) {
			// The key may have been stored although the answer was lost: remove it too.
			undo = append(undo, func(ctx context.Context) error { return s.keys.DeleteForAgent(ctx, id) })
		}
		created := a
		undo = append(undo, func(ctx context.Context) error {
			_, err := s.repo.Remove(ctx, created)
			return err
		})
		undo.Run(ctx)
		return Agent{}, nil, err
	}
	s.events.Changed(ctx, tenantID, eventsv1.ActionCreated, eventsv1.AgentRef{AgentID: id, Name: a.Name})
	return a, key, nil
}

// uncertain reports whether a failed call may still have done its work: anything but
// a clear 4xx answer.
func uncertain(err error) bool {
	e, ok := natsrpc.AsError(err)
	return !ok || e.Status >= 500
}

// limitError is the 402 answer, naming the current count.
func (s *Service) limitError(ctx context.Context, tenantID string, limit int64, plan string) error {
	current := limit
	if c, err := s.repo.Counts(ctx, tenantID); err == nil && c.Total > limit {
		current = c.Total // over the limit after a downgrade
	}
	return errorf(ErrLimit, "agent limit reached: %d of %d on the %s plan", current, limit, plan)
}

// normalize gives optional collections their empty value, so the wire never shows null
// for them.
func normalize(a *agentv1.Agent) {
	if a.Capabilities == nil {
		a.Capabilities = []agentv1.Capability{}
	}
	if a.Metadata == nil {
		a.Metadata = map[string]any{}
	}
}

// Get returns the stored JSON of a live agent: one store read, no decoding of the agent.
func (s *Service) Get(ctx context.Context, actor Actor, id string) (Stored, error) {
	if err := actor.may(accessRead, id); err != nil {
		return Stored{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return Stored{}, err
	}
	st, err := s.repo.GetStored(ctx, tenantID, id)
	if err != nil {
		return Stored{}, notFoundIf(err)
	}
	if st.Deleting {
		return Stored{}, notFound()
	}
	return st, nil
}

func notFoundIf(err error) error {
	if errors.Is(err, ErrNotFound) {
		return notFound()
	}
	return err
}

// live reads a live agent of the tenant.
func (s *Service) live(ctx context.Context, tenantID, id string) (Agent, error) {
	a, err := s.repo.Get(ctx, tenantID, id)
	if err != nil {
		return Agent{}, notFoundIf(err)
	}
	if a.Deleting() {
		return Agent{}, notFound()
	}
	return a, nil
}

// change is a version-conditioned read-modify-write of a live agent: fn changes the
// copy read and reports whether anything changed (nothing changed: no write); a lost
// race re-reads and retries. It returns the agent before and after.
func (s *Service) change(ctx context.Context, tenantID, id string, fn func(a *Agent) (bool, error)) (Agent, Agent, error) {
	for attempt := range maxAttempts {
		old, err := s.live(ctx, tenantID, id)
		if err != nil {
			return Agent{}, Agent{}, err
		}
		next := old // fn replaces fields wholesale, never edits old's maps or slices
		changed, err := fn(&next)
		if err != nil {
			return Agent{}, Agent{}, err
		}
		if !changed {
			return old, old, nil
		}
		err = s.repo.Update(ctx, old, &next)
		if err == nil {
			return old, next, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Agent{}, Agent{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return Agent{}, Agent{}, err
		}
	}
	return Agent{}, Agent{}, errorf(ErrConflict, "the agent is being changed by other requests; try again")
}

// Update applies a partial update (SPEC §13: absent keeps, null clears, a value
// replaces wholesale). An agent may change its own description, capabilities and
// metadata.
func (s *Service) Update(ctx context.Context, actor Actor, id string, ch agentv1.UpdateBody) (Agent, error) {
	want := accessManage
	if actor.Kind == natsrpc.KindAgent && ch.AgentEditable() {
		want = accessRead // its own record, editable fields only
	}
	if err := actor.may(want, id); err != nil {
		return Agent{}, err
	}
	if ch.Name.Set && (ch.Name.Null || ch.Name.Value == "") {
		return Agent{}, &ValidationError{Field: "name", Message: "cannot be empty or null"}
	}
	if ch.Type.Set && (ch.Type.Null || ch.Type.Value == "") {
		return Agent{}, &ValidationError{Field: "type", Message: "cannot be empty or null"}
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return Agent{}, err
	}
	_, a, err := s.change(ctx, tenantID, id, func(a *Agent) (bool, error) {
		if ch.Name.HasValue() {
			a.Name = ch.Name.Value
		}
		if ch.Type.HasValue() {
			a.Type = ch.Type.Value
		}
		if ch.Description.Set {
			a.Description = ch.Description.Value // null clears to ""
		}
		if ch.Capabilities.Set {
			a.Capabilities = ch.Capabilities.Value
		}
		if ch.Metadata.Set {
			a.Metadata = ch.Metadata.Value
		}
		normalize(&a.Agent)
		a.UpdatedAt = s.clock()
		return true, nil
	})
	if err != nil {
		return Agent{}, err
	}
	s.events.Changed(ctx, tenantID, eventsv1.ActionUpdated, eventsv1.AgentRef{AgentID: a.ID, Name: a.Name})
	return a, nil
}

// SetStatus is the operator's override of an agent's status. Only a real change writes:
// the item, the status index swap and the two status counters; it is published as
// agents.status. The presence mark stays as it was, so the override stands until the
// agent's next presence change (ApplyPresence).
func (s *Service) SetStatus(ctx context.Context, actor Actor, id, status string) (Agent, error) {
	if err := actor.may(accessManage, id); err != nil {
		return Agent{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return Agent{}, err
	}
	old, a, err := s.change(ctx, tenantID, id, func(a *Agent) (bool, error) {
		if a.Status == status {
			return false, nil
		}
		a.Status = status
		a.UpdatedAt = s.clock()
		return true, nil
	})
	if err != nil || old.Status == a.Status {
		return a, err
	}
	s.statusMoved(ctx, old, a)
	return a, nil
}

// statusMoved does what follows a committed status change: the counters, and the
// agents.status event from the one writer whose write changed the status. A lost
// counter update here is drift that Repair corrects, never a wrong agent.
func (s *Service) statusMoved(ctx context.Context, old, a Agent) {
	s.moveStatusCount(ctx, a.TenantID, old.Status, a.Status)
	s.events.StatusChanged(ctx, a.TenantID, eventsv1.AgentStatus{AgentID: a.ID, Status: a.Status, Previous: old.Status})
}

func (s *Service) moveStatusCount(ctx context.Context, tenantID, from, to string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), domain.CompensateTimeout)
	defer cancel()
	if err := s.repo.AddStatus(cctx, tenantID, to, 1); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("status", to).Msg("status counter not incremented")
	}
	if err := s.repo.AddStatus(cctx, tenantID, from, -1); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("status", from).Msg("status counter not decremented")
	}
}

// Delete removes an agent: marked deleting first (it reads as absent from then on), its
// SSH keys deleted through the sshkey service, its channel subscriptions through the
// channel service, then its index items and item, then the counters; a cache hint tells
// gateways to forget it. If the keys cannot be deleted the mark is taken back and the
// error returned, so the caller can retry. If the subscriptions cannot be removed (the
// keys are gone by then: the agent cannot come back as it was) the agent stays marked
// and the error is returned; the next DELETE after resumeAfter, or Repair, finishes it.
func (s *Service) Delete(ctx context.Context, actor Actor, id string) error {
	if err := actor.may(accessManage, id); err != nil {
		return err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return err
	}
	var marked Agent
	for attempt := 0; ; attempt++ {
		a, err := s.repo.Get(ctx, tenantID, id)
		if err != nil {
			return notFoundIf(err)
		}
		if a.Deleting() {
			// A deletion that stopped half-way (a crash) is finished by the next request
			// that finds it; the agent is gone for this caller either way.
			if s.clock().Sub(*a.DeletingSince) > resumeAfter {
				if err := s.finishDelete(ctx, a); err != nil {
					return err
				}
			}
			return notFound()
		}
		marked = a
		now := s.clock()
		marked.DeletingSince = &now
		err = s.repo.Update(ctx, a, &marked)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrConflict) || attempt == maxAttempts-1 {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return s.finishDelete(ctx, marked)
}

// finishDelete does everything after the mark; every step is idempotent.
func (s *Service) finishDelete(ctx context.Context, a Agent) error {
	if err := s.keys.DeleteForAgent(ctx, a.ID); err != nil {
		if a.DeletingSince != nil && s.clock().Sub(*a.DeletingSince) <= resumeAfter {
			s.unmark(ctx, a)
		}
		return err
	}
	if err := s.channels.RemoveAgent(ctx, a.ID); err != nil {
		return err
	}
	removed, err := s.repo.Remove(ctx, a)
	if err != nil {
		return err
	}
	if removed {
		// Only the request that deleted the item uncounts it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), domain.CompensateTimeout)
		defer cancel()
		if _, err := s.addTotal(cctx, a.TenantID, -1, nil); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("agent counter not decremented")
		}
		if err := s.repo.AddStatus(cctx, a.TenantID, a.Status, -1); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("status counter not decremented")
		}
		s.events.Changed(ctx, a.TenantID, eventsv1.ActionDeleted, eventsv1.AgentRef{AgentID: a.ID, Name: a.Name})
	}
	s.events.AgentDeleted(ctx, a.TenantID, a.ID)
	return nil
}

// unmark takes a deletion mark back (the keys could not be deleted).
func (s *Service) unmark(ctx context.Context, marked Agent) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), domain.CompensateTimeout)
	defer cancel()
	back := marked
	back.DeletingSince = nil
	if err := s.repo.Update(cctx, marked, &back); err != nil {
		// Still marked: a later DELETE (or Repair) finishes it after resumeAfter.
		zerolog.Ctx(ctx).Warn().Err(err).Str("agent_id", marked.ID).Msg("deletion mark not taken back")
	}
}

// StatusSummary counts the tenant's agents by status, from the counters (one read).
func (s *Service) StatusSummary(ctx context.Context, actor Actor) (agentv1.StatusSummary, error) {
	if err := actor.may(accessRead, ""); err != nil {
		return agentv1.StatusSummary{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return agentv1.StatusSummary{}, err
	}
	c, err := s.repo.Counts(ctx, tenantID)
	if err != nil {
		return agentv1.StatusSummary{}, err
	}
	get := func(status string) int64 { return max(c.ByStatus[status], 0) }
	return agentv1.StatusSummary{
		Online: get(agentv1.StatusOnline), Offline: get(agentv1.StatusOffline), Busy: get(agentv1.StatusBusy),
		Idle: get(agentv1.StatusIdle), Error: get(agentv1.StatusError), Total: max(c.Total, 0),
	}, nil
}

// Lookup returns a live agent of tenantID, for the gateway and the sshkey service,
// which name the tenant explicitly.
func (s *Service) Lookup(ctx context.Context, tenantID, id string) (Agent, error) {
	return s.live(ctx, tenantID, id)
}
