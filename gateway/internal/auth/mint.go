package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// UserToken is what an HS256 user token minted here says.
type UserToken struct {
	UserID   string   // sub
	Email    string   // optional
	TenantID string   // optional tenant_id claim (admin_token of a new tenant)
	Roles    []string // optional; "platform_admin" marks a platform operator
	TTL      time.Duration
}

// AgentToken is what an agent token minted by /auth/verify says.
type AgentToken struct {
	TenantID string // lower-case UUID
	AgentID  string // ULID, any case (upper-cased)
	KeyID    string // ULID of the SSH key that logged in, any case (upper-cased)
	TTL      time.Duration
}

type userClaims struct {
	jwt.RegisteredClaims
	Email    string   `json:"email,omitempty"`
	TenantID string   `json:"tenant_id,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

type agentClaims struct {
	jwt.RegisteredClaims
	TokenUse string `json:"token_use"`
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
	KeyID    string `json:"key_id"`
}

// MintUserToken signs an HS256 user token (used for admin_token on tenant create: 30 min, tenant_id claim) —
// and by the local launcher's `make token` through the same claims layout (SignUserToken).
func (a *Authenticator) MintUserToken(userID, email, tenantID string, roles []string, ttl time.Duration) (string, error) {
	return SignUserToken(a.cfg.JWTSecret, UserToken{UserID: userID, Email: email, TenantID: tenantID, Roles: roles, TTL: ttl})
}

// MintAgentToken signs the agent token /auth/verify returns, and its exp.
func (a *Authenticator) MintAgentToken(tenantID, agentID, keyID string, ttl time.Duration) (string, time.Time, error) {
	return SignAgentToken(a.cfg.JWTSecret, AgentToken{TenantID: tenantID, AgentID: agentID, KeyID: keyID, TTL: ttl})
}

// SignUserToken signs t with secret (HS256) in the claims layout Authenticate reads:
// iss "artcafe", sub, email, tenant_id, roles, iat, exp.
func SignUserToken(secret []byte, t UserToken) (string, error) {
	switch {
	case len(secret) < MinSecretBytes:
		return "", fmt.Errorf("auth: secret must be at least %d bytes", MinSecretBytes)
	case !validUserID(t.UserID):
		return "", errors.New("auth: user id must be 1-256 characters without control characters")
	case t.TenantID != "" && !validation.IsUUID(t.TenantID):
		return "", errors.New("auth: tenant id must be a lower-case UUID")
	case cleanEmail(t.Email) != t.Email:
		return "", errors.New("auth: email is not usable in a token")
	case t.TTL <= 0:
		return "", errors.New("auth: ttl must be positive")
	}
	now, exp := expiry(t.TTL)
	c := userClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   t.UserID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Email:    t.Email,
		TenantID: t.TenantID,
		Roles:    t.Roles,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// SignAgentToken signs t with secret (HS256) in the agent layout of SPEC §13 and returns
// the token with its exp.
func SignAgentToken(secret []byte, t AgentToken) (string, time.Time, error) {
	agent, key := strings.ToUpper(t.AgentID), strings.ToUpper(t.KeyID)
	switch {
	case len(secret) < MinSecretBytes:
		return "", time.Time{}, fmt.Errorf("auth: secret must be at least %d bytes", MinSecretBytes)
	case !validation.IsUUID(t.TenantID):
		return "", time.Time{}, errors.New("auth: tenant id must be a lower-case UUID")
	case !isULID(agent) || !isULID(key):
		return "", time.Time{}, errors.New("auth: agent id and key id must be ULIDs")
	case t.TTL <= 0:
		return "", time.Time{}, errors.New("auth: ttl must be positive")
	}
	now, exp := expiry(t.TTL)
	c := agentClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   AgentSubPrefix + agent,
			Audience:  jwt.ClaimStrings{AgentAudience},
			IssuedAt:  jwt.NewNumericDate(now),
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
