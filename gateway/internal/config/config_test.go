package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	secret := strings.Repeat("s", 32)
	t.Run("defaults", func(t *testing.T) {
		t.Setenv("AUTH_JWT_SECRET", secret)
		c, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		if c.HTTPAddr != ":8000" || c.MetricsAddr != "127.0.0.1:9090" || c.BodyLimit != 1<<20 ||
			c.RequestTimeout != 10*time.Second || c.UpstreamTimeout != 5*time.Second || c.URL != "nats://127.0.0.1:4222" ||
			c.Level != "info" || c.Format != "json" || c.CORSAllowedOrigins != nil {
			t.Fatalf("defaults = %+v", c)
		}
	})
	t.Run("lists", func(t *testing.T) {
		t.Setenv("AUTH_JWT_SECRET", secret)
		t.Setenv("CORS_ALLOWED_ORIGINS", " https://a.example.com, http://localhost:3000 ,")
		t.Setenv("TRUSTED_PROXIES", "10.0.0.0/8,192.168.1.1")
		t.Setenv("AUTH_PLATFORM_ADMINS", "sub-1, sub-2")
		c, err := Load()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(c.CORSAllowedOrigins, "|") != "https://a.example.com|http://localhost:3000" ||
			strings.Join(c.TrustedProxies, "|") != "10.0.0.0/8|192.168.1.1" ||
			strings.Join(c.PlatformAdmins, "|") != "sub-1|sub-2" {
			t.Fatalf("lists = %q %q %q", c.CORSAllowedOrigins, c.TrustedProxies, c.PlatformAdmins)
		}
	})
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"missing secret", "AUTH_JWT_SECRET", "", "AUTH_JWT_SECRET is required"},
		{"short secret", "AUTH_JWT_SECRET", "short", "at least 32 bytes"},
		{"wildcard origin", "CORS_ALLOWED_ORIGINS", "*", "not an exact origin"},
		{"origin with path", "CORS_ALLOWED_ORIGINS", "https://a.example.com/app", "not an exact origin"},
		{"bad proxy", "TRUSTED_PROXIES", "10.0.0.0/33", "neither a CIDR nor an IP"},
		{"jwks without issuer", "AUTH_JWKS_URL", "https://idp.example.com/jwks.json", "AUTH_ISSUER and AUTH_AUDIENCE"},
		{"bad body limit", "HTTP_BODY_LIMIT", "0", "HTTP_BODY_LIMIT"},
		{"bad duration", "UPSTREAM_TIMEOUT", "soon", "UPSTREAM_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.key != "AUTH_JWT_SECRET" {
				t.Setenv("AUTH_JWT_SECRET", secret)
			}
			t.Setenv(tc.key, tc.value)
			_, err := Load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
