package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// memberKey identifies a (tenant, user) pair; the user id is hashed so that keys stay
// small whatever the length of an OIDC sub.
type memberKey struct {
	tenant string
	user   [16]byte
}

// memberEntry is a cached membership answer; found is false for "not a member".
type memberEntry struct {
	role, status, tier string
	found              bool
}

type apiKeyEntry struct {
	tenantID, status, tier string
	found                  bool
}

// standingEntry is a cached tenant standing; found is false for "no such tenant".
type standingEntry struct {
	status, tier string
	found        bool
}

// userTenantsEntry is all tenant resolution needs of a user's memberships: how many
// (0, 1, or 2 meaning "several") and the only one when there is one.
type userTenantsEntry struct {
	n    int
	only tenantv1.Membership
}

// Standing is a tenant's status and tier as the tenant service last said (≤ CacheTTL old).
type Standing struct {
	Found  bool   // false: no such tenant (or it is being deleted)
	Status string // active|suspended
	Tier   string // plans.Free, …
}

// Resolve picks the tenant of a tenant-scoped request that does not name it in the path (SPEC §13 "Tenant resolution"
// 1, 3, 4): header (may be "") → validated lower-case UUID else 400 invalid_tenant_id; API keys/agents are bound (a
// disagreeing header → 403 forbidden); users: header, else tenant_id claim, else their only membership; none or several
// with none chosen → 400 tenant_required; not a member → 403 forbidden.
func (a *Authenticator) Resolve(ctx context.Context, p Principal, headerTenant string) (Access, error) {
	if headerTenant != "" && !validation.IsUUID(headerTenant) {
		return Access{}, errInvalidTenantID()
	}
	switch p.Kind {
	case natsrpc.KindAPIKey, natsrpc.KindAgent:
		if p.TenantID == "" {
			return Access{}, errUnauthenticated()
		}
		if headerTenant != "" && headerTenant != p.TenantID {
			return Access{}, errBoundElsewhere()
		}
		return a.boundAccess(ctx, p)
	case natsrpc.KindUser:
		if p.UserID == "" {
			return Access{}, errUnauthenticated()
		}
	default:
		return Access{}, errUnauthenticated()
	}

	tenant := headerTenant
	if tenant == "" && p.TenantID != "" {
		if !validation.IsUUID(p.TenantID) {
			return Access{}, errInvalidTenantClaim()
		}
		tenant = p.TenantID
	}
	if tenant == "" {
		ut, err := a.onlyTenant(ctx, p.UserID)
		if err != nil {
			return Access{}, err
		}
		if ut.n != 1 {
			return Access{}, errTenantRequired(ut.n > 1)
		}
		return Access{TenantID: ut.only.TenantID, Role: ut.only.Role, TenantStatus: ut.only.TenantStatus, TenantTier: ut.only.TenantTier}, nil
	}
	m, err := a.membership(ctx, tenant, p.UserID)
	if err != nil {
		return Access{}, err
	}
	if !m.found {
		return Access{}, errNotMember()
	}
	return Access{TenantID: tenant, Role: m.role, TenantStatus: m.status, TenantTier: m.tier}, nil
}

// ForPath is the caller's access to the tenant named in a /tenants/{id} path (rule 2): malformed id or no access → 404
// not_found; header and claim ignored. A platform admin who is not a member gets Access{Role: ""} (not an error).
func (a *Authenticator) ForPath(ctx context.Context, p Principal, tenantID string) (Access, error) {
	if !validation.IsUUID(tenantID) {
		return Access{}, errTenantNotFound()
	}
	switch p.Kind {
	case natsrpc.KindAPIKey, natsrpc.KindAgent:
		if p.TenantID == "" || p.TenantID != tenantID {
			return Access{}, errTenantNotFound()
		}
		return a.boundAccess(ctx, p)
	case natsrpc.KindUser:
		if p.UserID == "" {
			return Access{}, errUnauthenticated()
		}
	default:
		return Access{}, errUnauthenticated()
	}
	m, err := a.membership(ctx, tenantID, p.UserID)
	if err != nil {
		return Access{}, err
	}
	switch {
	case m.found:
		return Access{TenantID: tenantID, Role: m.role, TenantStatus: m.status, TenantTier: m.tier}, nil
	case p.PlatformAdmin:
		return Access{TenantID: tenantID}, nil
	}
	return Access{}, errTenantNotFound()
}

// boundAccess is the access of a credential bound to one tenant. API keys act as admin,
// with the standing their own lookup returned. Agents have no role in the tenant (the
// route layer knows what an agent may do); their tenant's standing is looked up (cached),
// and a tenant that no longer exists revokes the token.
func (a *Authenticator) boundAccess(ctx context.Context, p Principal) (Access, error) {
	if p.Kind == natsrpc.KindAPIKey {
		return Access{TenantID: p.TenantID, Role: natsrpc.RoleAdmin, TenantStatus: p.tenantStatus, TenantTier: p.tenantTier}, nil
	}
	st, err := a.TenantStanding(ctx, p.TenantID)
	if err != nil {
		return Access{}, err
	}
	if !st.Found {
		return Access{}, errTenantGone()
	}
	return Access{TenantID: p.TenantID, TenantStatus: st.Status, TenantTier: st.Tier}, nil
}

