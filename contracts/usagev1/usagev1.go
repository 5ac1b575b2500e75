// Package usagev1 is the contract of usage metering: the durable metering events the
// gateway and the services send (stream USAGE_EVENTS, subjects usage.>, outside tenant.>),
// and the usage service's reads behind GET /usage-metrics (SPEC §4.7).
//
// Counting is exact by construction (see CountsEvent): the gateway sums facts in memory
// and sends one event per flush; each (tenant, day) entry names the previous flush of the
// same sender that carried that (tenant, day), so the usage service applies an entry
// exactly when the row's watermark for that sender equals Prev, skips it when the
// watermark is already at or past Batch (a redelivery), and waits otherwise (a gap: an
// earlier flush is still on its way). Gauges are absolute values, last writer by time wins.
package usagev1

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Service is the micro service name; Version is the contract version in its metadata.
const (
	Service = "usage"
	Version = "1.0.0"
	Group   = "svc.usage.v1"
)

// Endpoints, each served at Group + "." + name.
const (
	OpMetrics = "metrics" // MetricsRequest → MetricsResponse (tenant from the identity)
)

// Subject returns the full subject of op.
func Subject(op string) string { return Group + "." + op }

// The metering stream. Only the gateway and the services may publish on usage.> (NATS
// permissions), so nobody outside a tenant can charge usage to it.
const (
	Stream         = "USAGE_EVENTS"
	Subjects       = "usage.>"
	SubjectCounts  = "usage.v1.counts" // CountsEvent, from gateways
	SubjectGauge   = "usage.v1.gauge"  // GaugeEvent, from the agent, channel and sshkey services
	DurableApplier = "usage-applier"   // the usage service's durable consumer (shared by replicas)
)

// StreamConfig is the one definition of the metering stream; publishers and the usage
// service ensure it with the same values. Events are kept a week so a usage service that
// was down loses nothing; Duplicates covers a sender's retries of one flush. Replicas is
// at least 1.
func StreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Replicas:    max(replicas, 1),
		Name:        Stream,
		Description: "usage metering facts (counts from gateways, gauges from services)",
		Subjects:    []string{Subjects},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
		DenyDelete:  true,
	}
}

// DateLayout is the layout of a day (UTC): "2006-01-02".
const DateLayout = time.DateOnly

// Day is t's UTC day.
func Day(t time.Time) string { return t.UTC().Format(DateLayout) }

