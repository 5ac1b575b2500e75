package command

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
)

// readLimited reads r whole, failing beyond max bytes rather than truncating.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return b, nil
}

// expandHome resolves a leading ~/ (a flag's default is not expanded by a shell).
func expandHome(path string, getenv func(string) string) string {
	rest, ok := strings.CutPrefix(path, "~/")
	if !ok {
		return path
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, rest)
}

func (a *app) loginCommand() *cobra.Command {
	var keyPath, agentID, keyID, passphraseEnv string
	var export, legacyRSA bool
	c := &cobra.Command{
		Use:   "login --key PATH --agent AGENT_ID",
		Short: "Log an agent in with its SSH private key and print its one-hour agent token",
		Long: `login asks for a challenge, signs it with the agent's SSH private key and exchanges the
signature for an agent token (SPEC §4.4), with contracts/agentlogin: the same code as the
agent-login example. The key must be registered for the agent (artcafe keys add --agent,
or agents create --public-key). With --agent alone any active key of the agent may answer.`,
		Example: `  artcafe login --key ~/.ssh/bot --agent 01J… --tenant-id 3f0c…
  eval "$(artcafe login --key ~/.ssh/bot --agent 01J… --export)"   # sets ARTCAFE_TOKEN and ARTCAFE_TENANT
  BOT_PASS=… artcafe login --key ./bot --key-id 01J… --passphrase-env BOT_PASS`,
		Args: args(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			tid, err := a.needTenant()
			if err != nil {
				return err
			}
			if agentID == "" && keyID == "" {
				return usagef("give --agent or --key-id")
			}
			var pass []byte
			if passphraseEnv != "" {
				if pass = []byte(a.io.Getenv(passphraseEnv)); len(pass) == 0 {
					return usagef("--passphrase-env %s: the variable is empty or unset", passphraseEnv)
				}
			}
			path := expandHome(keyPath, a.io.Getenv)
			var sign func(string) (string, error)
			if legacyRSA {
				k, err := agentlogin.LoadRSAKey(path, pass)
				if err != nil {
					return err
				}
				sign = func(ch string) (string, error) { return agentlogin.SignLegacyRSA(k, ch) }
			} else {
				s, err := agentlogin.LoadSigner(path, pass)
				if err != nil {
					return err
				}
				sign = func(ch string) (string, error) { return agentlogin.Sign(s, ch) }
			}
			tok, err := a.agentLogin(cmd.Context(), tid, keyID, agentID, sign)
			if err != nil {
				return err
			}
			switch {
			case a.json:
				return a.p.Value(tok)
			case export:
				// Tokens and tenant ids are base64url, dots and hex: safe in single quotes.
				fmt.Fprintf(a.io.Out, "export %s='%s' %s='%s'\n", EnvToken, tok.Token, EnvTenant, tok.TenantID)
			default:
				fmt.Fprintln(a.io.Out, tok.Token)
			}
			a.p.Note("agent %s logged in with key %s; the token expires %s", tok.AgentID, tok.KeyID, a.when(&tok.ExpiresAt))
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "~/.ssh/id_ed25519", "the agent's private key file (OpenSSH or PEM)")
	c.Flags().StringVar(&agentID, "agent", "", "the agent's id")
	c.Flags().StringVar(&keyID, "key-id", "", "the SSH key's id (instead of, or with, --agent)")
	c.Flags().StringVar(&passphraseEnv, "passphrase-env", "", "name of the variable holding the key's passphrase")
	c.Flags().BoolVar(&export, "export", false, "print a shell line: export ARTCAFE_TOKEN=… ARTCAFE_TENANT=…")
	c.Flags().BoolVar(&legacyRSA, "legacy-rsa", false, "RSA keys: send the original clients' raw PKCS#1 v1.5 signature")
	return c
}

// agentLogin runs challenge → sign → verify through contracts/agentlogin.
func (a *app) agentLogin(ctx context.Context, tenant, keyID, agentID string, sign func(string) (string, error)) (agentlogin.Token, error) {
	lc := agentlogin.Client{BaseURL: a.api, HTTP: a.client().HTTP}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	tok, err := lc.LoginWith(ctx, tenant, keyID, agentID, sign)
	if err != nil {
		return tok, err
	}
	tok.ExpiresAt = tok.ExpiresAt.UTC().Truncate(time.Second)
	return tok, nil
}
