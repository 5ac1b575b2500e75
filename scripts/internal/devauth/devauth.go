// Package devauth is local-development authentication for the launcher: the HS256 secret
// kept per data directory and the user tokens `make run` and `make token` print.
package devauth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
)

// SecretFile is the file under the data directory that keeps the generated secret.
const SecretFile = "jwt-secret"

// LoadOrCreateSecret returns the secret kept in dataDir/jwt-secret, creating it (32
// random bytes, hex, mode 0600) when it does not exist yet. Creation is exclusive, so two
// launchers starting at once on one data directory still agree on one secret.
func LoadOrCreateSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, SecretFile)
	for range 3 {
		secret, err := readSecret(path)
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return "", fmt.Errorf("devauth: create data dir: %w", err)
		}
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return "", fmt.Errorf("devauth: random secret: %w", err)
		}
		secret = hex.EncodeToString(raw)
		// Write a temporary file, then link it into place: the link fails if another
		// launcher got there first, and a reader never sees a half-written secret.
		tmp, err := os.CreateTemp(dataDir, SecretFile+".tmp-*")
		if err != nil {
			return "", fmt.Errorf("devauth: create secret: %w", err)
		}
		_, werr := tmp.WriteString(secret + "\n")
		cerr := tmp.Close()
		if werr != nil || cerr != nil {
			_ = os.Remove(tmp.Name())
			return "", fmt.Errorf("devauth: write secret: %w", errors.Join(werr, cerr))
		}
		lerr := os.Link(tmp.Name(), path)
		_ = os.Remove(tmp.Name())
		if errors.Is(lerr, fs.ErrExist) {
			continue // another launcher won the race: read its secret
		}
		if lerr != nil {
			return "", fmt.Errorf("devauth: create %s: %w", path, lerr)
		}
		return secret, nil
	}
	return "", fmt.Errorf("devauth: %s keeps changing; giving up", path)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) < authtoken.MinSecretBytes {
		// A half-written or hand-edited file: refuse rather than hand the gateway a weak secret.
		return "", fmt.Errorf("devauth: %s holds fewer than %d characters; delete it to generate a new secret", path, authtoken.MinSecretBytes)
	}
	return secret, nil
}

// Claims describes a user token.
type Claims struct {
	Subject string
	Email   string   // defaults to <Subject>@localhost
	Roles   []string // e.g. authtoken.RolePlatformAdmin; omitted from the token when empty
	TTL     time.Duration
}

// MintUserToken signs an HS256 user token in the gateway's layout (authtoken.UserClaims),
// issued at now.
func MintUserToken(secret string, c Claims, now time.Time) (string, error) {
	if c.Subject == "" {
		return "", errors.New("devauth: subject is required")
	}
	email := c.Email
	if email == "" {
		email = c.Subject + "@localhost"
	}
	tok, err := authtoken.SignUser([]byte(secret), authtoken.UserToken{
		UserID:   c.Subject,
		Email:    email,
		Roles:    c.Roles,
		TTL:      c.TTL,
		IssuedAt: now,
	})
	if err != nil {
		return "", fmt.Errorf("devauth: %w", err)
	}
	return tok, nil
}