// Counts are the additive counters of one tenant on one day.
type Counts struct {
	APICalls          int64 `json:"api_calls"`
	MessagesPublished int64 `json:"messages_published"`
	MessagesDelivered int64 `json:"messages_delivered"`
	BytesIn           int64 `json:"bytes_in"`
	BytesOut          int64 `json:"bytes_out"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.APICalls += o.APICalls
	c.MessagesPublished += o.MessagesPublished
	c.MessagesDelivered += o.MessagesDelivered
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
}

// IsZero reports whether every counter is 0.
func (c Counts) IsZero() bool { return c == Counts{} }

// CountsEvent is one flush of one gateway process. Source is unique per process start (a
// ULID), Batch counts its flushes from 1; a sender sends flush k+1 only after JetStream
// acknowledged flush k, and resends flush k unchanged until then (MsgID dedups).
type CountsEvent struct {
	Source  string        `json:"source"`
	Batch   uint64        `json:"batch"`
	Entries []CountsEntry `json:"entries"`
}

// CountsEntry is what one flush adds to one (tenant, day) row.
type CountsEntry struct {
	TenantID string `json:"tenant_id"`
	Date     string `json:"date"`
	// Prev is the Batch of the previous flush of the same Source that carried this
	// (tenant, day); 0 when none did.
	Prev   uint64 `json:"prev"`
	Counts Counts `json:"counts"`
	// PeakConnections is the highest number of the tenant's concurrent sessions across
	// all gateways seen by this sender during the flush period (a max: applying it twice
	// changes nothing).
	PeakConnections int64 `json:"peak_connections,omitempty"`
	// ActiveAgents are agents that had a WebSocket session during the flush period.
	ActiveAgents []string `json:"active_agents,omitempty"`
}

// MsgID is the Nats-Msg-Id of a flush: a resend of the same flush is a duplicate.
func (e CountsEvent) MsgID() string {
	return "counts:" + e.Source + ":" + strconv.FormatUint(e.Batch, 10)
}

// Gauge kinds.
const (
	GaugeAgents   = "agents"
	GaugeChannels = "channels"
	GaugeSSHKeys  = "ssh_keys"
)

// GaugeEvent is the tenant's current count of one kind, sent by its owning service after
// every change of that count. The row of Day(At) keeps the value with the latest At (the
// larger value on a tie); a day without an event carries the last earlier value forward.
type GaugeEvent struct {
	TenantID string    `json:"tenant_id"`
	Kind     string    `json:"kind"`
	Value    int64     `json:"value"`
	At       time.Time `json:"at"`
}

// MsgID dedups a resent gauge event.
func (e GaugeEvent) MsgID() string {
	return "gauge:" + e.TenantID + ":" + e.Kind + ":" + strconv.FormatInt(e.At.UnixNano(), 10) + ":" + strconv.FormatInt(e.Value, 10)
}

// MaxRangeDays is the longest range one metrics read may cover (dates inclusive).
const MaxRangeDays = 92

// DefaultRangeDays is the range when no start date is given: today and the 6 days before.
const DefaultRangeDays = 7

// MetricsRequest asks for the caller's tenant's daily rows. Dates are YYYY-MM-DD (UTC),
// inclusive; empty EndDate means today, empty StartDate means DefaultRangeDays ending at
// EndDate.
type MetricsRequest struct {
	StartDate string `json:"start_date,omitempty"`
	EndDate   string `json:"end_date,omitempty"`
}

// Range resolves the request against today: the first and last day, or a 422.
func (r MetricsRequest) Range(now time.Time) (start, end time.Time, err error) {
	var v validation.Errors
	end = now.UTC().Truncate(24 * time.Hour)
	if r.EndDate != "" {
		t, perr := time.Parse(DateLayout, r.EndDate)
		if perr != nil {
			v.Add("end_date", "must be a date YYYY-MM-DD")
		}
		end = t
	}
	start = end.AddDate(0, 0, -(DefaultRangeDays - 1))
	if r.StartDate != "" {
		t, perr := time.Parse(DateLayout, r.StartDate)
		if perr != nil {
			v.Add("start_date", "must be a date YYYY-MM-DD")
		}
		start = t
	}
	if err := v.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	switch days := int(end.Sub(start)/(24*time.Hour)) + 1; {
	case days < 1:
		v.Add("end_date", "must not be before start_date")
	case days > MaxRangeDays:
		v.Add("start_date", "the range may cover at most %d days", MaxRangeDays)
	}
	if err := v.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	return start, end, nil
}

// DailyRow is one tenant's usage on one UTC day. Agents, Channels and SSHKeys are
// end-of-day counts (now, for today); ActiveAgents counts distinct agents with a session
// that day; PeakConnections is the highest concurrent sessions across all gateways.
type DailyRow struct {
	TenantID string `json:"tenant_id"`
	Date     string `json:"date"`
	Counts
	Agents          int64 `json:"agents"`
	ActiveAgents    int64 `json:"active_agents"`
	Channels        int64 `json:"channels"`
	SSHKeys         int64 `json:"ssh_keys"`
	PeakConnections int64 `json:"peak_connections"`
}

// Totals sums the counters over the range; Messages = published + delivered.
type Totals struct {
	Counts
	Messages int64 `json:"messages"`
}

// MetricsResponse is one row per day of the range, zeros included, oldest first; the
// totals; the tenant's plan limits.
type MetricsResponse struct {
	Metrics []DailyRow   `json:"metrics"`
	Totals  Totals       `json:"totals"`
	Limits  plans.Limits `json:"limits"`
}
