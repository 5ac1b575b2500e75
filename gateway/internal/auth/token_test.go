package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

func TestNewChecksConfig(t *testing.T) {
	l := newFakeLookups()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"short secret", Config{JWTSecret: []byte("0123456789abcdef0123456789abcde")}},
		{"no secret", Config{}},
		{"jwks without issuer", Config{JWTSecret: testSecret, JWKSURL: "https://idp.example/jwks", Audience: "app"}},
		{"jwks without audience", Config{JWTSecret: testSecret, JWKSURL: "https://idp.example/jwks", Issuer: "https://idp.example"}},
		{"jwks not a URL", Config{JWTSecret: testSecret, JWKSURL: "idp.example/jwks", Issuer: "i", Audience: "a"}},
		{"cache ttl over 5s", Config{JWTSecret: testSecret, CacheTTL: 6 * time.Second}},
		{"negative cache ttl", Config{JWTSecret: testSecret, CacheTTL: -time.Second}},
		{"api key ttl over 1s", Config{JWTSecret: testSecret, APIKeyCacheTTL: 2 * time.Second}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(c.cfg, l, zerolog.Nop())
			if err == nil {
				a.Close()
				t.Fatal("New accepted the configuration")
			}
		})
	}
	if _, err := New(Config{JWTSecret: testSecret}, nil, zerolog.Nop()); err == nil {
		t.Fatal("New accepted nil lookups")
	}
	a, err := New(Config{JWTSecret: []byte("0123456789abcdef0123456789abcdef")}, l, zerolog.Nop())
	if err != nil {
		t.Fatalf("a 32-byte secret is enough: %v", err)
	}
	a.Close()
	a.Close() // twice is fine
}

