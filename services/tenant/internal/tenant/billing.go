package tenant

import (
	"context"
	"fmt"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// Billing is the billing view of a tenant (GET /billing).
type Billing struct {
	TenantID string
	Plan     string
	// Amount is the plan's monthly price in USD.
	Amount float64
	// Status is the tenant's payment status.
	Status string
	// NextBillingDate is a UTC midnight.
	NextBillingDate time.Time
}

// Billing returns the billing view of tenantID to its members and its API key (a
// suspended tenant still reads it; agents and platform admins who are not members do
// not).
func (s *Service) Billing(ctx context.Context, actor Actor, tenantID string) (Billing, error) {
	t, _, err := s.memberAccess(ctx, actor, tenantID)
	if err != nil {
		return Billing{}, err
	}
	p, ok := plans.Get(t.Tier)
	if !ok {
		return Billing{}, fmt.Errorf("tenant %s has an unknown plan %q", t.ID, t.Tier)
	}
	return Billing{
		TenantID:        t.ID,
		Plan:            p.ID,
		Amount:          p.PriceMonthly,
		Status:          t.PaymentStatus,
		NextBillingDate: NextBillingDate(t, s.clock()),
	}, nil
}

// NextBillingDate is the end of the trial while the tenant is in trial and the trial
// has not ended before today; otherwise the first monthly anniversary of the tenant's
// creation after today, the day of month clamped to the month's length (created on
// the 31st: the 30th in April, the 28th or 29th in February).
func NextBillingDate(t Tenant, now time.Time) time.Time {
	today := midnight(now)
	if t.PaymentStatus == tenantv1.PaymentTrial && t.SubscriptionExpiresAt != nil {
		if end := midnight(*t.SubscriptionExpiresAt); !end.Before(today) {
			return end
		}
	}
	created := midnight(t.CreatedAt)
	// The anniversary in today's month, or the month after if that is not after today.
	for months := 0; ; months++ {
		y, m := today.Year(), today.Month()+time.Month(months)
		first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		day := min(created.Day(), daysIn(first.Year(), first.Month()))
		d := time.Date(first.Year(), first.Month(), day, 0, 0, 0, 0, time.UTC)
		if d.After(today) && d.After(created) {
			return d
		}
	}
}

func midnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysIn is the number of days of month m of year y.
func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
