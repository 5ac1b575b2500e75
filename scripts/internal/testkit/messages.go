package testkit

import (
	"encoding/json"
	"testing"
)

// Ack is one acknowledged publish of message I (data {"i": I}): the seq its 200 reply
// gave and how many attempts it took.
type Ack struct {
	I        int
	Seq      uint64
	Attempts int
}

// Stored is one message as history or a live feed returned it; Raw is what a failure
// shows of it.
type Stored struct {
	Seq  uint64
	Data []byte
	Raw  string
}

// MessageNumber is i of a message's data {"i": i}.
func MessageNumber(data []byte) (int, bool) {
	var d struct {
		I *int `json:"i"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.I == nil {
		return 0, false
	}
	return *d.I, true
}

// CheckAckedHistory requires history (as listed, whole) to be oldest first and to hold
// every acknowledged message exactly once, at the seq its reply gave, in the order the
// replies came, and nothing else. Every message is retried until acknowledged under one
// Idempotency-Key, so an attempt stored without its ack is that same message: a message
// in history that no reply named, or one stored twice, is a lost idempotency promise.
func CheckAckedHistory(tb testing.TB, history []Stored, acks []Ack) {
	tb.Helper()
	seqOf := map[int][]uint64{} // i → seqs in history
	var last uint64
	for _, m := range history {
		i, ok := MessageNumber(m.Data)
		if !ok {
			tb.Fatalf("history message %s", m.Data)
		}
		if m.Seq <= last {
			tb.Fatalf("history is not oldest first: seq %d after %d", m.Seq, last)
		}
		last = m.Seq
		seqOf[i] = append(seqOf[i], m.Seq)
	}
	acked := map[int]bool{}
	last = 0
	for _, a := range acks {
		acked[a.I] = true
		if s := seqOf[a.I]; len(s) != 1 || s[0] != a.Seq {
			tb.Fatalf("acknowledged message %d (seq %d, %d attempts) appears in history with seqs %v", a.I, a.Seq, a.Attempts, s)
		}
		if a.Seq <= last {
			tb.Fatalf("acknowledged message %d has seq %d after seq %d", a.I, a.Seq, last)
		}
		last = a.Seq
	}
	for i, s := range seqOf {
		if !acked[i] {
			tb.Fatalf("message %d is in history (seqs %v) but no reply acknowledged it", i, s)
		}
	}
}

// MissingAck reports the first acknowledged message that got does not hold (by seq),
// for a poll that waits until a watcher has them all.
func MissingAck(got []Stored, acks []Ack) (Ack, bool) {
	seen := map[uint64]bool{}
	for _, f := range got {
		seen[f.Seq] = true
	}
	for _, a := range acks {
		if !seen[a.Seq] {
			return a, true
		}
	}
	return Ack{}, false
}

// CheckDelivered requires got, what the watcher called name received across all its
// sessions, to be acknowledged messages only, each with its own data, once and in seq
// order (a duplicate or a reordering after a reconnect shows here). describe is the
// watcher's state for the failure message.
func CheckDelivered(tb testing.TB, name string, got []Stored, acks []Ack, describe func() string) {
	tb.Helper()
	want := map[uint64]int{} // seq → i
	for _, a := range acks {
		want[a.Seq] = a.I
	}
	var last uint64
	for _, f := range got {
		i, ok := want[f.Seq]
		if !ok {
			tb.Fatalf("%s received seq %d, which no reply acknowledged: %s", name, f.Seq, f.Raw)
		}
		if n, ok := MessageNumber(f.Data); !ok || n != i {
			tb.Fatalf("%s received seq %d with data %s, want message %d", name, f.Seq, f.Data, i)
		}
		if f.Seq <= last {
			tb.Fatalf("%s received seq %d after seq %d (a duplicate or out of order): %s", name, f.Seq, last, describe())
		}
		last = f.Seq
	}
}