func TestAuthenticateHS256(t *testing.T) {
	a := newAuth(t, Config{}, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	user := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{"sub": "alice", "email": "alice@example.com", "exp": exp(time.Hour)}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return hs(t, c)
	}
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": exp(time.Hour)}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	type want struct {
		status int
		code   string
		p      Principal // checked when status == 0
	}
	ok := func(p Principal) want { return want{p: p} }
	unauthorized := want{status: http.StatusUnauthorized, code: natsrpc.CodeUnauthorized}
	alice := Principal{Kind: natsrpc.KindUser, UserID: "alice", Email: "alice@example.com"}

	cases := []struct {
		name          string
		authorization string
		apiKey        string
		want          want
	}{
		{"nothing", "", "", unauthorized},
		{"both credentials", "Bearer " + user(nil), "art_whatever", want{status: http.StatusBadRequest, code: natsrpc.CodeAmbiguousCredentials}},
		{"both, even a non-bearer authorization", "Basic YTpi", "art_whatever", want{status: http.StatusBadRequest, code: natsrpc.CodeAmbiguousCredentials}},
		{"basic scheme", "Basic YWxpY2U6cHc=", "", unauthorized},
		{"bearer without token", "Bearer ", "", unauthorized},
		{"garbage", "Bearer not-a-jwt", "", unauthorized},
		{"three garbage segments", "Bearer abc.def.ghi", "", unauthorized},
		{"oversize token", "Bearer " + strings.Repeat("a", maxTokenBytes+1), "", unauthorized},
		{"valid user", "Bearer " + user(nil), "", ok(alice)},
		{"scheme is case-insensitive", "bearer " + user(nil), "", ok(alice)},
		{"user_id fallback", "Bearer " + user(jwt.MapClaims{"sub": nil, "user_id": "bob"}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: "bob", Email: "alice@example.com"})},
		{"no user id", "Bearer " + user(jwt.MapClaims{"sub": nil}), "", unauthorized},
		{"user id with a control character", "Bearer " + user(jwt.MapClaims{"sub": "al\nice"}), "", unauthorized},
		{"user id of 257 characters", "Bearer " + user(jwt.MapClaims{"sub": strings.Repeat("u", 257)}), "", unauthorized},
		{"user id of 256 characters", "Bearer " + user(jwt.MapClaims{"sub": strings.Repeat("u", 256), "email": nil}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: strings.Repeat("u", 256)})},
		{"email with a header break is dropped", "Bearer " + user(jwt.MapClaims{"email": "a@b.c\r\nX: y"}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: "alice"})},
		{"tenant claim", "Bearer " + user(jwt.MapClaims{"tenant_id": tenantA}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: "alice", Email: "alice@example.com", TenantID: tenantA})},
		{"expired beyond leeway", "Bearer " + user(jwt.MapClaims{"exp": exp(-time.Minute)}), "",
			want{status: http.StatusUnauthorized, code: natsrpc.CodeTokenExpired}},
		{"expired within leeway", "Bearer " + user(jwt.MapClaims{"exp": exp(-10 * time.Second)}), "", ok(alice)},
		{"no exp", "Bearer " + user(jwt.MapClaims{"exp": nil}), "", unauthorized},
		{"not valid yet", "Bearer " + user(jwt.MapClaims{"nbf": exp(time.Hour)}), "", unauthorized},
		{"alg none", "Bearer " + noneToken, "", unauthorized},
		{"wrong secret", "Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"),
			jwt.MapClaims{"sub": "alice", "exp": exp(time.Hour)}, nil), "", unauthorized},
		{"wrong secret and expired is not token_expired", "Bearer " + sign(t, jwt.SigningMethodHS256,
			[]byte("another-secret-another-secret-xx"), jwt.MapClaims{"sub": "alice", "exp": exp(-time.Hour)}, nil), "", unauthorized},
		{"HS384 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS384, testSecret,
			jwt.MapClaims{"sub": "alice", "exp": exp(time.Hour)}, nil), "", unauthorized},
		{"RS256 when no JWKS is configured", "Bearer " + sign(t, jwt.SigningMethodRS256, rsaKey,
			jwt.MapClaims{"sub": "alice", "exp": exp(time.Hour)}, map[string]any{"kid": "k1"}), "", unauthorized},
		{"platform_admin role", "Bearer " + user(jwt.MapClaims{"roles": []string{"member", "platform_admin"}}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: "alice", Email: "alice@example.com", PlatformAdmin: true})},
		{"platform_admin role as a string", "Bearer " + user(jwt.MapClaims{"roles": "platform_admin"}), "",
			ok(Principal{Kind: natsrpc.KindUser, UserID: "alice", Email: "alice@example.com", PlatformAdmin: true})},
		{"roles of another shape mean none", "Bearer " + user(jwt.MapClaims{"roles": map[string]any{"platform_admin": true}}), "", ok(alice)},
		{"agent audience without token_use", "Bearer " + user(jwt.MapClaims{"aud": authtoken.AgentAudience}), "", unauthorized},
		{"token_use other than agent is a user", "Bearer " + user(jwt.MapClaims{"token_use": "id"}), "", ok(alice)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), c.authorization, c.apiKey)
			if c.want.status != 0 {
				wantErr(t, err, c.want.status, c.want.code)
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.ExpiresAt.IsZero() {
				t.Error("ExpiresAt not set")
			}
			p.ExpiresAt = time.Time{}
			if p != c.want.p {
				t.Fatalf("principal = %+v, want %+v", p, c.want.p)
			}
		})
	}
}

