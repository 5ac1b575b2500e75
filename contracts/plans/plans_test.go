package plans_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/plans"
)

// row is one line of the SPEC §6 table, written out by hand from the SPEC: the test
// fails if the code and the SPEC disagree. -1 means unlimited.
type row struct {
	id, name                             string
	price                                float64
	agents, channels, keys, msgsPerDay   int64
	callsPerMin, connections, historyMsg int64
	historyAge                           int64
}

const day = 24 * 60 * 60

var spec = []row{
	{"free", "Free", 0, 3, 10, 5, 10_000, 100, 5, 1_000, 1 * day},
	{"basic", "Basic", 9, 5, 50, 20, 50_000, 500, 20, 10_000, 7 * day},
	{"pro", "Pro", 29, 10, 100, 50, 100_000, 1_000, 50, 100_000, 30 * day},
	{"enterprise", "Enterprise", 0, -1, -1, -1, -1, -1, -1, -1, -1},
}

func limit(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestTableMatchesSpec(t *testing.T) {
	all := plans.All()
	if len(all) != len(spec) {
		t.Fatalf("%d plans, want %d", len(all), len(spec))
	}
	for i, want := range spec {
		p := all[i]
		if p.ID != want.id || p.Name != want.name || p.PriceMonthly != want.price {
			t.Errorf("plan %d = %s %q $%v, want %s %q $%v", i, p.ID, p.Name, p.PriceMonthly, want.id, want.name, want.price)
		}
		l := p.Limits
		got := []int64{limit(l.MaxAgents), limit(l.MaxChannels), limit(l.MaxSSHKeys), limit(l.MaxMessagesPerDay),
			limit(l.MaxAPICallsPerMinute), limit(l.MaxConcurrentConnection), limit(l.MaxHistoryMessages), limit(l.MaxHistoryAgeSeconds)}
		exp := []int64{want.agents, want.channels, want.keys, want.msgsPerDay, want.callsPerMin, want.connections, want.historyMsg, want.historyAge}
		if !slices.Equal(got, exp) {
			t.Errorf("%s limits = %v, want %v (agents, channels, keys, msgs/day, calls/min, connections, history msgs, history age)", p.ID, got, exp)
		}
		// The message size limit is the 64 KiB default on every plan (SPEC §4.5).
		if limit(l.MaxMessageBytes) != 64*1024 {
			t.Errorf("%s max_message_bytes = %d, want 65536", p.ID, limit(l.MaxMessageBytes))
		}
	}
	if plans.MaxMessageBytes != 64*1024 {
		t.Errorf("MaxMessageBytes = %d", plans.MaxMessageBytes)
	}
	if plans.DefaultTier != plans.Basic {
		t.Errorf("default tier = %s, want basic (SPEC §4.2)", plans.DefaultTier)
	}
	if ids := []string{plans.Free, plans.Basic, plans.Pro, plans.Enterprise}; !slices.Equal(ids, []string{"free", "basic", "pro", "enterprise"}) {
		t.Errorf("tier constants = %v", ids)
	}
}

// Unlimited is JSON null, and every limit key of the SPEC is present.
func TestLimitsJSON(t *testing.T) {
	p, ok := plans.Get(plans.Enterprise)
	if !ok {
		t.Fatal("no enterprise plan")
	}
	b, err := json.Marshal(p.Limits)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := []string{"max_agents", "max_channels", "max_ssh_keys", "max_messages_per_day", "max_api_calls_per_minute",
		"max_concurrent_connections", "max_message_bytes", "max_history_messages", "max_history_age_seconds"}
	if len(m) != len(keys) {
		t.Errorf("limits JSON has %d keys, want %d: %s", len(m), len(keys), b)
	}
	for _, k := range keys {
		v, present := m[k]
		if !present {
			t.Errorf("limits JSON lacks %s", k)
			continue
		}
		if k != "max_message_bytes" && v != nil {
			t.Errorf("enterprise %s = %v, want null", k, v)
		}
	}

	b, _ = json.Marshal(plans.All()[0])
	var free struct {
		ID     string           `json:"id"`
		Price  float64          `json:"price_monthly"`
		Limits map[string]int64 `json:"limits"`
	}
	if err := json.Unmarshal(b, &free); err != nil {
		t.Fatal(err)
	}
	if free.ID != "free" || free.Limits["max_agents"] != 3 || free.Limits["max_history_age_seconds"] != day {
		t.Errorf("free plan JSON = %s", b)
	}
}

func TestGetAndValid(t *testing.T) {
	for _, id := range []string{"free", "basic", "pro", "enterprise"} {
		p, ok := plans.Get(id)
		if !ok || p.ID != id || !plans.Valid(id) {
			t.Errorf("Get(%q) = %+v, %v", id, p, ok)
		}
	}
	for _, id := range []string{"", "Free", "gold", "enterprise "} {
		if _, ok := plans.Get(id); ok || plans.Valid(id) {
			t.Errorf("%q reported as a plan", id)
		}
	}
}

// A caller that changes what it got must not change the table for everyone else.
func TestResultsAreCopies(t *testing.T) {
	all := plans.All()
	all[0].Name = "changed"
	*all[0].Limits.MaxAgents = 1000
	got, _ := plans.Get(plans.Free)
	*got.Limits.MaxChannels = 1000
	again, _ := plans.Get(plans.Free)
	if again.Name != "Free" || *again.Limits.MaxAgents != 3 || *again.Limits.MaxChannels != 10 {
		t.Errorf("the plans table was changed through a returned value: %+v agents=%d channels=%d",
			again, *again.Limits.MaxAgents, *again.Limits.MaxChannels)
	}
	if *plans.All()[0].Limits.MaxAgents != 3 {
		t.Error("All returned the changed limit")
	}
}

// Every limit, including ones added later, comes back as its own pointer.
func TestEveryLimitIsCopied(t *testing.T) {
	a, b := plans.All(), plans.All()
	for i := range a {
		va, vb := reflect.ValueOf(a[i].Limits), reflect.ValueOf(b[i].Limits)
		for f := range va.NumField() {
			pa, pb := va.Field(f), vb.Field(f)
			if pa.Kind() != reflect.Pointer || pa.IsNil() {
				continue
			}
			if pa.Pointer() == pb.Pointer() {
				t.Errorf("%s %s is shared between two results", a[i].ID, va.Type().Field(f).Name)
			}
		}
		got, _ := plans.Get(a[i].ID)
		if !reflect.DeepEqual(got, a[i]) {
			t.Errorf("Get(%s) and All disagree", a[i].ID)
		}
	}
}
