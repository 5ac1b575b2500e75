package tenant_test

import (
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

func TestNextBillingDate(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	at := func(s string) *time.Time { d := day(s).Add(15 * time.Hour); return &d }
	for _, c := range []struct {
		name, created, now, want string
		status                   string
		trialEnd                 *time.Time
	}{
		{"later this month", "2026-01-20", "2026-03-05", "2026-03-20", tenantv1.PaymentActive, nil},
		{"the anniversary is today: next month", "2026-01-20", "2026-03-20", "2026-04-20", tenantv1.PaymentActive, nil},
		{"created today", "2026-03-20", "2026-03-20", "2026-04-20", tenantv1.PaymentActive, nil},
		{"31st in a 30-day month", "2026-01-31", "2026-04-02", "2026-04-30", tenantv1.PaymentActive, nil},
		{"31st in February", "2026-01-31", "2026-02-01", "2026-02-28", tenantv1.PaymentActive, nil},
		{"29th in a leap February", "2027-12-29", "2028-02-10", "2028-02-29", tenantv1.PaymentActive, nil},
		{"after a clamped month, the real day again", "2026-01-31", "2026-02-28", "2026-03-31", tenantv1.PaymentActive, nil},
		{"year end", "2026-06-15", "2026-12-20", "2027-01-15", tenantv1.PaymentPastDue, nil},
		{"trial: its end", "2026-03-01", "2026-03-05", "2026-03-15", tenantv1.PaymentTrial, at("2026-03-15")},
		{"trial ending today", "2026-03-01", "2026-03-15", "2026-03-15", tenantv1.PaymentTrial, at("2026-03-15")},
		{"trial over but not changed: the anniversary", "2026-03-01", "2026-03-20", "2026-04-01", tenantv1.PaymentTrial, at("2026-03-15")},
	} {
		tn := tenant.Tenant{CreatedAt: day(c.created).Add(9 * time.Hour), PaymentStatus: c.status, SubscriptionExpiresAt: c.trialEnd}
		if got := tenant.NextBillingDate(tn, day(c.now).Add(23*time.Hour)); !got.Equal(day(c.want)) {
			t.Errorf("%s: next billing date = %s, want %s", c.name, got.Format(time.DateOnly), c.want)
		}
	}
}
