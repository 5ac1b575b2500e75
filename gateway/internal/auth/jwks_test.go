package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

const (
	oidcIssuer   = "https://idp.test/pool"
	oidcAudience = "artcafe-web"
)

// keys generated once for every test of the package (RSA generation is slow under -race).
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsa2, rsaOther *rsa.PrivateKey
	ec, ecOther         *ecdsa.PrivateKey
	ec384               *ecdsa.PrivateKey
	rsaSmall            *rsa.PrivateKey
}) {
	mustRSA := func(bits int) *rsa.PrivateKey {
		key, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return key
	}
	mustEC := func(c elliptic.Curve) *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.rsa, k.rsa2, k.rsaOther = mustRSA(2048), mustRSA(2048), mustRSA(2048)
	k.rsaSmall = mustRSA(1024)
	k.ec, k.ecOther, k.ec384 = mustEC(elliptic.P256()), mustEC(elliptic.P256()), mustEC(elliptic.P384())
	return k
})

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey, use string) map[string]any {
	m := map[string]any{
		"kty": "RSA", "kid": kid, "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
	if use != "" {
		m["use"] = use
	}
	return m
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	e, err := pub.ECDH()
	if err != nil {
		panic(err)
	}
	raw := e.Bytes() // 0x04 || X || Y
	size := (len(raw) - 1) / 2
	crv, alg := "P-256", "ES256"
	if pub.Curve == elliptic.P384() {
		crv, alg = "P-384", "ES384"
	}
	return map[string]any{
		"kty": "EC", "kid": kid, "alg": alg, "use": "sig", "crv": crv,
		"x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:]),
	}
}

// jwksServer is a real HTTP JWKS endpoint whose keys and health the test controls.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	keys   []map[string]any
	status int
	body   string // served instead of the keys when set
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body, keys := s.status, s.body, s.keys
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if body != "" {
			_, _ = w.Write([]byte(body))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func (s *jwksServer) setStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

func oidcConfig(url string) Config {
	return Config{JWKSURL: url + "/.well-known/jwks.json", Issuer: oidcIssuer, Audience: oidcAudience}
}

func oidcClaims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"iss": oidcIssuer, "aud": oidcAudience, "sub": "user-sub-1", "email": "u@example.com", "exp": exp(time.Hour)}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func pemOf(t *testing.T, pub any) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestOIDCTokens(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t,
		rsaJWK("k-rsa", &k.rsa.PublicKey, "sig"),
		rsaJWK("k-rsa-nouse", &k.rsa2.PublicKey, ""),
		ecJWK("k-ec", &k.ec.PublicKey),
		rsaJWK("k-small", &k.rsaSmall.PublicKey, "sig"),
		rsaJWK("k-enc", &k.rsaOther.PublicKey, "enc"),
		ecJWK("k-384", &k.ec384.PublicKey),
	)
	cfg := oidcConfig(srv.URL)
	cfg.PlatformAdmins = []string{"root-sub"}
	a := newAuth(t, cfg, nil)

	kidHeader := func(kid string) map[string]any {
		if kid == "" {
			return nil
		}
		return map[string]any{"kid": kid}
	}
	rs := func(kid string, extra jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(extra), kidHeader(kid))
	}
	es := func(kid string, extra jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodES256, k.ec, oidcClaims(extra), kidHeader(kid))
	}
	user := Principal{Kind: natsrpc.KindUser, UserID: "user-sub-1", Email: "u@example.com"}
	confusionPEM := sign(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey), oidcClaims(nil),
		map[string]any{"kid": "k-rsa", "alg": "RS256"})
	confusionDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		token string
		code  string // "" = accepted as want
		want  Principal
	}{
		{"RS256", rs("k-rsa", nil), "", user},
		{"RS256 key without use", sign(t, jwt.SigningMethodRS256, k.rsa2, oidcClaims(nil), map[string]any{"kid": "k-rsa-nouse"}), "", user},
		{"ES256", es("k-ec", nil), "", user},
		{"RS256 without kid", rs("", nil), "", user},
		{"ES256 without kid", es("", nil), "", user},
		{"within leeway", rs("k-rsa", jwt.MapClaims{"exp": exp(-10 * time.Second)}), "", user},
		{"audience list", rs("k-rsa", jwt.MapClaims{"aud": []string{"other", oidcAudience}}), "", user},
		{"tenant claim", rs("k-rsa", jwt.MapClaims{"tenant_id": tenantB}), "",
			Principal{Kind: natsrpc.KindUser, UserID: "user-sub-1", Email: "u@example.com", TenantID: tenantB}},
		{"odd claim shapes are ignored", rs("k-rsa", jwt.MapClaims{"email": 42, "tenant_id": true, "roles": 7}), "",
			Principal{Kind: natsrpc.KindUser, UserID: "user-sub-1"}},
		{"roles do not make an unlisted sub a platform admin", rs("k-rsa", jwt.MapClaims{"roles": []string{"platform_admin"}}), "", user},
		{"a listed sub is a platform admin", rs("k-rsa", jwt.MapClaims{"sub": "root-sub", "roles": []string{"platform_admin"}}), "",
			Principal{Kind: natsrpc.KindUser, UserID: "root-sub", Email: "u@example.com", PlatformAdmin: true}},
		{"a listed sub needs no roles claim", rs("k-rsa", jwt.MapClaims{"sub": "root-sub"}), "",
			Principal{Kind: natsrpc.KindUser, UserID: "root-sub", Email: "u@example.com", PlatformAdmin: true}},
		{"agent claims on an OIDC token make a user", rs("k-rsa", jwt.MapClaims{
			"token_use": "agent", "sub": "agent:" + agentID, "agent_id": agentID, "key_id": keyID, "tenant_id": tenantA}), "",
			Principal{Kind: natsrpc.KindUser, UserID: "agent:" + agentID, Email: "u@example.com", TenantID: tenantA}},

		{"wrong issuer", rs("k-rsa", jwt.MapClaims{"iss": "https://evil.test"}), natsrpc.CodeUnauthorized, Principal{}},
		{"no issuer", rs("k-rsa", jwt.MapClaims{"iss": nil}), natsrpc.CodeUnauthorized, Principal{}},
		{"wrong audience", rs("k-rsa", jwt.MapClaims{"aud": "someone-else"}), natsrpc.CodeUnauthorized, Principal{}},
		{"no audience", rs("k-rsa", jwt.MapClaims{"aud": nil}), natsrpc.CodeUnauthorized, Principal{}},
		{"no exp", rs("k-rsa", jwt.MapClaims{"exp": nil}), natsrpc.CodeUnauthorized, Principal{}},
		{"no sub", rs("k-rsa", jwt.MapClaims{"sub": nil}), natsrpc.CodeUnauthorized, Principal{}},
		{"expired", rs("k-rsa", jwt.MapClaims{"exp": exp(-time.Minute)}), natsrpc.CodeTokenExpired, Principal{}},
		{"RS256 signed by a key not in the JWKS", sign(t, jwt.SigningMethodRS256, k.rsaOther, oidcClaims(nil),
			map[string]any{"kid": "k-rsa"}), natsrpc.CodeUnauthorized, Principal{}},
		{"ES256 signed by a key not in the JWKS", sign(t, jwt.SigningMethodES256, k.ecOther, oidcClaims(nil),
			map[string]any{"kid": "k-ec"}), natsrpc.CodeUnauthorized, Principal{}},
		{"RS256 without kid signed by a stranger", sign(t, jwt.SigningMethodRS256, k.rsaOther, oidcClaims(nil), nil),
			natsrpc.CodeUnauthorized, Principal{}},
		{"ES256 naming an RSA key", es("k-rsa", nil), natsrpc.CodeUnauthorized, Principal{}},
		{"RS256 naming an EC key", rs("k-ec", nil), natsrpc.CodeUnauthorized, Principal{}},
		{"RSA key under 2048 bits is not used", sign(t, jwt.SigningMethodRS256, k.rsaSmall, oidcClaims(nil),
			map[string]any{"kid": "k-small"}), natsrpc.CodeUnauthorized, Principal{}},
		{"encryption key is not used", sign(t, jwt.SigningMethodRS256, k.rsaOther, oidcClaims(nil),
			map[string]any{"kid": "k-enc"}), natsrpc.CodeUnauthorized, Principal{}},
		{"P-384 key is not ES256", sign(t, jwt.SigningMethodES384, k.ec384, oidcClaims(nil),
			map[string]any{"kid": "k-384"}), natsrpc.CodeUnauthorized, Principal{}},
		{"PS256 is not enabled", sign(t, jwt.SigningMethodPS256, k.rsa, oidcClaims(nil),
			map[string]any{"kid": "k-rsa"}), natsrpc.CodeUnauthorized, Principal{}},
		{"HS256 header RS256, public key PEM as HMAC secret", confusionPEM, natsrpc.CodeUnauthorized, Principal{}},
		{"HS256 header RS256, public key DER as HMAC secret", sign(t, jwt.SigningMethodHS256, confusionDER, oidcClaims(nil),
			map[string]any{"kid": "k-rsa", "alg": "RS256"}), natsrpc.CodeUnauthorized, Principal{}},
		{"HS256 with the public key PEM as secret", sign(t, jwt.SigningMethodHS256, pemOf(t, &k.rsa.PublicKey),
			oidcClaims(nil), map[string]any{"kid": "k-rsa"}), natsrpc.CodeUnauthorized, Principal{}},
		{"alg none with a kid", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, oidcClaims(nil),
			map[string]any{"kid": "k-rsa"}), natsrpc.CodeUnauthorized, Principal{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := a.Authenticate(context.Background(), "Bearer "+c.token, "")
			if c.code != "" {
				wantErr(t, err, http.StatusUnauthorized, c.code)
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			p.ExpiresAt = time.Time{}
			if p != c.want {
				t.Fatalf("principal = %+v, want %+v", p, c.want)
			}
		})
	}

	t.Run("HS256 user tokens still work beside the JWKS", func(t *testing.T) {
		tok, err := a.MintUserToken("alice", "", "", []string{"platform_admin"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Authenticate(context.Background(), "Bearer "+tok, "")
		if err != nil || p.UserID != "alice" || !p.PlatformAdmin {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
	})
}

func TestOIDCUnknownKIDRefetchesAtMostOncePerMinute(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("k1", &k.rsa.PublicKey, "sig"))
	a := newAuth(t, oidcConfig(srv.URL), nil)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", got)
	}
	ctx := context.Background()

	tok := sign(t, jwt.SigningMethodRS256, k.rsaOther, oidcClaims(nil), map[string]any{"kid": "unknown-1"})
	_, err := a.Authenticate(ctx, "Bearer "+tok, "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times after an unknown kid, want 2 (one refetch)", got)
	}

	for _, kid := range []string{"unknown-1", "unknown-2", "unknown-3"} {
		tok := sign(t, jwt.SigningMethodRS256, k.rsaOther, oidcClaims(nil), map[string]any{"kid": kid})
		_, err := a.Authenticate(ctx, "Bearer "+tok, "")
		wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want no refetch within the minute", got)
	}

	// Known keys are verified without fetching.
	good := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), map[string]any{"kid": "k1"})
	if _, err := a.Authenticate(ctx, "Bearer "+good, ""); err != nil {
		t.Fatalf("known kid: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times for a known kid", got)
	}
}

