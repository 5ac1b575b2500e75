package localnats

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
)

// Credentials are the components' NKeys of one data dir: a seed file per component
// (mode 0600) that the component gets as NATS_CREDS, and the public keys the server
// knows.
type Credentials struct {
	Dir    string
	Public map[string]string // component → public key
}

// CredentialsDir is where EnsureCredentials keeps the seeds of dataDir.
func CredentialsDir(dataDir string) string { return filepath.Join(dataDir, "nats", "nkeys") }

// SeedFile is component's seed file.
func (c Credentials) SeedFile(component string) string {
	return filepath.Join(c.Dir, component+".nk")
}

// EnsureCredentials returns the seeds under dataDir/nats/nkeys, creating the missing
// ones once (several processes may call it at the same time: a seed file appears whole
// or not at all, and the first one written wins).
func EnsureCredentials(dataDir string) (Credentials, error) {
	c := Credentials{Dir: CredentialsDir(dataDir), Public: map[string]string{}}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return c, fmt.Errorf("localnats: credentials dir: %w", err)
	}
	for _, name := range natsperm.Components() {
		pub, err := ensureSeed(c.SeedFile(name))
		if err != nil {
			return c, fmt.Errorf("localnats: %s credentials: %w", name, err)
		}
		c.Public[name] = pub
	}
	return c, nil
}

func ensureSeed(path string) (string, error) {
	if pub, err := readSeed(path); !errors.Is(err, fs.ErrNotExist) {
		return pub, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.Write(append(seed, '\n'))
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", werr
	}
	// CreateTemp made it 0600; Link fails if another process got there first.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	return readSeed(path)
}

func readSeed(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("%s does not hold an NKey user seed (remove it to make a new one): %w", path, err)
	}
	return kp.PublicKey()
}
