// Package auth is the gateway's authentication and tenant resolution: it verifies bearer
// tokens (HS256 with the shared secret, RS256/ES256 through an OIDC provider's JWKS) and
// tenant API keys into a Principal, and works out which tenant a request acts in and the
// caller's role there (SPEC §3 and §13), caching tenant-service lookups for a few seconds.
// Credentials checks agent tokens against their SSH key (revocation) the same way.
package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// Bounds and defaults of the configuration (SPEC §13 "Revocation").
const (
	MaxCacheTTL           = 5 * time.Second
	MaxAPIKeyCacheTTL     = time.Second
	DefaultLookupTimeout  = 5 * time.Second
	DefaultCacheSize      = 100_000
	DefaultJWKSRefresh    = 15 * time.Minute
	jwksUnknownKIDRefetch = time.Minute
	tokenCacheTTL         = time.Minute
	tokenCacheSize        = 50_000
	jwksFetchTimeout      = 5 * time.Second
	leeway                = 30 * time.Second
)

// Config configures an Authenticator. The first fields mirror environment variables of
// SPEC §2; the rest have working defaults.
type Config struct {
	JWTSecret      []byte        // AUTH_JWT_SECRET; New refuses < 32 bytes
	JWKSURL        string        // AUTH_JWKS_URL (optional): RS256/ES256 user tokens
	Issuer         string        // AUTH_ISSUER   (required when JWKSURL is set)
	Audience       string        // AUTH_AUDIENCE (required when JWKSURL is set)
	PlatformAdmins []string      // AUTH_PLATFORM_ADMINS: OIDC subs that are platform admins
	CacheTTL       time.Duration // memberships / tenant status, ≤ 5 s (default 5 s)
	APIKeyCacheTTL time.Duration // ≤ 1 s (default 1 s)

	// LookupTimeout bounds one tenant-service lookup (default 5 s). A lookup is shared by
	// every request waiting for the same answer, so it is not tied to one request's context.
	LookupTimeout time.Duration
	// CacheSize bounds each cache's entries (default 100,000).
	CacheSize int
	// JWKSRefreshInterval is how often the JWKS is refetched in the background (default 15 min).
	JWKSRefreshInterval time.Duration
	// Agents, when set, is asked about every verified agent token (revocation, SPEC §13):
	// the gateway sets a *Credentials. Nil trusts agent tokens until their exp (tests of
	// other parts).
	Agents AgentChecker
}

// AgentChecker decides whether a verified agent token is still good: nil, or a
// *natsrpc.Error (401 token_revoked for a deleted agent or revoked key; 503 when it cannot
// tell). It is the seam for agent-token revocation.
type AgentChecker interface {
	CheckAgent(ctx context.Context, p Principal) error
}

// Lookups is implemented by tenantlookup with natsrpc calls to svc.tenant.v1.lookup_*; errors are *natsrpc.Error
// (404 = no such membership/key/tenant; 503/504 = tenant service unavailable).
type Lookups interface {
	Membership(ctx context.Context, tenantID, userID string) (tenantv1.Membership, error)
	UserTenants(ctx context.Context, userID string, limit int) (tenantv1.LookupUserTenantsResponse, error)
	APIKey(ctx context.Context, keyHash string) (tenantv1.LookupAPIKeyResponse, error)
	// Tenant is a live tenant's standing (agent tokens carry no membership to ask about).
	Tenant(ctx context.Context, tenantID string) (tenantv1.TenantStanding, error)
}

// Principal is who made a request, as proven by its credential.
type Principal struct {
	Kind           natsrpc.PrincipalKind // user | agent | api_key
	UserID         string                // users: sub (fallback user_id claim)
	Email          string
	AgentID, KeyID string    // agent tokens
	TenantID       string    // API keys, agent tokens: their bound tenant; users: the tenant_id claim if any
	PlatformAdmin  bool      // never set on agents or API keys
	ExpiresAt      time.Time // token exp (zero for API keys)

	// tenantStatus and tenantTier are what the API-key lookup said about the key's tenant.
	tenantStatus, tenantTier string
}

// Access is the caller's standing in one tenant.
type Access struct {
	TenantID string
	// Role is owner|admin|member|viewer; "admin" for API keys; "" for agents and for a
	// platform admin who is not a member (who may only GET /tenants/{id}: the route layer decides).
	Role string
	// TenantStatus is active|suspended; "" when unknown (platform admins who are not
	// members). Enforcing suspension is the route layer's job: some routes are exempt.
	TenantStatus string
	// TenantTier is the tenant's subscription tier (plans.Free, …) as its lookup said, at
	// most CacheTTL old; services take count limits from it. "" when unknown.
	TenantTier string
}

