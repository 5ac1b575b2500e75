package auth

import (
	"time"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
)

// MintUserToken signs an HS256 user token in the authtoken layout (used for admin_token on
// tenant create: 30 min, tenant_id claim).
func (a *Authenticator) MintUserToken(userID, email, tenantID string, roles []string, ttl time.Duration) (string, error) {
	return authtoken.SignUser(a.cfg.JWTSecret, authtoken.UserToken{UserID: userID, Email: email, TenantID: tenantID, Roles: roles, TTL: ttl})
}

// MintAgentToken signs the agent token /auth/verify returns, and its exp.
func (a *Authenticator) MintAgentToken(tenantID, agentID, keyID string, ttl time.Duration) (string, time.Time, error) {
	return authtoken.SignAgent(a.cfg.JWTSecret, authtoken.AgentToken{TenantID: tenantID, AgentID: agentID, KeyID: keyID, TTL: ttl})
}
