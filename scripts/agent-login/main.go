// Command agent-login logs an agent in to ArtCafe PubSub with its SSH private key and
// prints the one-hour agent token: it asks for a challenge, signs it and sends the
// signature back (SPEC §4.4), through contracts/agentlogin. Copy it into an agent, or run
// it from a shell:
//
//	agent-login -api http://127.0.0.1:8000/api/v1 -tenant <tenant id> -agent-id <agent id> -key ~/.ssh/id_ed25519
//	eval "$(agent-login … -export)"   # sets ARTCAFE_TOKEN
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
)

const usage = `agent-login logs an agent in with its SSH private key and prints the agent token.

Usage:
  agent-login -tenant TENANT_ID (-key-id KEY_ID | -agent-id AGENT_ID) [-key PATH]
              [-api URL] [-passphrase-env VAR] [-legacy-rsa] [-export] [-timeout 15s]

The key file is an OpenSSH or PEM private key (ed25519, ECDSA or RSA). The key must be
registered as an SSH key of type agent (POST /api/v1/ssh-keys with agent_id, or
POST /api/v1/agents with public_key). With -agent-id alone any active key of the agent
may answer. The token is valid for one hour; run agent-login again for a new one.

Flags:
`

// options are the parsed flags.
type options struct {
	api, tenant, keyID, agentID, keyPath, passphraseEnv string
	legacyRSA, export                                   bool
	timeout                                             time.Duration
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit code (2 for usage errors).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parse(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "agent-login: %v\n", err)
		return 2
	}
	tok, err := login(ctx, opts, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "agent-login: %v\n", err)
		return 1
	}
	if opts.export {
		// The token is base64url and dots only: safe unquoted, quoted anyway.
		fmt.Fprintf(stdout, "export ARTCAFE_TOKEN='%s'\n", tok.Token)
	} else {
		fmt.Fprintln(stdout, tok.Token)
	}
	fmt.Fprintf(stderr, "agent-login: agent %s logged in with key %s; the token expires at %s\n",
		tok.AgentID, tok.KeyID, tok.ExpiresAt.UTC().Format(time.RFC3339))
	return 0
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("agent-login", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	api := getenv("ARTCAFE_API")
	if api == "" {
		api = "http://127.0.0.1:8000/api/v1"
	}
	fs.StringVar(&o.api, "api", api, "the API's base URL, …/api/v1 (env ARTCAFE_API)")
	fs.StringVar(&o.tenant, "tenant", getenv("ARTCAFE_TENANT"), "tenant id (env ARTCAFE_TENANT, as the artcafe CLI)")
	fs.StringVar(&o.keyID, "key-id", "", "the SSH key's id (key_id)")
	fs.StringVar(&o.agentID, "agent-id", "", "the agent's id (agent_id); any active key of the agent may answer")
	fs.StringVar(&o.keyPath, "key", "~/.ssh/id_ed25519", "private key file")
	fs.StringVar(&o.passphraseEnv, "passphrase-env", "", "name of the environment variable holding the key's passphrase")
	fs.BoolVar(&o.legacyRSA, "legacy-rsa", false, "RSA keys: send the original clients' raw PKCS#1 v1.5 SHA-256 signature instead of an SSH signature")
	fs.BoolVar(&o.export, "export", false, "print a shell line: export ARTCAFE_TOKEN=…")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "deadline of the whole login")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.tenant == "":
		return o, errors.New("-tenant is required")
	case o.keyID == "" && o.agentID == "":
		return o, errors.New("give -key-id or -agent-id")
	case o.api == "":
		return o, errors.New("-api is required")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	return o, nil
}

func login(ctx context.Context, o options, getenv func(string) string) (agentlogin.Token, error) {
	path, err := expandHome(o.keyPath, getenv)
	if err != nil {
		return agentlogin.Token{}, err
	}
	var passphrase []byte
	if o.passphraseEnv != "" {
		v := getenv(o.passphraseEnv)
		if v == "" {
			return agentlogin.Token{}, fmt.Errorf("-passphrase-env %s: the variable is empty or unset", o.passphraseEnv)
		}
		passphrase = []byte(v)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	client := agentlogin.Client{BaseURL: strings.TrimRight(o.api, "/"), HTTP: &http.Client{Timeout: o.timeout}}
	if o.legacyRSA {
		key, err := agentlogin.LoadRSAKey(path, passphrase)
		if err != nil {
			return agentlogin.Token{}, err
		}
		return client.LoginWith(ctx, o.tenant, o.keyID, o.agentID, func(challenge string) (string, error) {
			return agentlogin.SignLegacyRSA(key, challenge)
		})
	}
	signer, err := agentlogin.LoadSigner(path, passphrase)
	if err != nil {
		return agentlogin.Token{}, err
	}
	return client.Login(ctx, o.tenant, o.keyID, o.agentID, signer)
}

// expandHome resolves a leading ~/ (a flag default is not expanded by the shell).
func expandHome(path string, getenv func(string) string) (string, error) {
	rest, ok := strings.CutPrefix(path, "~/")
	if !ok {
		return path, nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", fmt.Errorf("-key %s: %w", path, err)
		}
	}
	return filepath.Join(home, rest), nil
}
