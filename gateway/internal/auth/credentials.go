package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// CredentialLookup asks whether an agent token's SSH key still stands: nil when the key
// exists in the tenant, is active and is bound to the agent; a *natsrpc.Error 404 when
// not; 503/504 when it cannot tell. sshkeylookup implements it with
// svc.sshkey.v1.lookup_credential.
type CredentialLookup interface {
	Credential(ctx context.Context, tenantID, agentID, keyID string) error
}

// CredentialsConfig configures Credentials; zero values take the Authenticator's defaults.
type CredentialsConfig struct {
	CacheTTL      time.Duration // ≤ MaxCacheTTL (default MaxCacheTTL)
	LookupTimeout time.Duration // default DefaultLookupTimeout
	CacheSize     int           // default DefaultCacheSize
}

// Credentials is the AgentChecker of the gateway: an agent token stays good while the
// SSH key it was minted with is active and bound to its agent (SPEC §13 "Revocation").
// Answers are cached for at most CacheTTL per (tenant, agent, key), one lookup serves
// every concurrent request for the same token, and the Forget methods drop answers at
// once when an event says a key, an agent or a tenant changed.
type Credentials struct {
	lookup CredentialLookup
	log    zerolog.Logger
	cache  *ttlCache[credentialKey, bool] // true: the key stands
	flight coalescer
}

type credentialKey struct{ tenant, agent, key string }

// NewCredentials builds the checker.
func NewCredentials(lookup CredentialLookup, cfg CredentialsConfig, log zerolog.Logger) (*Credentials, error) {
	if lookup == nil {
		return nil, errors.New("auth: a credential lookup is required")
	}
	switch {
	case cfg.CacheTTL == 0:
		cfg.CacheTTL = MaxCacheTTL
	case cfg.CacheTTL < 0 || cfg.CacheTTL > MaxCacheTTL:
		return nil, fmt.Errorf("auth: credential CacheTTL must be in (0, %s]", MaxCacheTTL)
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	return &Credentials{
		lookup: lookup,
		log:    log,
		cache:  newTTLCache[credentialKey, bool](cfg.CacheTTL, cfg.CacheSize),
		flight: coalescer{timeout: cfg.LookupTimeout, wait: waitError},
	}, nil
}

// CheckAgent implements AgentChecker: nil while the token's key stands; 401
// token_revoked once it does not; 503/504 (as the lookup said) when that cannot be told.
func (c *Credentials) CheckAgent(ctx context.Context, p Principal) error {
	k := credentialKey{tenant: p.TenantID, agent: p.AgentID, key: p.KeyID}
	ok, hit := c.cache.get(k)
	if !hit {
		gen := c.flight.generation()
		v, err := c.flight.shared(ctx, "c\x00"+k.tenant+"\x00"+k.agent+"\x00"+k.key, gen, func(ctx context.Context) (any, error) {
			err := c.lookup.Credential(ctx, k.tenant, k.agent, k.key)
			switch {
			case err == nil:
			case isNotFound(err):
			default:
				return nil, lookupError(err, "sshkey")
			}
			stands := err == nil
			c.flight.cacheIfCurrent(gen, func() { c.cache.set(k, stands) })
			return stands, nil
		})
		if err != nil {
			return err
		}
		ok = v.(bool)
	}
	if !ok {
		return errCredentialRevoked()
	}
	return nil
}

// ForgetKey drops what is known about a key (sshkeyv1.KeyChanged: revoked or deleted).
func (c *Credentials) ForgetKey(ev sshkeyv1.KeyChanged) {
	c.forget(ev.TenantID, "", ev.KeyID)
}

// ForgetAgent drops what is known about every key of an agent (agentv1.AgentChanged).
func (c *Credentials) ForgetAgent(ev agentv1.AgentChanged) {
	c.forget(ev.TenantID, ev.AgentID, "")
}

// ForgetTenant drops what is known about a tenant's keys (the tenant was deleted).
func (c *Credentials) ForgetTenant(tenantID string) {
	c.forget(tenantID, "", "")
}

// forget removes the tenant's entries of agent or key ("" = any). An event without a
// tenant clears everything rather than guess; ids are compared in their canonical case.
func (c *Credentials) forget(tenantID, agentID, keyID string) {
	tenantID, agentID, keyID = strings.ToLower(tenantID), strings.ToUpper(agentID), strings.ToUpper(keyID)
	c.flight.forget(func() {
		if tenantID == "" {
			c.cache.purge()
			return
		}
		c.cache.removeIf(func(k credentialKey, _ bool) bool {
			return k.tenant == tenantID && (agentID == "" || k.agent == agentID) && (keyID == "" || k.key == keyID)
		})
	})
}
