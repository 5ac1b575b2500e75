package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestBodyIsAJSONObjectOfTheSize(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	for _, size := range []int{64, 200, 1000} {
		b := body(42, sent, size)
		if len(b) != size {
			t.Fatalf("size %d: got %d bytes: %s", size, len(b), b)
		}
		var m struct {
			I int64 `json:"wsb_i"`
			T int64 `json:"wsb_t"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.I != 42 || m.T != sent.UnixNano() {
			t.Fatalf("size %d: %s → %+v %v", size, b, m, err)
		}
	}
}

func TestParseMessage(t *testing.T) {
	frame := `{"type":"message","message_id":"01J","seq":77,"channel_id":"C","tenant_id":"T",` +
		`"timestamp":"2026-01-01T00:00:00.000Z","sender":{"type":"user","id":"u"},"data":` + string(body(5, time.Unix(0, 999), 100)) + `}`
	m, ok := parseMessage([]byte(frame))
	if !ok || m.seq != 77 || m.index != 5 || m.sentNanos != 999 {
		t.Fatalf("parse: %+v %v", m, ok)
	}
	for _, other := range []string{
		`{"type":"subscribed","channel_id":"C"}`,
		`{"type":"message","seq":3,"data":{"other":1}}`, // not a bench message
		`{"type":"error","code":"rate_limited","detail":"x"}`,
	} {
		if _, ok := parseMessage([]byte(other)); ok {
			t.Fatalf("%s parsed as a bench message", other)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 1: time.Millisecond} {
		if got := percentile(s, p); got != want {
			t.Fatalf("p%.0f = %s, want %s", p, got, want)
		}
	}
	if percentile(nil, 99) != 0 {
		t.Fatal("empty samples")
	}
}

func TestMissingCountsOnlyAcknowledged(t *testing.T) {
	s := &subscriber{seen: []uint8{1, 0, 2, 0}}
	if n := s.missing([]bool{true, true, true, false, true}); n != 2 { // index 1 and 4
		t.Fatalf("missing = %d", n)
	}
}
