package validation_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// check runs one checker on a fresh Errors and reports whether it passed, failing the
// test if a failure was recorded under another field name.
func check(t *testing.T, run func(e *validation.Errors)) bool {
	t.Helper()
	var e validation.Errors
	run(&e)
	for _, fe := range e {
		if fe.Field != "f" {
			t.Errorf("error recorded under field %q, want f", fe.Field)
		}
		if fe.Message == "" {
			t.Error("error without a message")
		}
	}
	if len(e) > 1 {
		t.Errorf("one check recorded %d errors: %+v", len(e), e)
	}
	return len(e) == 0
}

type tcase struct {
	in string
	ok bool
}

func runStrings(t *testing.T, name string, cases []tcase, fn func(e *validation.Errors, s string)) {
	t.Helper()
	for _, c := range cases {
		if got := check(t, func(e *validation.Errors) { fn(e, c.in) }); got != c.ok {
			t.Errorf("%s(%q) passed = %v, want %v", name, c.in, got, c.ok)
		}
	}
}

func TestEmail(t *testing.T) {
	long := strings.Repeat("a", 242) + "@example.com" // 254 bytes
	runStrings(t, "Email", []tcase{
		{"", true}, // optional; Required covers presence
		{"a@b.co", true},
		{"first.last+tag@sub.example.co.uk", true},
		{"o'brien@example.com", true},
		{long, true},
		{"a" + long, false}, // 255
		{"plain", false},
		{"a@", false},
		{"@b.co", false},
		{"a@@b.co", false},
		{"a b@c.de", false},
		{"A <a@b.c>", false},
		{"<a@b.c>", false},
		{`"A" <a@b.c>`, false},
		{"a@b.c (work)", false},
		{" a@b.c", false},
		{"a@b.c ", false},
		{"a@b.c, d@e.f", false},
		{`"a"@b.c`, false},
		{"a@b.c\n", false},
	}, func(e *validation.Errors, s string) { e.Email("f", s) })
}

func TestHTTPSURL(t *testing.T) {
	base := "https://example.com/"
	exact := base + strings.Repeat("a", validation.MaxURL-len(base))
	runStrings(t, "HTTPSURL", []tcase{
		{"", true},
		{"https://example.com", true},
		{"https://cdn.example.com:8443/logo.png?v=2#top", true},
		{exact, true},
		{exact + "a", false},
		{"http://example.com", false},
		{"https://", false},
		{"https:example.com", false},
		{"https:///path", false},
		{"//example.com/logo.png", false},
		{"example.com", false},
		{"javascript:alert(1)", false},
		{"data:image/png;base64,AAAA", false},
		{"ftp://example.com/x", false},
		{"https://exa mple.com", false},
	}, func(e *validation.Errors, s string) { e.HTTPSURL("f", s) })
}

func TestColor(t *testing.T) {
	runStrings(t, "Color", []tcase{
		{"", true},
		{"#000000", true},
		{"#a1B2c3", true},
		{"#FFFFFF", true},
		{"#fff", false},
		{"a1b2c3", false},
		{"#a1b2c3d4", false},
		{"#GGGGGG", false},
		{"#a1b2c3 ", false},
		{" #a1b2c3", false},
		{"#a1b2c3\n", false},
		{"red", false},
		{"rgb(0,0,0)", false},
	}, func(e *validation.Errors, s string) { e.Color("f", s) })
}

func TestOneOf(t *testing.T) {
	runStrings(t, "OneOf", []tcase{
		{"", true},
		{"worker", true},
		{"system", true},
		{"Worker", false},
		{"work", false},
		{" worker", false},
	}, func(e *validation.Errors, s string) { e.OneOf("f", s, "worker", "system") })

	var e validation.Errors
	e.OneOf("f", "x", "worker", "system")
	if len(e) != 1 || !strings.Contains(e[0].Message, "worker, system") {
		t.Errorf("OneOf message should list the allowed values: %+v", e)
	}
}

func TestLimit(t *testing.T) {
	for n, ok := range map[int]bool{0: true, 1: true, 50: true, 100: true, 101: false, -1: false, 1 << 40: false} {
		if got := check(t, func(e *validation.Errors) { e.Limit("f", n) }); got != ok {
			t.Errorf("Limit(%d) passed = %v, want %v", n, got, ok)
		}
	}
}

func TestMaxLenCountsRunes(t *testing.T) {
	cases := []struct {
		s  string
		n  int
		ok bool
	}{
		{"", 0, true},
		{"abc", 3, true},
		{"abcd", 3, false},
		{strings.Repeat("é", 128), 128, true},  // 256 bytes, 128 characters
		{strings.Repeat("é", 129), 128, false}, // one character over
		{strings.Repeat("🙂", 10), 10, true},    // 40 bytes
		{strings.Repeat("🙂", 11), 10, false},
	}
	for _, c := range cases {
		if got := check(t, func(e *validation.Errors) { e.MaxLen("f", c.s, c.n) }); got != c.ok {
			t.Errorf("MaxLen(%d bytes, %d) passed = %v, want %v", len(c.s), c.n, got, c.ok)
		}
	}
}