// Authenticator verifies credentials and resolves tenants. It is safe for concurrent use.
type Authenticator struct {
	cfg     Config
	lookups Lookups
	log     zerolog.Logger

	hsParser   *jwt.Parser
	oidcParser *jwt.Parser
	jwks       *jwks // nil when no JWKS URL is configured
	admins     map[string]struct{}

	// tokens remembers verified bearer tokens (by SHA-256) until their exp, at most a
	// minute: verifying is pure but costs most of this package's time per request.
	tokens      *ttlCache[[32]byte, Principal]
	members     *ttlCache[memberKey, memberEntry]
	apiKeys     *ttlCache[[32]byte, apiKeyEntry]
	userTenants *ttlCache[[16]byte, userTenantsEntry]
	standings   *ttlCache[string, standingEntry] // by tenant id
	flight      coalescer

	closeOnce sync.Once
	cancel    context.CancelFunc
}

// New checks cfg and builds an Authenticator. With a JWKS URL it fetches the key set once
// (a failure is logged, not fatal: OIDC tokens get 503 until the provider answers) and
// keeps refreshing it until Close.
func New(cfg Config, lookups Lookups, log zerolog.Logger) (*Authenticator, error) {
	if len(cfg.JWTSecret) < authtoken.MinSecretBytes {
		return nil, fmt.Errorf("auth: AUTH_JWT_SECRET must be at least %d bytes", authtoken.MinSecretBytes)
	}
	if lookups == nil {
		return nil, errors.New("auth: lookups are required")
	}
	if err := defaults(&cfg); err != nil {
		return nil, err
	}
	admins := cfg.PlatformAdmins
	cfg.JWTSecret = bytes.Clone(cfg.JWTSecret) // the caller's slice may change later
	cfg.PlatformAdmins = nil                   // kept in admins below
	a := &Authenticator{
		cfg:     cfg,
		lookups: lookups,
		log:     log,
		hsParser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(leeway),
		),
		admins:      make(map[string]struct{}, len(admins)),
		tokens:      newTTLCache[[32]byte, Principal](tokenCacheTTL, tokenCacheSize),
		members:     newTTLCache[memberKey, memberEntry](cfg.CacheTTL, cfg.CacheSize),
		apiKeys:     newTTLCache[[32]byte, apiKeyEntry](cfg.APIKeyCacheTTL, cfg.CacheSize),
		userTenants: newTTLCache[[16]byte, userTenantsEntry](cfg.CacheTTL, cfg.CacheSize),
		standings:   newTTLCache[string, standingEntry](cfg.CacheTTL, cfg.CacheSize),
		flight:      coalescer{timeout: cfg.LookupTimeout, wait: waitError},
		cancel:      func() {},
	}
	for _, sub := range admins {
		if sub != "" {
			a.admins[sub] = struct{}{}
		}
	}
	if cfg.JWKSURL != "" {
		a.oidcParser = jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(leeway),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
		)
		ctx, cancel := context.WithCancel(context.Background())
		j, err := newJWKS(ctx, cfg.JWKSURL, cfg.JWKSRefreshInterval, log)
		if err != nil {
			cancel()
			return nil, err
		}
		a.jwks, a.cancel = j, cancel
	}
	return a, nil
}

func defaults(cfg *Config) error {
	if cfg.JWKSURL != "" {
		u, err := url.ParseRequestURI(cfg.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("auth: AUTH_JWKS_URL must be an http(s) URL")
		}
		if cfg.Issuer == "" || cfg.Audience == "" {
			return errors.New("auth: AUTH_ISSUER and AUTH_AUDIENCE are required with AUTH_JWKS_URL")
		}
	}
	switch {
	case cfg.CacheTTL == 0:
		cfg.CacheTTL = MaxCacheTTL
	case cfg.CacheTTL < 0 || cfg.CacheTTL > MaxCacheTTL:
		return fmt.Errorf("auth: CacheTTL must be in (0, %s]", MaxCacheTTL)
	}
	switch {
	case cfg.APIKeyCacheTTL == 0:
		cfg.APIKeyCacheTTL = MaxAPIKeyCacheTTL
	case cfg.APIKeyCacheTTL < 0 || cfg.APIKeyCacheTTL > MaxAPIKeyCacheTTL:
		return fmt.Errorf("auth: APIKeyCacheTTL must be in (0, %s]", MaxAPIKeyCacheTTL)
	}
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.JWKSRefreshInterval <= 0 {
		cfg.JWKSRefreshInterval = DefaultJWKSRefresh
	}
	return nil
}

// Close stops the JWKS refresh goroutine. It is safe to call more than once.
func (a *Authenticator) Close() {
	a.closeOnce.Do(a.cancel)
}

// logger is the request's logger when the caller put one in ctx, else the constructor's.
func (a *Authenticator) logger(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &a.log
}
