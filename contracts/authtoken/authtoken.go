// Package authtoken is the layout of the HS256 tokens this project mints (SPEC §13
// "Tokens and principals"): user tokens (the admin_token of a new tenant, the local
// launcher's tokens) and the agent tokens of /auth/verify. Minting and reading share it, so
// the claim names, issuer, audience and their checks are written once.
package authtoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Claims layout of the tokens this project mints (SPEC §13).
const (
	Issuer            = "artcafe"        // iss of every token the platform mints
	AgentAudience     = "artcafe-agent"  // aud of agent tokens
	AgentTokenUse     = "agent"          // token_use of agent tokens
	AgentSubPrefix    = "agent:"         // sub of agent tokens is agent:<agent id>
	RolePlatformAdmin = "platform_admin" // roles entry that marks a platform operator
	MinSecretBytes    = 32               // shortest HS256 secret accepted (AUTH_JWT_SECRET)
)

// UserToken describes an HS256 user token.
type UserToken struct {
	UserID   string   // sub
	Email    string   // optional
	TenantID string   // optional tenant_id claim (admin_token of a new tenant)
	Roles    []string // optional; RolePlatformAdmin marks a platform operator
	TTL      time.Duration
	IssuedAt time.Time // iat; zero means now (whole seconds either way)
}

// AgentToken describes an agent token minted by /auth/verify.
type AgentToken struct {
	TenantID string // lower-case UUID
	AgentID  string // ULID, any case (upper-cased)
	KeyID    string // ULID of the SSH key that logged in, any case (upper-cased)
	TTL      time.Duration
	IssuedAt time.Time // iat; zero means now (whole seconds either way)
}

// UserClaims is the payload of a user token: iss, sub, email, tenant_id, roles, iat, exp.
//
// Reading is lenient about the non-registered claims: one of another JSON type reads as
// absent (roles may also be a single string), because OIDC providers' tokens share these
// names with shapes of their own. Registered claims are decoded strictly.
type UserClaims struct {
	jwt.RegisteredClaims
	Email    string   `json:"email,omitempty"`
	TenantID string   `json:"tenant_id,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

// AgentClaims is the payload of an agent token: iss, sub agent:<agent id>, aud, token_use,
// tenant_id, agent_id, key_id, iat, exp. Reading is lenient like UserClaims.
type AgentClaims struct {
	jwt.RegisteredClaims
	TokenUse string `json:"token_use"`
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
	KeyID    string `json:"key_id"`
}

// UnmarshalJSON reads a user token's payload (see UserClaims).
func (c *UserClaims) UnmarshalJSON(b []byte) error {
	var v struct {
		jwt.RegisteredClaims
		Email    looseString `json:"email"`
		TenantID looseString `json:"tenant_id"`
		Roles    roleList    `json:"roles"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = UserClaims{RegisteredClaims: v.RegisteredClaims, Email: string(v.Email), TenantID: string(v.TenantID), Roles: v.Roles}
	return nil
}

// UnmarshalJSON reads an agent token's payload (see AgentClaims).
func (c *AgentClaims) UnmarshalJSON(b []byte) error {
	var v struct {
		jwt.RegisteredClaims
		TokenUse looseString `json:"token_use"`
		TenantID looseString `json:"tenant_id"`
		AgentID  looseString `json:"agent_id"`
		KeyID    looseString `json:"key_id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = AgentClaims{
		RegisteredClaims: v.RegisteredClaims,
		TokenUse:         string(v.TokenUse),
		TenantID:         string(v.TenantID),
		AgentID:          string(v.AgentID),
		KeyID:            string(v.KeyID),
	}
	return nil
}

// SignUser signs t with secret (HS256) in the UserClaims layout.
func SignUser(secret []byte, t UserToken) (string, error) {
	switch {
	case len(secret) < MinSecretBytes:
		return "", fmt.Errorf("authtoken: secret must be at least %d bytes", MinSecretBytes)
	case !ValidUserID(t.UserID):
		return "", errors.New("authtoken: user id must be 1-256 characters without control characters")
	case t.TenantID != "" && !validation.IsUUID(t.TenantID):
		return "", errors.New("authtoken: tenant id must be a lower-case UUID")
	case CleanEmail(t.Email) != t.Email:
		return "", errors.New("authtoken: email is not usable in a token")
	case t.TTL <= 0:
		return "", errors.New("authtoken: ttl must be positive")
	}
	iat, exp := expiry(t.IssuedAt, t.TTL)
	c := UserClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   t.UserID,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Email:    t.Email,
		TenantID: t.TenantID,
		Roles:    t.Roles,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// SignAgent signs t with secret (HS256) in the AgentClaims layout and returns the token
// with its exp.
func SignAgent(secret []byte, t AgentToken) (string, time.Time, error) {
	agent, key := strings.ToUpper(t.AgentID), strings.ToUpper(t.KeyID)
	switch {
	case len(secret) < MinSecretBytes:
		return "", time.Time{}, fmt.Errorf("authtoken: secret must be at least %d bytes", MinSecretBytes)
	case !validation.IsUUID(t.TenantID):
		return "", time.Time{}, errors.New("authtoken: tenant id must be a lower-case UUID")
	case !validation.IsULID(agent) || !validation.IsULID(key):
		return "", time.Time{}, errors.New("authtoken: agent id and key id must be ULIDs")
	case t.TTL <= 0:
		return "", time.Time{}, errors.New("authtoken: ttl must be positive")
	}
	iat, exp := expiry(t.IssuedAt, t.TTL)
	c := AgentClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   AgentSubPrefix + agent,
			Audience:  jwt.ClaimStrings{AgentAudience},
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		TokenUse: AgentTokenUse,
		TenantID: t.TenantID,
		AgentID:  agent,
		KeyID:    key,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		return "", time.Time{}, err
	}
	return s, exp, nil
}

// ValidUserID reports a usable user id: non-empty, at most 256 characters, valid UTF-8
// without control characters (user ids travel in NATS headers and logs).
func ValidUserID(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > tenantv1.MaxUserID || !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// CleanEmail returns s, or "" when s could not travel safely in a header.
func CleanEmail(s string) string {
	if len(s) > validation.MaxEmail || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return ""
	}
	return s
}

// expiry is the iat and exp of a token issued at iat (zero: now) for ttl, in whole
// seconds as the token carries them.
func expiry(iat time.Time, ttl time.Duration) (time.Time, time.Time) {
	if iat.IsZero() {
		iat = time.Now()
	}
	iat = iat.Truncate(time.Second)
	return iat, iat.Add(ttl)
}

// looseString is a claim read as a string when it is one and ignored otherwise.
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = looseString(v)
	}
	return nil
}

// roleList is a roles claim given as a string or an array; other shapes mean no roles, and
// entries that are not strings are skipped.
type roleList []string

func (r *roleList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*r = roleList{one}
		return nil
	}
	var many []any
	if json.Unmarshal(b, &many) == nil {
		for _, v := range many {
			if s, ok := v.(string); ok {
				*r = append(*r, s)
			}
		}
	}
	return nil
}
