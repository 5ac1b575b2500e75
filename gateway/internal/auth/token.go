package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

const (
	maxTokenBytes  = 8 << 10
	maxAPIKeyBytes = 256
)

// tokenClaims reads a token's payload in both layouts of authtoken at once: which one
// applies is known only after verifying (how it verified, then token_use), and a token is
// parsed once. Both layouts read their non-registered claims leniently, so an OIDC
// provider's unrelated claim shapes do not make its tokens unusable. The parser validates
// the registered claims, which both layouts share.
type tokenClaims struct {
	authtoken.UserClaims
	Agent  authtoken.AgentClaims
	UserID string // user_id: the user id when sub is missing (SPEC §3)
}

func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	// b is one JSON value already checked by encoding/json: hand it on as is.
	if err := c.UserClaims.UnmarshalJSON(b); err != nil {
		return err
	}
	if err := c.Agent.UnmarshalJSON(b); err != nil {
		return err
	}
	if c.Subject == "" {
		var alt struct {
			UserID looseString `json:"user_id"`
		}
		if err := json.Unmarshal(b, &alt); err != nil {
			return err
		}
		c.UserID = string(alt.UserID)
	}
	return nil
}

// Authenticate turns the raw header values into a principal. Errors are *natsrpc.Error:
// both present → 400 ambiguous_credentials; nothing → 401 unauthorized; bad/garbage/alg-none/wrong-secret/
// wrong-iss/aud → 401 unauthorized; expired → 401 token_expired; JWKS unreachable → 503 auth_unavailable.
func (a *Authenticator) Authenticate(ctx context.Context, authorization, apiKey string) (Principal, error) {
	switch {
	case authorization != "" && apiKey != "":
		return Principal{}, errAmbiguous()
	case apiKey != "":
		return a.authenticateAPIKey(ctx, apiKey)
	case authorization != "":
		token, ok := bearer(authorization)
		if !ok {
			return Principal{}, errBadToken()
		}
		return a.authenticateToken(ctx, token)
	}
	return Principal{}, errUnauthenticated()
}

// bearer extracts the token of "Bearer <token>" (scheme case-insensitive).
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	t := strings.TrimSpace(h[len(scheme):])
	return t, t != "" && len(t) <= maxTokenBytes
}

// authenticateToken verifies a JWT, or finds it among the recently verified ones.
func (a *Authenticator) authenticateToken(ctx context.Context, token string) (Principal, error) {
	sum := sha256.Sum256([]byte(token))
	p, ok := a.tokens.get(sum)
	if !ok {
		var err error
		if p, err = a.verifyToken(ctx, token); err != nil {
			return Principal{}, err
		}
		// The parsers accept a token until exp + leeway; so does the cache.
		a.tokens.setUntil(sum, p, p.ExpiresAt.Add(leeway))
	}
	if p.Kind == natsrpc.KindAgent && a.cfg.Agents != nil {
		// Revocation is asked every time, cached token or not.
		if err := a.cfg.Agents.CheckAgent(ctx, p); err != nil {
			return Principal{}, err
		}
	}
	return p, nil
}

// verifyToken checks a JWT's signature and claims. The key type comes from the token's
// alg and what the configuration enabled: HS256 → the secret; RS256/ES256 → the JWKS when
// one is configured; anything else is refused before any key is touched. Each parser pins
// its own algorithms again, so a token cannot pick a key of another type.
func (a *Authenticator) verifyToken(ctx context.Context, token string) (Principal, error) {
	alg := headerAlg(token)
	var claims tokenClaims
	switch {
	case alg == jwt.SigningMethodHS256.Alg():
		_, err := a.hsParser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) {
			return a.cfg.JWTSecret, nil
		})
		if err != nil {
			return Principal{}, a.tokenError(ctx, err, false)
		}
		if claims.Agent.TokenUse == authtoken.AgentTokenUse {
			return a.agentPrincipal(ctx, &claims)
		}
		return a.userPrincipal(ctx, &claims, false)

	case a.jwks != nil && (alg == jwt.SigningMethodRS256.Alg() || alg == jwt.SigningMethodES256.Alg()):
		_, err := a.oidcParser.ParseWithClaims(token, &claims, a.jwks.keyFunc(ctx))
		if err != nil {
			return Principal{}, a.tokenError(ctx, err, true)
		}
		return a.userPrincipal(ctx, &claims, true)
	}
	a.logger(ctx).Debug().Str("alg", safeAlg(alg)).Msg("auth: token algorithm not enabled")
	return Principal{}, errBadToken()
}

