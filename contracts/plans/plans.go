// Package plans is the one table of subscription plans and their limits (SPEC §6). Every
// service and the gateway read limits from here; nothing else hard-codes a limit.
package plans

// Tier names.
const (
	Free       = "free"
	Basic      = "basic"
	Pro        = "pro"
	Enterprise = "enterprise"
)

// DefaultTier is the plan of a tenant created without one.
const DefaultTier = Basic

// MaxMessageBytes is the published-message size limit of every plan (64 KiB).
const MaxMessageBytes = 64 << 10

// Limits of a plan; nil means unlimited (JSON null).
type Limits struct {
	MaxAgents               *int64 `json:"max_agents"`
	MaxChannels             *int64 `json:"max_channels"`
	MaxSSHKeys              *int64 `json:"max_ssh_keys"`
	MaxMessagesPerDay       *int64 `json:"max_messages_per_day"`
	MaxAPICallsPerMinute    *int64 `json:"max_api_calls_per_minute"`
	MaxConcurrentConnection *int64 `json:"max_concurrent_connections"`
	MaxMessageBytes         *int64 `json:"max_message_bytes"`
	MaxHistoryMessages      *int64 `json:"max_history_messages"`
	MaxHistoryAgeSeconds    *int64 `json:"max_history_age_seconds"`
}

// Plan is one row of the plans table.
type Plan struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	PriceMonthly float64 `json:"price_monthly"`
	Limits       Limits  `json:"limits"`
}

func n(v int64) *int64 { return &v }

const day = 24 * 60 * 60

var table = []Plan{
	{ID: Free, Name: "Free", PriceMonthly: 0, Limits: Limits{
		MaxAgents: n(3), MaxChannels: n(10), MaxSSHKeys: n(5), MaxMessagesPerDay: n(10_000),
		MaxAPICallsPerMinute: n(100), MaxConcurrentConnection: n(5), MaxMessageBytes: n(MaxMessageBytes),
		MaxHistoryMessages: n(1_000), MaxHistoryAgeSeconds: n(1 * day)}},
	{ID: Basic, Name: "Basic", PriceMonthly: 9, Limits: Limits{
		MaxAgents: n(5), MaxChannels: n(50), MaxSSHKeys: n(20), MaxMessagesPerDay: n(50_000),
		MaxAPICallsPerMinute: n(500), MaxConcurrentConnection: n(20), MaxMessageBytes: n(MaxMessageBytes),
		MaxHistoryMessages: n(10_000), MaxHistoryAgeSeconds: n(7 * day)}},
	{ID: Pro, Name: "Pro", PriceMonthly: 29, Limits: Limits{
		MaxAgents: n(10), MaxChannels: n(100), MaxSSHKeys: n(50), MaxMessagesPerDay: n(100_000),
		MaxAPICallsPerMinute: n(1_000), MaxConcurrentConnection: n(50), MaxMessageBytes: n(MaxMessageBytes),
		MaxHistoryMessages: n(100_000), MaxHistoryAgeSeconds: n(30 * day)}},
	{ID: Enterprise, Name: "Enterprise", PriceMonthly: 0, Limits: Limits{MaxMessageBytes: n(MaxMessageBytes)}},
}

// All returns every plan, cheapest first. The plans are deep copies: a caller may
// change them without touching the table.
func All() []Plan {
	out := make([]Plan, len(table))
	for i, p := range table {
		out[i] = p.clone()
	}
	return out
}

// Get returns (a deep copy of) the plan with id, and whether it exists.
func Get(id string) (Plan, bool) {
	for _, p := range table {
		if p.ID == id {
			return p.clone(), true
		}
	}
	return Plan{}, false
}

// clone copies p with limits that share no pointer with the table.
func (p Plan) clone() Plan {
	l := &p.Limits
	for _, f := range []**int64{&l.MaxAgents, &l.MaxChannels, &l.MaxSSHKeys, &l.MaxMessagesPerDay,
		&l.MaxAPICallsPerMinute, &l.MaxConcurrentConnection, &l.MaxMessageBytes,
		&l.MaxHistoryMessages, &l.MaxHistoryAgeSeconds} {
		if *f != nil {
			*f = n(**f)
		}
	}
	return p
}

// Valid reports whether id names a plan.
func Valid(id string) bool {
	_, ok := Get(id)
	return ok
}
