package sshkey

import (
	"context"
	"fmt"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Defaults of list operations.
const (
	DefaultListLimit = 50
	MaxListLimit     = 100
)

// Bounds of the service's loops and clean-ups.
const (
	// maxAttempts bounds optimistic read-modify-write retries before giving up with 409.
	maxAttempts = 8
	// DefaultClaimGrace is how old a fingerprint claim without its key must be before a
	// create may take it over: younger, a create may still be writing the key.
	DefaultClaimGrace = 30 * time.Second
	// purgePage is the page size of the tenant cascade.
	purgePage = 100
	// maxCandidates bounds the keys of one agent tried at a login (and the index
	// entries read to find them).
	maxCandidates = 1000
)

// RateLimits are the login limits per minute (0 turns one off). They apply per client
// address and per (key or agent, address), never per tenant or per key across all
// addresses: an outsider must not be able to lock an agent out.
type RateLimits struct {
	ChallengesPerAddress  int64
	VerifiesPerAddress    int64
	VerifiesPerKeyAddress int64
}

// DefaultRateLimits are the limits of the design: 30 challenges and 30 verifies per
// address, 10 verifies per (key or agent, address), per minute.
func DefaultRateLimits() RateLimits {
	return RateLimits{ChallengesPerAddress: 30, VerifiesPerAddress: 30, VerifiesPerKeyAddress: 10}
}

// RateWindow is the length of the fixed rate-limit windows.
const RateWindow = time.Minute

// Service holds the use cases.
type Service struct {
	repo       Repository
	agents     Agents
	events     Events
	gauges     Gauges
	now        func() time.Time
	limits     RateLimits
	claimGrace time.Duration
	ids        *domain.IDs
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Gauges receives the tenant's count after every change of it (usage metering).
type Gauges = domain.Gauges

// WithGauges sends the tenant's SSH key count to g after every change (usage gauges).
func WithGauges(g Gauges) Option { return func(s *Service) { s.gauges = g } }

// WithRateLimits replaces DefaultRateLimits.
func WithRateLimits(l RateLimits) Option { return func(s *Service) { s.limits = l } }

// WithClaimGrace replaces DefaultClaimGrace.
func WithClaimGrace(d time.Duration) Option { return func(s *Service) { s.claimGrace = d } }

// NewService returns the use cases on repo, asking agents about agents and publishing
// through events.
func NewService(repo Repository, agents Agents, events Events, opts ...Option) *Service {
	s := &Service{
		repo: repo, agents: agents, events: events, gauges: domain.NoGauges{}, now: time.Now,
		limits: DefaultRateLimits(), claimGrace: DefaultClaimGrace, ids: domain.NewIDs(),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// addKeyCount changes the tenant's key counter and reports the new count (usage gauge).
func (s *Service) addKeyCount(ctx context.Context, tenantID string, delta int64, max *int64) (int64, error) {
	n, err := s.repo.AddKeyCount(ctx, tenantID, delta, max)
	if err == nil {
		s.gauges.Report(tenantID, usagev1.GaugeSSHKeys, n)
	}
	return n, err
}

// check rejects a scope without a valid tenant: the gateway always sends one, so this is
// a programming error.
func (sc Scope) check() error {
	if !validation.IsUUID(sc.TenantID) {
		return fmt.Errorf("%w: tenant id %q", ErrScope, sc.TenantID)
	}
	return nil
}

// plan returns the scope's plan; an unknown one is a programming error.
func (sc Scope) plan() (plans.Plan, error) {
	p, ok := plans.Get(sc.Plan)
	if !ok {
		return plans.Plan{}, fmt.Errorf("%w: unknown plan %q", ErrScope, sc.Plan)
	}
	return p, nil
}

// backoff spreads out writers retrying the same item.
var backoff = domain.Backoff
