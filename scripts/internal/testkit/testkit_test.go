package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fatalTB records the first failure and stops the check the way t.Fatal would.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// failure runs check and returns its failure message ("" if it passed).
func failure(t *testing.T, check func(tb testing.TB)) (msg string) {
	t.Helper()
	f := &fatalTB{TB: t}
	defer func() {
		if r := recover(); r != nil && r != any(f) {
			panic(r)
		}
		msg = f.msg
	}()
	check(f)
	return ""
}

func msg(seq uint64, i int) Stored {
	return Stored{Seq: seq, Data: []byte(fmt.Sprintf(`{"i":%d}`, i)), Raw: fmt.Sprintf("frame %d", seq)}
}

func TestCheckAckedHistory(t *testing.T) {
	acks := []Ack{{I: 0, Seq: 1, Attempts: 1}, {I: 1, Seq: 3, Attempts: 2}}
	for _, tc := range []struct {
		name    string
		history []Stored
		want    string
	}{
		{"exact", []Stored{msg(1, 0), msg(3, 1)}, ""},
		{"stored twice", []Stored{msg(1, 0), msg(2, 1), msg(3, 1)}, "appears in history with seqs [2 3]"},
		{"unacknowledged", []Stored{msg(1, 0), msg(3, 1), msg(4, 2)}, "message 2 is in history"},
		{"lost", []Stored{msg(1, 0)}, "acknowledged message 1 (seq 3, 2 attempts) appears in history with seqs []"},
		{"newest first", []Stored{msg(3, 1), msg(1, 0)}, "not oldest first"},
		{"not a numbered message", []Stored{{Seq: 1, Data: []byte(`{}`)}}, "history message {}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failure(t, func(tb testing.TB) { CheckAckedHistory(tb, tc.history, acks) })
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("failure %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckDelivered(t *testing.T) {
	acks := []Ack{{I: 0, Seq: 1}, {I: 1, Seq: 3}}
	describe := func() string { return "state" }
	for _, tc := range []struct {
		name string
		got  []Stored
		want string
	}{
		{"exact", []Stored{msg(1, 0), msg(3, 1)}, ""},
		{"duplicate", []Stored{msg(1, 0), msg(3, 1), msg(3, 1)}, "w received seq 3 after seq 3 (a duplicate or out of order): state"},
		{"not acknowledged", []Stored{msg(1, 0), msg(2, 5)}, "w received seq 2, which no reply acknowledged: frame 2"},
		{"wrong data", []Stored{msg(1, 1)}, "w received seq 1 with data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failure(t, func(tb testing.TB) { CheckDelivered(tb, "w", tc.got, acks, describe) })
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("failure %q, want %q", got, tc.want)
			}
		})
	}
	if a, missing := MissingAck([]Stored{msg(1, 0)}, acks); !missing || a.Seq != 3 {
		t.Fatalf("MissingAck: %v %v", a, missing)
	}
	if _, missing := MissingAck([]Stored{msg(3, 1), msg(1, 0)}, acks); missing {
		t.Fatal("MissingAck reports a message that was received")
	}
}

func TestEnvironDropsControlledVariables(t *testing.T) {
	t.Setenv("DYNAMODB_ENDPOINT", "http://elsewhere")
	t.Setenv("TESTKIT_KEEP", "1")
	env := Environ("STORE=bolt")
	if slices.Contains(env, "DYNAMODB_ENDPOINT=http://elsewhere") || !slices.Contains(env, "TESTKIT_KEEP=1") ||
		env[len(env)-1] != "STORE=bolt" {
		t.Fatalf("environment %v", env)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports := FreePorts(t, 8)
	slices.Sort(ports)
	if len(slices.Compact(ports)) != 8 {
		t.Fatalf("ports %v", ports)
	}
	base := FreePortRange(t, 4)
	if base <= 0 || base+4 > 65535 {
		t.Fatalf("range from %d", base)
	}
}

func TestRepoRootAndTail(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatal(err)
	}
	if got := Tail("abcdef", 3); got != "…def" {
		t.Fatalf("Tail %q", got)
	}
	if got := Tail("abc", 3); got != "abc" {
		t.Fatalf("Tail %q", got)
	}
}