func TestAgentTokens(t *testing.T) {
	a := newAuth(t, Config{}, nil)
	ctx := context.Background()
	agent := func(extra jwt.MapClaims) string {
		c := jwt.MapClaims{
			"iss": authtoken.Issuer, "aud": authtoken.AgentAudience, "sub": "agent:" + agentID, "token_use": "agent",
			"tenant_id": tenantA, "agent_id": agentID, "key_id": keyID, "exp": exp(time.Hour),
		}
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return "Bearer " + hs(t, c)
	}
	wantAgent := Principal{Kind: natsrpc.KindAgent, AgentID: agentID, KeyID: keyID, TenantID: tenantA}

	t.Run("minted token", func(t *testing.T) {
		tok, expAt, err := a.MintAgentToken(tenantA, strings.ToLower(agentID), keyID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(ctx, "Bearer "+tok, "")
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		if !p.ExpiresAt.Equal(expAt) {
			t.Errorf("ExpiresAt = %v, want %v", p.ExpiresAt, expAt)
		}
		p.ExpiresAt = time.Time{}
		if p != wantAgent {
			t.Fatalf("principal = %+v, want %+v", p, wantAgent)
		}
	})

	good := []struct {
		name  string
		extra jwt.MapClaims
	}{
		{"as minted", nil},
		{"lower-case ids are upper-cased", jwt.MapClaims{"sub": "agent:" + strings.ToLower(agentID),
			"agent_id": strings.ToLower(agentID), "key_id": strings.ToLower(keyID)}},
		{"roles are ignored", jwt.MapClaims{"roles": []string{"platform_admin", "owner"}}},
		{"audience list", jwt.MapClaims{"aud": []string{"other", authtoken.AgentAudience}}},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, agent(c.extra), "")
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			p.ExpiresAt = time.Time{}
			if p != wantAgent {
				t.Fatalf("principal = %+v, want %+v", p, wantAgent)
			}
		})
	}

	bad := []struct {
		name  string
		extra jwt.MapClaims
	}{
		{"wrong issuer", jwt.MapClaims{"iss": "someone"}},
		{"no issuer", jwt.MapClaims{"iss": nil}},
		{"wrong audience", jwt.MapClaims{"aud": "artcafe"}},
		{"no audience", jwt.MapClaims{"aud": nil}},
		{"sub without prefix", jwt.MapClaims{"sub": agentID}},
		{"sub of another agent", jwt.MapClaims{"sub": "agent:01JBAGENT00000000000000002"}},
		{"a user's sub", jwt.MapClaims{"sub": "alice"}},
		{"no tenant", jwt.MapClaims{"tenant_id": nil}},
		{"tenant not a UUID", jwt.MapClaims{"tenant_id": "acme"}},
		{"no agent id", jwt.MapClaims{"agent_id": nil}},
		{"agent id not a ULID", jwt.MapClaims{"agent_id": "agent-1", "sub": "agent:agent-1"}},
		{"ULID out of range", jwt.MapClaims{"agent_id": "81JBAGENT00000000000000001", "sub": "agent:81JBAGENT00000000000000001"}},
		{"no key id", jwt.MapClaims{"key_id": nil}},
		{"key id not a ULID", jwt.MapClaims{"key_id": "01JBKEY000000000000000000I"}},
		{"expired", jwt.MapClaims{"exp": exp(-time.Hour)}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, agent(c.extra), "")
			code := natsrpc.CodeUnauthorized
			if c.name == "expired" {
				code = natsrpc.CodeTokenExpired
			}
			wantErr(t, err, http.StatusUnauthorized, code)
			if p.Kind != "" {
				t.Fatalf("a refused agent token still produced %+v", p)
			}
		})
	}
}

// revoker is an AgentChecker (our interface) that revokes one key.
type revoker struct {
	revokedKey string
	seen       []Principal
}

func (r *revoker) CheckAgent(_ context.Context, p Principal) error {
	r.seen = append(r.seen, p)
	if p.KeyID == r.revokedKey {
		return natsrpc.NewError(http.StatusUnauthorized, natsrpc.CodeTokenRevoked, "key revoked")
	}
	return nil
}

