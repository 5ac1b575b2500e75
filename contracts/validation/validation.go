// Package validation collects field errors of a request body into one 422 natsrpc.Error.
// Request types use it in their Validate methods, which both the gateway and the
// services call, so a rule is written once.
package validation

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// Common bounds (SPEC §4.1, §13).
const (
	MaxName        = 128
	MaxDescription = 1024
	MaxEmail       = 254
	MaxURL         = 2048
	// MaxMetadataBytes bounds a free-form metadata object, as encoded JSON.
	MaxMetadataBytes = 16 << 10
)

// Errors accumulates field errors.
type Errors []natsrpc.FieldError

// Add records a failure of field.
func (e *Errors) Add(field, format string, args ...any) {
	*e = append(*e, natsrpc.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err is nil when nothing failed, else a 422 *natsrpc.Error.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return natsrpc.Invalid(e...)
}

// Required fails when s is empty or blank.
func (e *Errors) Required(field, s string) bool {
	if strings.TrimSpace(s) == "" {
		e.Add(field, "is required")
		return false
	}
	return true
}

// MaxLen fails when s has more than n characters.
func (e *Errors) MaxLen(field, s string, n int) {
	if utf8.RuneCountInString(s) > n {
		e.Add(field, "must be at most %d characters", n)
	}
}

// Name checks a required display name.
func (e *Errors) Name(field, s string) {
	if e.Required(field, s) {
		e.MaxLen(field, s, MaxName)
	}
}

// Email checks an address (empty passes; combine with Required when needed).
func (e *Errors) Email(field, s string) {
	if s == "" {
		return
	}
	if len(s) > MaxEmail {
		e.Add(field, "must be at most %d characters", MaxEmail)
		return
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		e.Add(field, "must be an email address")
	}
}

// HTTPSURL checks an https URL of at most MaxURL characters (empty passes).
func (e *Errors) HTTPSURL(field, s string) {
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if len(s) > MaxURL || err != nil || u.Scheme != "https" || u.Host == "" {
		e.Add(field, "must be an https URL of at most %d characters", MaxURL)
	}
}

var colorRE = regexp.MustCompile(`^#[0-9A-Fa-f]{6}$`)

// Color checks #RRGGBB (empty passes).
func (e *Errors) Color(field, s string) {
	if s != "" && !colorRE.MatchString(s) {
		e.Add(field, "must be a colour as #RRGGBB")
	}
}

// OneOf fails when s is not one of allowed (empty passes).
func (e *Errors) OneOf(field, s string, allowed ...string) {
	if s != "" && !slices.Contains(allowed, s) {
		e.Add(field, "must be one of %s", strings.Join(allowed, ", "))
	}
}

// Metadata checks that a free-form object encodes to at most MaxMetadataBytes (nil
// passes).
func (e *Errors) Metadata(field string, m map[string]any) {
	if m == nil {
		return
	}
	if b, err := json.Marshal(m); err != nil || len(b) > MaxMetadataBytes {
		e.Add(field, "must encode to at most %d bytes of JSON", MaxMetadataBytes)
	}
}

// Limit checks a list page size: 0 means the default; otherwise 1–100.
func (e *Errors) Limit(field string, n int) {
	if n < 0 || n > 100 {
		e.Add(field, "must be between 1 and 100")
	}
}

// IsUUID reports a lower-case canonical UUID (tenant ids): 8-4-4-4-12 lower-case hex
// digits. Checked by hand rather than with a regexp: every tenant-scoped request checks
// its tenant id, and the regexp was a visible share of a read's CPU.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// crockford is the ULID alphabet (Crockford base32, upper-case).
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// IsULID reports a canonical upper-case ULID: 26 Crockford base32 characters, the first at
// most 7 (128 bits). Ids arrive in any case; callers upper-case them before asking.
func IsULID(s string) bool {
	if len(s) != 26 || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(crockford, rune(s[i])) {
			return false
		}
	}
	return true
}
