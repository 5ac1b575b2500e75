// Package gaugetest reads the gauge events a service sent to the metering stream, so a
// service's tests can check that its counts reach usage.
package gaugetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

// Wait returns the gauge events of tenantID and kind stored in the metering stream, oldest
// first, once the last one has value want; it fails the test if that does not happen
// within 10 s.
func Wait(t testing.TB, js jetstream.JetStream, tenantID, kind string, want int64) []usagev1.GaugeEvent {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	var got []usagev1.GaugeEvent
	for {
		got = got[:0]
		if s, err := js.Stream(ctx, usagev1.Stream); err == nil {
			if info, err := s.Info(ctx); err == nil && info.State.Msgs > 0 {
				for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
					m, err := s.GetMsg(ctx, seq)
					if err != nil || m.Subject != usagev1.SubjectGauge {
						continue
					}
					var ev usagev1.GaugeEvent
					if json.Unmarshal(m.Data, &ev) == nil && ev.TenantID == tenantID && ev.Kind == kind {
						got = append(got, ev)
					}
				}
			}
		}
		if n := len(got); n > 0 && got[n-1].Value == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("gauge %s of %s: events %+v, want the last at %d", kind, tenantID, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
