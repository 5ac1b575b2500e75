package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// pageTokens turns a service's raw store cursor into the opaque next_token clients see,
// and back. A token is "v1." + base64url(cursor) + "." + base64url(HMAC-SHA256); the MAC
// covers the cursor and what the token is bound to (who lists, which route, which
// filters), none of which travels in the token. So a token cannot be forged, edited, or
// replayed by another tenant or on another list.
type pageTokens struct {
	key []byte
}

// maxTokenLen bounds the input before any decoding work.
const maxTokenLen = 2048

const tokenVersion = "v1"

// newPageTokens derives the signing key from the JWT secret, so the key is never the
// secret itself and needs no configuration of its own.
func newPageTokens(secret []byte) *pageTokens {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("next_token"))
	return &pageTokens{key: m.Sum(nil)}
}

// pageBinding is what a token is valid for.
type pageBinding struct {
	scope   string // "t:<tenant id>" or "u:<user id>"
	route   string // the list: unique across every list of the API (services reuse op names: use subjects)
	filters string // canonical filter values; "" when the list has none
}

func (p *pageTokens) mac(b pageBinding, cursor string) []byte {
	m := hmac.New(sha256.New, p.key)
	var n [binary.MaxVarintLen64]byte
	for _, s := range []string{tokenVersion, b.scope, b.route, b.filters, cursor} {
		// Length-prefixed so that no two different tuples hash the same bytes.
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// wrap returns the next_token for cursor; nil (JSON null) on the last page.
func (p *pageTokens) wrap(b pageBinding, cursor string) *string {
	if cursor == "" {
		return nil
	}
	t := tokenVersion + "." + base64.RawURLEncoding.EncodeToString([]byte(cursor)) + "." +
		base64.RawURLEncoding.EncodeToString(p.mac(b, cursor))
	return &t
}

// unwrap verifies token and returns its cursor. "" is the first page.
func (p *pageTokens) unwrap(b pageBinding, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	bad := natsrpc.BadRequest(natsrpc.CodeInvalidNextToken, "next_token is not valid for this list")
	if len(token) > maxTokenLen {
		return "", bad
	}
	version, rest, ok := strings.Cut(token, ".")
	if !ok || version != tokenVersion {
		return "", bad
	}
	enc, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return "", bad
	}
	cursor, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(cursor) == 0 {
		return "", bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, p.mac(b, string(cursor))) {
		return "", bad
	}
	return string(cursor), nil
}

// page reads ?limit= and ?next_token= of a list bound to b.
func (p *pageTokens) page(c *fiber.Ctx, b pageBinding) (limit int, cursor string, err error) {
	limit, err = queryLimit(c)
	if err != nil {
		return 0, "", err
	}
	cursor, err = p.unwrap(b, string(c.Context().QueryArgs().Peek("next_token")))
	return limit, cursor, err
}