func TestOIDCKeyRotationIsPickedUpOnUnknownKID(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("old", &k.rsa.PublicKey, "sig"))
	a := newAuth(t, oidcConfig(srv.URL), nil)
	srv.setKeys(rsaJWK("old", &k.rsa.PublicKey, "sig"), ecJWK("new", &k.ec.PublicKey))

	// Several requests with the new kid at once share one refetch and all succeed.
	tok := sign(t, jwt.SigningMethodES256, k.ec, oidcClaims(nil), map[string]any{"kid": "new"})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, err := a.Authenticate(context.Background(), "Bearer "+tok, "")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("token signed with the rotated-in key: %v", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", got)
	}
}

func TestJWKSUnreachableIs503(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t)
	url := srv.URL
	srv.Close() // nothing listens there any more

	a := newAuth(t, oidcConfig(url), nil) // starting is not blocked by the provider
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), map[string]any{"kid": "k1"})
	for range 2 { // the refetch and, within the minute, no refetch: both 503
		_, err := a.Authenticate(context.Background(), "Bearer "+tok, "")
		wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeAuthUnavailable)
	}
	noKid := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), nil)
	_, err := a.Authenticate(context.Background(), "Bearer "+noKid, "")
	wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeAuthUnavailable)

	// Garbage and HS256 tokens do not depend on the provider.
	_, err = a.Authenticate(context.Background(), "Bearer garbage", "")
	wantErr(t, err, http.StatusUnauthorized, natsrpc.CodeUnauthorized)
	user, err := a.MintUserToken("alice", "", "", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(context.Background(), "Bearer "+user, ""); err != nil {
		t.Fatalf("HS256 while the JWKS is down: %v", err)
	}
}