// Forget drops cached state for a tenant (called on tenantv1.TenantChanged events from NATS):
// its memberships, standing, API keys pointing at it, and every user's tenant list (a new
// member's list does not mention the tenant yet). An event without a tenant clears everything.
func (a *Authenticator) Forget(ev tenantv1.TenantChanged) {
	a.flight.forget(func() {
		a.userTenants.purge()
		if ev.TenantID == "" {
			a.members.purge()
			a.apiKeys.purge()
			a.standings.purge()
			return
		}
		a.members.removeIf(func(k memberKey, _ memberEntry) bool { return k.tenant == ev.TenantID })
		a.apiKeys.removeIf(func(_ [32]byte, e apiKeyEntry) bool { return e.tenantID == ev.TenantID })
		a.standings.removeIf(func(k string, _ standingEntry) bool { return k == ev.TenantID })
	})
}

// TenantStanding is the cached answer to "does tenantID exist, and what are its status
// and tier" (agent tokens, and /auth/verify before it mints one). Errors are
// *natsrpc.Error: 503/504 when the tenant service cannot answer.
func (a *Authenticator) TenantStanding(ctx context.Context, tenantID string) (Standing, error) {
	if !validation.IsUUID(tenantID) {
		return Standing{}, nil
	}
	if e, ok := a.standings.get(tenantID); ok {
		return Standing{Found: e.found, Status: e.status, Tier: e.tier}, nil
	}
	gen := a.flight.generation()
	v, err := a.flight.shared(ctx, "t\x00"+tenantID, gen, func(ctx context.Context) (any, error) {
		st, err := a.lookups.Tenant(ctx, tenantID)
		var e standingEntry
		switch {
		case err == nil:
			e = standingEntry{status: st.TenantStatus, tier: st.TenantTier, found: true}
		case isNotFound(err):
		default:
			return nil, lookupError(err, "tenant")
		}
		a.flight.cacheIfCurrent(gen, func() { a.standings.set(tenantID, e) })
		return e, nil
	})
	if err != nil {
		return Standing{}, err
	}
	e := v.(standingEntry)
	return Standing{Found: e.found, Status: e.status, Tier: e.tier}, nil
}

// membership is the cached answer to "what is user's role in tenant".
func (a *Authenticator) membership(ctx context.Context, tenant, user string) (memberEntry, error) {
	key := memberKey{tenant: tenant, user: hashUser(user)}
	if e, ok := a.members.get(key); ok {
		return e, nil
	}
	gen := a.flight.generation()
	v, err := a.flight.shared(ctx, "m\x00"+tenant+"\x00"+string(key.user[:]), gen, func(ctx context.Context) (any, error) {
		m, err := a.lookups.Membership(ctx, tenant, user)
		var e memberEntry
		switch {
		case err == nil:
			e = memberEntry{role: m.Role, status: m.TenantStatus, tier: m.TenantTier, found: true}
		case isNotFound(err):
		default:
			return nil, lookupError(err, "tenant")
		}
		a.flight.cacheIfCurrent(gen, func() { a.members.set(key, e) })
		return e, nil
	})
	if err != nil {
		return memberEntry{}, err
	}
	return v.(memberEntry), nil
}

// onlyTenant is the cached answer to "which tenants is user in" (up to two).
func (a *Authenticator) onlyTenant(ctx context.Context, user string) (userTenantsEntry, error) {
	key := hashUser(user)
	if e, ok := a.userTenants.get(key); ok {
		return e, nil
	}
	gen := a.flight.generation()
	v, err := a.flight.shared(ctx, "u\x00"+string(key[:]), gen, func(ctx context.Context) (any, error) {
		r, err := a.lookups.UserTenants(ctx, user, 2)
		var e userTenantsEntry
		switch {
		case err == nil:
			e.n = min(len(r.Memberships), 2)
			if r.More {
				e.n = 2
			}
			if e.n == 1 {
				e.only = r.Memberships[0]
			}
		case isNotFound(err): // no memberships
		default:
			return nil, lookupError(err, "tenant")
		}
		a.flight.cacheIfCurrent(gen, func() { a.userTenants.set(key, e) })
		return e, nil
	})
	if err != nil {
		return userTenantsEntry{}, err
	}
	return v.(userTenantsEntry), nil
}

// apiKey is the cached answer to "whose key hashes to sum".
func (a *Authenticator) apiKey(ctx context.Context, sum [32]byte) (apiKeyEntry, error) {
	if e, ok := a.apiKeys.get(sum); ok {
		return e, nil
	}
	gen := a.flight.generation()
	v, err := a.flight.shared(ctx, "k\x00"+string(sum[:]), gen, func(ctx context.Context) (any, error) {
		r, err := a.lookups.APIKey(ctx, hex.EncodeToString(sum[:]))
		var e apiKeyEntry
		switch {
		case err == nil && validation.IsUUID(r.TenantID):
			e = apiKeyEntry{tenantID: r.TenantID, status: r.TenantStatus, tier: r.TenantTier, found: true}
		case err == nil:
			a.logger(ctx).Error().Msg("auth: API-key lookup returned no valid tenant id")
			return nil, natsrpc.Unavailable("tenant service unavailable")
		case isNotFound(err):
		default:
			return nil, lookupError(err, "tenant")
		}
		a.flight.cacheIfCurrent(gen, func() { a.apiKeys.set(sum, e) })
		return e, nil
	})
	if err != nil {
		return apiKeyEntry{}, err
	}
	return v.(apiKeyEntry), nil
}

func hashUser(user string) [16]byte {
	sum := sha256.Sum256([]byte(user))
	return [16]byte(sum[:16])
}