func TestRequiredAndName(t *testing.T) {
	runStrings(t, "Required", []tcase{
		{"", false}, {"   ", false}, {"\t\n", false}, {"x", true}, {" x ", true},
	}, func(e *validation.Errors, s string) { e.Required("f", s) })

	var e validation.Errors
	if e.Required("f", "") || !e.Required("g", "x") {
		t.Error("Required must report whether the value was present")
	}

	runStrings(t, "Name", []tcase{
		{"", false},
		{"  ", false},
		{"agent one", true},
		{strings.Repeat("ñ", validation.MaxName), true},
		{strings.Repeat("ñ", validation.MaxName+1), false},
	}, func(e *validation.Errors, s string) { e.Name("f", s) })
}

func TestIsUUID(t *testing.T) {
	for s, ok := range map[string]bool{
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c":   true,
		"00000000-0000-0000-0000-000000000000":   true,
		"3F1C2A4E-8B7D-4C6E-9A5B-1D2E3F4A5B6C":   false, // upper case is not the canonical form
		"3f1c2a4e-8b7d-4c6e-9a5b-1D2e3f4a5b6c":   false,
		"3f1c2a4e8b7d4c6e9a5b1d2e3f4a5b6c":       false,
		"{3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c}": false,
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6":    false,
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c0":  false,
		" 3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c":  false,
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6g":   false,
		"01ARZ3NDEKTSV4RRFFQ69G5FAV":             false, // a ULID
		"":                                       false,
		"../3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b":  false,
		"3f1c2a4e8-b7d-4c6e-9a5b-1d2e3f4a5b6c":   false, // a dash out of place
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a-b6c":   false,
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6\n":  false,
	} {
		if got := validation.IsUUID(s); got != ok {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, ok)
		}
	}
}

func TestIsULID(t *testing.T) {
	for s, ok := range map[string]bool{
		"01ARZ3NDEKTSV4RRFFQ69G5FAV":           true,
		"00000000000000000000000000":           true,
		"7ZZZZZZZZZZZZZZZZZZZZZZZZZ":           true,  // the largest ULID
		"80000000000000000000000000":           false, // over 128 bits
		"01arz3ndektsv4rrffq69g5fav":           false, // callers upper-case first
		"01ARZ3NDEKTSV4RRFFQ69G5FA":            false,
		"01ARZ3NDEKTSV4RRFFQ69G5FAV0":          false,
		"01ARZ3NDEKTSV4RRFFQ69G5FAI":           false, // I, L, O, U are not Crockford
		"01ARZ3NDEKTSV4RRFFQ69G5FAL":           false,
		"01ARZ3NDEKTSV4RRFFQ69G5FAO":           false,
		"01ARZ3NDEKTSV4RRFFQ69G5FAU":           false,
		"01ARZ3NDEKTSV4RRFFQ69G5FA-":           false,
		" 1ARZ3NDEKTSV4RRFFQ69G5FAV":           false,
		"3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c": false,
		"":                                     false,
		"01ARZ3NDEKTSV4RRFFQ69G5F\u00c9":       false,
	} {
		if got := validation.IsULID(s); got != ok {
			t.Errorf("IsULID(%q) = %v, want %v", s, got, ok)
		}
	}
}

func TestErrorsErr(t *testing.T) {
	var e validation.Errors
	if err := e.Err(); err != nil {
		t.Fatalf("Err with no failures = %v (a typed nil would make err != nil true)", err)
	}
	e.Name("name", "")
	e.Add("trial_days", "must be between %d and %d", 0, 365)
	e.Color("primary_color", "#fff")
	err := e.Err()
	ne, ok := natsrpc.AsError(err)
	if !ok {
		t.Fatalf("Err = %T, want *natsrpc.Error", err)
	}
	if ne.Status != http.StatusUnprocessableEntity || ne.Code != natsrpc.CodeValidationFailed {
		t.Errorf("Err = %d %s", ne.Status, ne.Code)
	}
	var fields []string
	for _, fe := range ne.Errors {
		fields = append(fields, fe.Field)
	}
	if want := []string{"name", "trial_days", "primary_color"}; !slices.Equal(fields, want) {
		t.Errorf("fields = %v, want %v (in the order found)", fields, want)
	}
	if ne.Errors[1].Message != "must be between 0 and 365" {
		t.Errorf("Add did not format: %q", ne.Errors[1].Message)
	}
}