// tokenError classifies a parse failure. jwt/v5 checks claims only after the signature,
// so "expired" is never reported for a forged token.
func (a *Authenticator) tokenError(ctx context.Context, err error, oidc bool) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired()
	case oidc && errors.Is(err, errNoKey) && a.jwks.unavailable():
		a.logger(ctx).Warn().Err(err).Msg("auth: OIDC token refused: JWKS unavailable")
		return errAuthUnavailable()
	}
	a.logger(ctx).Debug().Err(err).Msg("auth: token refused")
	return errBadToken()
}

func (a *Authenticator) userPrincipal(ctx context.Context, c *tokenClaims, oidc bool) (Principal, error) {
	// A token that looks like an agent token but is not one is a minting bug; refuse it
	// rather than let it act as a user.
	if !oidc && slices.Contains(c.Audience, authtoken.AgentAudience) {
		a.logger(ctx).Debug().Msg("auth: user token with the agent audience refused")
		return Principal{}, errBadToken()
	}
	uid := c.Subject
	if uid == "" {
		uid = c.UserID
	}
	if !authtoken.ValidUserID(uid) {
		a.logger(ctx).Debug().Msg("auth: token has no usable user id")
		return Principal{}, errBadToken()
	}
	p := Principal{
		Kind:      natsrpc.KindUser,
		UserID:    uid,
		Email:     authtoken.CleanEmail(c.Email),
		TenantID:  c.TenantID,
		ExpiresAt: expiresAt(c),
	}
	if oidc {
		// An OIDC provider's roles are not ours to trust: the operator's list decides.
		_, p.PlatformAdmin = a.admins[uid]
	} else {
		p.PlatformAdmin = slices.Contains(c.Roles, authtoken.RolePlatformAdmin)
	}
	return p, nil
}

// agentPrincipal checks the claims /auth/verify puts in an agent token. A token claiming
// token_use "agent" that fails any of them is refused; it never falls back to a user.
func (a *Authenticator) agentPrincipal(ctx context.Context, c *tokenClaims) (Principal, error) {
	tenant := strings.ToLower(c.Agent.TenantID)
	agent := strings.ToUpper(c.Agent.AgentID)
	key := strings.ToUpper(c.Agent.KeyID)
	sub, hasPrefix := strings.CutPrefix(c.Subject, authtoken.AgentSubPrefix)
	switch {
	case c.Issuer != authtoken.Issuer, !slices.Contains(c.Audience, authtoken.AgentAudience),
		!hasPrefix, !validation.IsUUID(tenant), !validation.IsULID(agent), !validation.IsULID(key),
		strings.ToUpper(sub) != agent:
		a.logger(ctx).Debug().Msg("auth: agent token with invalid claims refused")
		return Principal{}, errBadToken()
	}
	return Principal{
		Kind:      natsrpc.KindAgent,
		AgentID:   agent,
		KeyID:     key,
		TenantID:  tenant,
		ExpiresAt: expiresAt(c),
	}, nil
}

// authenticateAPIKey finds the tenant of a tenant API key by the key's hash. Answers,
// including "no such key", are cached for at most APIKeyCacheTTL.
func (a *Authenticator) authenticateAPIKey(ctx context.Context, key string) (Principal, error) {
	if !strings.HasPrefix(key, tenantv1.APIKeyPrefix) || len(key) > maxAPIKeyBytes || !printableASCII(key) {
		return Principal{}, errBadAPIKey()
	}
	sum := sha256.Sum256([]byte(key))
	e, err := a.apiKey(ctx, sum)
	if err != nil {
		return Principal{}, err
	}
	if !e.found {
		return Principal{}, errBadAPIKey()
	}
	return Principal{Kind: natsrpc.KindAPIKey, TenantID: e.tenantID, tenantStatus: e.status, tenantTier: e.tier}, nil
}

// HashAPIKey is the one definition of the API-key hash (sha256, lower-case hex) shared with the tenant service contract.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// headerAlg reads alg from a JWT's header without trusting anything else in it.
func headerAlg(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > 1024 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Alg
}

// safeAlg keeps a token-supplied alg fit for a log line.
func safeAlg(alg string) string {
	if len(alg) > 16 || !printableASCII(alg) {
		return "?"
	}
	return alg
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
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

func expiresAt(c *tokenClaims) time.Time {
	if c.ExpiresAt == nil { // the parsers require exp; this only guards a nil
		return time.Time{}
	}
	return c.ExpiresAt.Time
}
