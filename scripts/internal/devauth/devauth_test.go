package devauth

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
)

func TestLoadOrCreateSecretCreatesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s1, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 64 || strings.Trim(s1, "0123456789abcdef") != "" {
		t.Fatalf("secret is not 64 hex characters: len %d", len(s1))
	}
	fi, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode = %v, want 0600", fi.Mode().Perm())
	}
	s2, err := LoadOrCreateSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 {
		t.Fatal("second call generated a new secret instead of reusing the file")
	}
	other, err := LoadOrCreateSecret(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other == s1 {
		t.Fatal("two data dirs got the same secret")
	}
}

func TestLoadOrCreateSecretConcurrentCallersAgree(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadOrCreateSecret(dir)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	for _, s := range got[1:] {
		if s != got[0] {
			t.Fatalf("callers disagree on the secret")
		}
	}
}

func TestLoadOrCreateSecretRefusesShortFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SecretFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateSecret(dir)
	if err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("err = %v, want a refusal that says how to fix it", err)
	}
}

func parse(t *testing.T, secret, tok string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil })
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return claims
}

func TestMintUserToken(t *testing.T) {
	secret := strings.Repeat("k", 40)
	now := time.Now()
	tok, err := MintUserToken(secret, Claims{Subject: "local-user", TTL: 24 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	c := parse(t, secret, tok)
	if c["sub"] != "local-user" || c["email"] != "local-user@localhost" {
		t.Fatalf("claims = %v", c)
	}
	if _, ok := c["roles"]; ok {
		t.Fatal("roles claim present without roles")
	}
	exp, _ := c.GetExpirationTime()
	iat, _ := c.GetIssuedAt()
	if exp.Sub(iat.Time) != 24*time.Hour {
		t.Fatalf("exp - iat = %v, want 24h", exp.Sub(iat.Time))
	}
	if iat.Unix() != now.Unix() || c["iss"] != authtoken.Issuer {
		t.Fatalf("iat = %v, iss = %v; want %v, %q", iat, c["iss"], now, authtoken.Issuer)
	}

	tok, err = MintUserToken(secret, Claims{Subject: "ops", Email: "ops@example.com", Roles: []string{authtoken.RolePlatformAdmin}, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	c = parse(t, secret, tok)
	roles, _ := c["roles"].([]any)
	if len(roles) != 1 || roles[0] != authtoken.RolePlatformAdmin || c["email"] != "ops@example.com" {
		t.Fatalf("claims = %v", c)
	}

	// Another secret must not verify it.
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"})).
		Parse(tok, func(*jwt.Token) (any, error) { return []byte(strings.Repeat("x", 40)), nil })
	if err == nil {
		t.Fatal("token verified with the wrong secret")
	}
}

func TestMintUserTokenRejects(t *testing.T) {
	secret := strings.Repeat("k", 40)
	cases := map[string]struct {
		secret string
		c      Claims
	}{
		"no subject":   {secret, Claims{TTL: time.Hour}},
		"no ttl":       {secret, Claims{Subject: "a"}},
		"control char": {secret, Claims{Subject: "a\nb", TTL: time.Hour}},
		"short secret": {"short", Claims{Subject: "a", TTL: time.Hour}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := MintUserToken(tc.secret, tc.c, time.Now()); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
