// Package usage is the domain of the usage service: a tenant's usage per UTC day (the
// day row: additive counts, the peak of concurrent connections, the gauges of agents,
// channels and SSH keys, and the per-sender watermarks that make applying counts exact),
// the agents active on a day, the idempotent application of metering events
// (usagev1.CountsEvent, usagev1.GaugeEvent) and the reads behind GET /usage-metrics.
//
// Exactness: a CountsEntry of sender S with batch B and previous batch P is added to
// its row only when the row's watermark for S equals P, and the watermark moves to B in
// the same conditional write. A redelivered entry finds the watermark at or past B and
// changes nothing; an entry whose predecessor has not been applied yet waits (Gap).
package usage

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Gauge is the last value of one gauge kind on a day, with the instant it was true.
type Gauge struct {
	V  int64     `json:"v"`
	At time.Time `json:"at"`
}

// Day is a tenant's row of one UTC day as it is stored.
type Day struct {
	Counts          usagev1.Counts `json:"counts"`
	PeakConnections int64          `json:"peak_connections"`
	// Sources maps a sender (usagev1.CountsEvent.Source) to the last batch of it applied
	// to this row: the watermark.
	Sources map[string]uint64 `json:"sources,omitempty"`
	// Gauges maps a gauge kind (usagev1.Gauge*) to its latest value of the day.
	Gauges map[string]Gauge `json:"gauges,omitempty"`
}

// StoredDay is a day row with its date and the store version read (0: not stored yet).
type StoredDay struct {
	Date string
	Day
	Version int64
}

// Outcome is what applying one entry did.
type Outcome int

const (
	// Applied: the entry's counts were added and the watermark moved.
	Applied Outcome = iota + 1
	// Skipped: the entry was applied before (a redelivery); nothing changed.
	Skipped
	// Gap: an earlier flush of the same sender for this row has not been applied yet;
	// the entry must come back later.
	Gap
	// Inconsistent: the row's watermark lies between the entry's Prev and Batch, which
	// a correct sender never produces; the entry is dropped (applying it could count
	// twice, waiting would wait forever).
	Inconsistent
	// Invalid: the entry is malformed (tenant, date, batches); dropped.
	Invalid
	// Discarded: the tenant was deleted; the entry is dropped, and whatever it wrote
	// while the deletion ran was removed again.
	Discarded
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Skipped:
		return "skipped"
	case Gap:
		return "gap"
	case Inconsistent:
		return "inconsistent"
	case Invalid:
		return "invalid"
	case Discarded:
		return "discarded"
	}
	return "unknown"
}

// applyCounts applies one entry of sender source's flush batch to d (see Outcome).
func (d *Day) applyCounts(source string, batch uint64, e usagev1.CountsEntry) Outcome {
	wm := d.Sources[source]
	switch {
	case wm >= batch:
		return Skipped
	case wm < e.Prev:
		return Gap
	case wm > e.Prev:
		return Inconsistent
	}
	d.Counts.Add(e.Counts)
	d.PeakConnections = max(d.PeakConnections, e.PeakConnections)
	if d.Sources == nil {
		d.Sources = make(map[string]uint64, 1)
	}
	d.Sources[source] = batch
	return Applied
}

// applyGauge keeps the value with the latest instant (the larger value on a tie) and
// reports whether d changed.
func (d *Day) applyGauge(kind string, v int64, at time.Time) bool {
	if cur, ok := d.Gauges[kind]; ok && (at.Before(cur.At) || at.Equal(cur.At) && v <= cur.V) {
		return false
	}
	if d.Gauges == nil {
		d.Gauges = make(map[string]Gauge, 3)
	}
	d.Gauges[kind] = Gauge{V: v, At: at.UTC()}
	return true
}

// GaugeKinds are the gauges a day row keeps.
var GaugeKinds = []string{usagev1.GaugeAgents, usagev1.GaugeChannels, usagev1.GaugeSSHKeys}

