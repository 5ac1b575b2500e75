// Package config is the gateway's one settings struct, read from the environment (SPEC §2
// names) once in main.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	kitconfig "github.com/artcafe-ai/pubsub/services/kit/config"
)

// MinJWTSecret is the shortest AUTH_JWT_SECRET the gateway accepts (SPEC §13).
const MinJWTSecret = 32

// Config is everything the gateway reads from its environment.
type Config struct {
	kitconfig.Log
	kitconfig.NATS

	HTTPAddr    string `envconfig:"HTTP_ADDR" default:":8000"`
	MetricsAddr string `envconfig:"METRICS_ADDR" default:"127.0.0.1:9090"`

	JWTSecret      string   `envconfig:"AUTH_JWT_SECRET"`
	JWKSURL        string   `envconfig:"AUTH_JWKS_URL"`
	Issuer         string   `envconfig:"AUTH_ISSUER"`
	Audience       string   `envconfig:"AUTH_AUDIENCE"`
	PlatformAdmins []string `envconfig:"AUTH_PLATFORM_ADMINS"`

	CORSAllowedOrigins []string `envconfig:"CORS_ALLOWED_ORIGINS"`
	TrustedProxies     []string `envconfig:"TRUSTED_PROXIES"`

	// Not in the SPEC's table: operational knobs with defaults that suit the API.
	BodyLimit       int           `envconfig:"HTTP_BODY_LIMIT" default:"1048576"`
	RequestTimeout  time.Duration `envconfig:"HTTP_REQUEST_TIMEOUT" default:"10s"`
	UpstreamTimeout time.Duration `envconfig:"UPSTREAM_TIMEOUT" default:"5s"`
}

// Load reads the environment, tidies list values and validates the result. The error
// says which variable is wrong and how, so the process can refuse to start with it.
func Load() (Config, error) {
	var c Config
	if err := kitconfig.Load(&c); err != nil {
		return Config{}, err
	}
	c.normalize()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// normalize trims list entries (envconfig splits on commas only) and drops empty ones.
func (c *Config) normalize() {
	c.PlatformAdmins = cleanList(c.PlatformAdmins)
	c.CORSAllowedOrigins = cleanList(c.CORSAllowedOrigins)
	c.TrustedProxies = cleanList(c.TrustedProxies)
	c.JWKSURL = strings.TrimSpace(c.JWKSURL)
}

// Validate reports every invalid setting at once.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.JWTSecret == "":
		errs = append(errs, errors.New("AUTH_JWT_SECRET is required (at least 32 bytes, e.g. `openssl rand -hex 32`)"))
	case len(c.JWTSecret) < MinJWTSecret:
		errs = append(errs, fmt.Errorf("AUTH_JWT_SECRET is %d bytes; it must be at least %d bytes (e.g. `openssl rand -hex 32`)", len(c.JWTSecret), MinJWTSecret))
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("AUTH_JWKS_URL %q is not an http(s) URL", c.JWKSURL))
		}
		if c.Issuer == "" || c.Audience == "" {
			errs = append(errs, errors.New("AUTH_ISSUER and AUTH_AUDIENCE are required when AUTH_JWKS_URL is set"))
		}
	}
	for _, o := range c.CORSAllowedOrigins {
		if !isOrigin(o) {
			errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an exact origin like https://app.example.com", o))
		}
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither a CIDR nor an IP address", p))
		}
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("HTTP_ADDR must not be empty"))
	}
	if c.MetricsAddr == "" {
		errs = append(errs, errors.New("METRICS_ADDR must not be empty"))
	}
	if c.BodyLimit <= 0 {
		errs = append(errs, errors.New("HTTP_BODY_LIMIT must be a positive number of bytes"))
	}
	if c.RequestTimeout <= 0 || c.UpstreamTimeout <= 0 {
		errs = append(errs, errors.New("HTTP_REQUEST_TIMEOUT and UPSTREAM_TIMEOUT must be positive durations"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

// isOrigin accepts scheme://host[:port] with nothing after it: CORS matches origins
// exactly, so a wildcard or a path would never match and is a configuration mistake.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil && !strings.Contains(u.Host, "*") &&
		s == u.Scheme+"://"+u.Host
}

func cleanList(in []string) []string {
	out := in[:0]
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
