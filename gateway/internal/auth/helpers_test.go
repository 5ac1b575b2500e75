package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

const (
	tenantA = "a1111111-1111-4111-8111-11111111111a"
	tenantB = "b2222222-2222-4222-8222-22222222222b"
	tenantC = "c3333333-3333-4333-8333-33333333333c"
	agentID = "01JBAGENT00000000000000001"
	keyID   = "01JBKEY0000000000000000001"

	// Each test tenant has its own tier, so a test sees which lookup a tier came from.
	tierA = "free"
	tierB = "pro"
	tierC = "basic"
)

func tierOf(tenant string) string {
	switch tenant {
	case tenantA:
		return tierA
	case tenantB:
		return tierB
	}
	return tierC
}

// fakeLookups is an in-memory Lookups (our own interface) that counts calls and can be
// made to fail or to block.
type fakeLookups struct {
	mu      sync.Mutex
	members map[[2]string]tenantv1.Membership // (tenant, user)
	keys    map[string]tenantv1.LookupAPIKeyResponse
	tenants map[string]tenantv1.TenantStanding
	err     error         // every lookup fails with it when set
	gate    chan struct{} // lookups wait for it to close when set
	entered chan struct{} // receives once per lookup that started (when set)

	membershipCalls, userTenantsCalls, apiKeyCalls, tenantCalls int
}

func newFakeLookups() *fakeLookups {
	return &fakeLookups{
		members: map[[2]string]tenantv1.Membership{},
		keys:    map[string]tenantv1.LookupAPIKeyResponse{},
		tenants: map[string]tenantv1.TenantStanding{},
	}
}

func (f *fakeLookups) addMember(tenant, user, role, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[[2]string{tenant, user}] = tenantv1.Membership{TenantID: tenant, Role: role, TenantStatus: status, TenantTier: tierOf(tenant)}
}

// setTenant makes tenant exist with status (its tier is tierOf(tenant)); "" removes it.
func (f *fakeLookups) setTenant(tenant, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if status == "" {
		delete(f.tenants, tenant)
		return
	}
	f.tenants[tenant] = tenantv1.TenantStanding{TenantID: tenant, TenantStatus: status, TenantTier: tierOf(tenant)}
}

func (f *fakeLookups) removeMember(tenant, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.members, [2]string{tenant, user})
}

func (f *fakeLookups) addKey(key, tenant, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[HashAPIKey(key)] = tenantv1.LookupAPIKeyResponse{TenantID: tenant, TenantStatus: status, TenantTier: tierOf(tenant)}
}

func (f *fakeLookups) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeLookups) counts() (membership, userTenants, apiKey int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.membershipCalls, f.userTenantsCalls, f.apiKeyCalls
}

// wait runs after a lookup has read its answer: it announces the call on entered and
// holds it until gate closes, so a test can change things while an old answer is in flight.
func (f *fakeLookups) wait(ctx context.Context) error {
	f.mu.Lock()
	gate, entered, err := f.gate, f.entered, f.err
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (f *fakeLookups) Membership(ctx context.Context, tenantID, userID string) (tenantv1.Membership, error) {
	f.mu.Lock()
	f.membershipCalls++
	m, ok := f.members[[2]string{tenantID, userID}]
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return tenantv1.Membership{}, err
	}
	if !ok {
		return tenantv1.Membership{}, natsrpc.NotFound("membership not found")
	}
	return m, nil
}

func (f *fakeLookups) UserTenants(ctx context.Context, userID string, limit int) (tenantv1.LookupUserTenantsResponse, error) {
	f.mu.Lock()
	f.userTenantsCalls++
	var r tenantv1.LookupUserTenantsResponse
	for k, m := range f.members {
		if k[1] == userID {
			r.Memberships = append(r.Memberships, m)
		}
	}
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return tenantv1.LookupUserTenantsResponse{}, err
	}
	slices.SortFunc(r.Memberships, func(a, b tenantv1.Membership) int { return strings.Compare(a.TenantID, b.TenantID) })
	if len(r.Memberships) > limit {
		r.Memberships, r.More = r.Memberships[:limit], true
	}
	return r, nil
}

func (f *fakeLookups) APIKey(ctx context.Context, keyHash string) (tenantv1.LookupAPIKeyResponse, error) {
	f.mu.Lock()
	f.apiKeyCalls++
	r, ok := f.keys[keyHash]
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return tenantv1.LookupAPIKeyResponse{}, err
	}
	if !ok {
		return tenantv1.LookupAPIKeyResponse{}, natsrpc.NotFound("api key not found")
	}
	return r, nil
}

func (f *fakeLookups) Tenant(ctx context.Context, tenantID string) (tenantv1.TenantStanding, error) {
	f.mu.Lock()
	f.tenantCalls++
	st, ok := f.tenants[tenantID]
	f.mu.Unlock()
	if err := f.wait(ctx); err != nil {
		return tenantv1.TenantStanding{}, err
	}
	if !ok {
		return tenantv1.TenantStanding{}, natsrpc.NotFound("tenant not found")
	}
	return st, nil
}

func (f *fakeLookups) tenantLookups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tenantCalls
}

func newAuth(t *testing.T, cfg Config, l Lookups) *Authenticator {
	t.Helper()
	if cfg.JWTSecret == nil {
		cfg.JWTSecret = testSecret
	}
	if l == nil {
		l = newFakeLookups()
	}
	a, err := New(cfg, l, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// wantErr checks that err is a *natsrpc.Error with status and code.
func wantErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	e, ok := natsrpc.AsError(err)
	if !ok {
		t.Fatalf("error = %v, want *natsrpc.Error %d %s", err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("error = %d %s (%s), want %d %s", e.Status, e.Code, e.Detail, status, code)
	}
}

// sign signs claims with method and key; extra header fields are set as given.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func hs(t *testing.T, claims jwt.MapClaims) string {
	return sign(t, jwt.SigningMethodHS256, testSecret, claims, nil)
}

func exp(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errOutage = natsrpc.Unavailable("tenant service unavailable")

func TestErrorsAreFresh(t *testing.T) {
	a, b := errBadToken(), errBadToken()
	a.Detail = "changed"
	if b.Detail == "changed" {
		t.Fatal("error values are shared between calls")
	}
}

func TestLookupErrorKeepsOutagesAndClassifiesTheRest(t *testing.T) {
	wantErr(t, lookupError(natsrpc.NewError(http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout, "slow"), "tenant"),
		http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
	wantErr(t, lookupError(errOutage, "tenant"), http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	wantErr(t, lookupError(fmt.Errorf("call: %w", context.DeadlineExceeded), "sshkey"),
		http.StatusGatewayTimeout, natsrpc.CodeUpstreamTimeout)
	err := lookupError(errors.New("connection reset"), "sshkey")
	wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	if e, _ := natsrpc.AsError(err); !strings.Contains(e.Detail, "sshkey") {
		t.Fatalf("detail %q does not name the service", e.Detail)
	}
}