func TestAgentCheckerSeam(t *testing.T) {
	r := &revoker{revokedKey: "01JBKEY0000000000000000002"}
	a := newAuth(t, Config{Agents: r}, nil)
	ctx := context.Background()

	good, _, err := a.MintAgentToken(tenantA, agentID, keyID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time from the verified-token cache
		if _, err := a.Authenticate(ctx, "Bearer "+good, ""); err != nil {
			t.Fatalf("unrevoked agent: %v", err)
		}
	}
	revoked, _, err := a.MintAgentToken(tenantA, agentID, r.revokedKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(ctx, "Bearer "+revoked, "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeTokenRevoked)
	// A token verified (and cached) before its key was revoked fails from then on.
	r.revokedKey = keyID
	_, err = a.Authenticate(ctx, "Bearer "+good, "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeTokenRevoked)

	user, err := a.MintUserToken("alice", "", "", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "Bearer "+user, ""); err != nil {
		t.Fatal(err)
	}
	if len(r.seen) != 4 {
		t.Fatalf("checker saw %d principals, want the 4 agent authentications only", len(r.seen))
	}
}

func TestCachedTokenStillExpires(t *testing.T) {
	a := newAuth(t, Config{}, nil)
	// Inside the leeway for at most two more seconds (exp has whole-second precision).
	tok := "Bearer " + hs(t, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-leeway + time.Second).Unix()})
	if _, err := a.Authenticate(context.Background(), tok, ""); err != nil {
		t.Fatalf("token within the leeway: %v", err)
	}
	eventually(t, "the cached token to expire", func() bool {
		_, err := a.Authenticate(context.Background(), tok, "")
		e, ok := natsrpc.AsError(err)
		return ok && e.Code == natsrpc.CodeTokenExpired
	})
}

func TestMintUserTokenRoundTrip(t *testing.T) {
	a := newAuth(t, Config{}, nil)
	tok, err := a.MintUserToken("alice", "alice@example.com", tenantA, []string{"platform_admin"}, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "Bearer "+tok, "")
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	want := Principal{Kind: natsrpc.KindUser, UserID: "alice", Email: "alice@example.com", TenantID: tenantA, PlatformAdmin: true}
	if until := time.Until(p.ExpiresAt); until <= 28*time.Minute || until > 30*time.Minute {
		t.Errorf("token expires in %v, want about 30 min", until)
	}
	p.ExpiresAt = time.Time{}
	if p != want {
		t.Fatalf("principal = %+v, want %+v", p, want)
	}

	// The same layout through the contract (what `make token` uses), with another
	// Authenticator sharing the secret.
	b := newAuth(t, Config{}, nil)
	tok, err = authtoken.SignUser(testSecret, authtoken.UserToken{UserID: "local-user", TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	p, err = b.Authenticate(context.Background(), "Bearer "+tok, "")
	if err != nil || p.UserID != "local-user" || p.PlatformAdmin || p.TenantID != "" {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}

	// A token minted with another secret is refused.
	c := newAuth(t, Config{JWTSecret: []byte("yet-another-secret-of-32-bytes!!")}, nil)
	tok, err = c.MintUserToken("alice", "", "", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(context.Background(), "Bearer "+tok, "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
}

func TestMintRefusesBadInput(t *testing.T) {
	// The checks themselves are authtoken's; the methods must not bypass them.
	a := newAuth(t, Config{}, nil)
	if _, err := a.MintUserToken("a\x00b", "", "", nil, time.Hour); err == nil {
		t.Error("MintUserToken accepted a control character in the user id")
	}
	if _, _, err := a.MintAgentToken("acme", agentID, keyID, time.Hour); err == nil {
		t.Error("MintAgentToken accepted a tenant id that is not a UUID")
	}
}

func TestHashAPIKey(t *testing.T) {
	// printf 'art_test' | sha256sum
	const want = "03b4d9b9bbe0f42877ff4c04cfb52fa9506c142d4c44a28bc22fdbe34cea1c7c"
	if got := HashAPIKey("art_test"); got != want {
		t.Fatalf("HashAPIKey = %q, want %q", got, want)
	}
}