// Repository keeps day rows and active-agent markers of a tenant.
type Repository interface {
	// GetDay returns the row of date; a row not stored yet is returned empty with
	// Version 0.
	GetDay(ctx context.Context, tenantID, date string) (StoredDay, error)
	// PutDay writes d: created if absent when d.Version is 0, else only over the stored
	// version d.Version (ErrConflict otherwise).
	PutDay(ctx context.Context, tenantID string, d StoredDay) error
	// Days visits the tenant's rows newest first until visit returns false.
	Days(ctx context.Context, tenantID string, visit func(StoredDay) bool) error
	// MarkActive records that agentID had a session on date (idempotent).
	MarkActive(ctx context.Context, tenantID, date, agentID string) error
	// CountActive counts the agents marked active on date.
	CountActive(ctx context.Context, tenantID, date string) (int64, error)
	// MarkDeleted writes the tenant's tombstone (idempotent); Deleted reads it.
	MarkDeleted(ctx context.Context, tenantID string) error
	Deleted(ctx context.Context, tenantID string) (bool, error)
	// Purge deletes every item of the tenant but its tombstone (idempotent).
	Purge(ctx context.Context, tenantID string) error
}

// Service holds the use cases.
type Service struct {
	repo   Repository
	now    func() time.Time
	active *seen
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// NewService returns the use cases on repo.
func NewService(repo Repository, opts ...Option) *Service {
	s := &Service{repo: repo, now: time.Now, active: newSeen(activeCacheSize)}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// Purge removes everything the usage service keeps for a deleted tenant. The tombstone
// comes first: what metering events of the tenant still in flight write from then on
// is removed again (see discarded), so no row outlives the purge.
func (s *Service) Purge(ctx context.Context, tenantID string) error {
	if !validation.IsUUID(tenantID) {
		return fmt.Errorf("usage: purge of a malformed tenant id %q", tenantID)
	}
	if err := s.repo.MarkDeleted(ctx, tenantID); err != nil {
		return err
	}
	return s.repo.Purge(ctx, tenantID)
}

// discarded runs after an applier wrote for a tenant: when the tenant was deleted it
// removes what was written and reports true. Either the write came before the
// tombstone, and the purge that follows the tombstone deletes it, or this look comes
// after the tombstone and runs the purge again: nothing written survives a deletion.
// (A look before writing would only save writes for deleted tenants, at a read for
// every entry of every live one.)
func (s *Service) discarded(ctx context.Context, tenantID string) (bool, error) {
	deleted, err := s.repo.Deleted(ctx, tenantID)
	if err != nil || !deleted {
		return false, err
	}
	return true, s.repo.Purge(ctx, tenantID)
}

// Actor is who asks (domain.Actor), with the usage service's access rules.
type Actor domain.Actor

// ActorFrom is the actor of a request context.
func ActorFrom(ctx context.Context) Actor { return Actor(domain.ActorFrom(ctx)) }

func (a Actor) tenant() (string, error)   { return domain.Actor(a).Tenant() }
func (a Actor) plan() (plans.Plan, error) { return domain.Actor(a).TenantPlan() }

// mayRead: any role in the tenant and API keys read usage; agent tokens do not (SPEC §13).
func (a Actor) mayRead() error {
	switch a.Kind {
	case natsrpc.KindSystem:
		return nil
	case natsrpc.KindUser, natsrpc.KindAPIKey:
		if natsrpc.RoleRank(a.Role) < natsrpc.RoleRank(natsrpc.RoleViewer) {
			return errorf(ErrForbidden, "reading usage needs a role in the tenant")
		}
		return nil
	case natsrpc.KindAgent:
		return errorf(ErrForbidden, "agent tokens may not read usage")
	}
	return errorf(ErrForbidden, "this caller may not read usage")
}

// backoff spreads out writers retrying the same item.
var backoff = domain.Backoff

// activeCacheSize bounds the markers a process remembers having written.
const activeCacheSize = 100_000

// seen remembers keys already written, so the same agent in every flush of a day costs
// one write per process, not one per flush. Forgetting is harmless (the write is
// idempotent): when full it starts over.
type seen struct {
	mu   sync.Mutex
	max  int
	keys map[string]struct{}
}

func newSeen(max int) *seen { return &seen{max: max, keys: make(map[string]struct{})} }

func (c *seen) has(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[k]
	return ok
}

func (c *seen) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys) >= c.max {
		c.keys = make(map[string]struct{})
	}
	c.keys[k] = struct{}{}
}