func TestJWKSGoingDownKeepsKnownKeys(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("k1", &k.rsa.PublicKey, "sig"))
	a := newAuth(t, oidcConfig(srv.URL), nil)
	srv.setStatus(http.StatusInternalServerError)

	known := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), map[string]any{"kid": "k1"})
	if _, err := a.Authenticate(context.Background(), "Bearer "+known, ""); err != nil {
		t.Fatalf("known kid while the JWKS is down: %v", err)
	}
	unknown := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), map[string]any{"kid": "k2"})
	_, err := a.Authenticate(context.Background(), "Bearer "+unknown, "")
	wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeAuthUnavailable)
	// The refetch failed but the key we had is kept.
	if _, err := a.Authenticate(context.Background(), "Bearer "+known, ""); err != nil {
		t.Fatalf("known kid after a failed refetch: %v", err)
	}
}

func TestJWKSNotJSONIs503(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t)
	srv.body = "<html>maintenance</html>"
	a := newAuth(t, oidcConfig(srv.URL), nil)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, oidcClaims(nil), map[string]any{"kid": "k1"})
	_, err := a.Authenticate(context.Background(), "Bearer "+tok, "")
	wantErr(t, err, http.StatusServiceUnavailable, natsrpc.CodeAuthUnavailable)
}

func TestJWKSRefreshStopsOnClose(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, rsaJWK("k1", &k.rsa.PublicKey, "sig"))
	cfg := oidcConfig(srv.URL)
	cfg.JWKSRefreshInterval = 10 * time.Millisecond
	a := newAuth(t, cfg, nil)
	eventually(t, "background refreshes", func() bool { return srv.hits.Load() >= 3 })
	a.Close()
	time.Sleep(50 * time.Millisecond) // a tick already under way may still land
	after := srv.hits.Load()
	time.Sleep(100 * time.Millisecond)
	if got := srv.hits.Load(); got != after {
		t.Fatalf("JWKS still fetched after Close: %d → %d", after, got)
	}
}
