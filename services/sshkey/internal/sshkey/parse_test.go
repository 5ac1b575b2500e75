package sshkey_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

func TestParseAcceptsModernKeys(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{testkeys.Ed25519, testkeys.P256, testkeys.P384, testkeys.P521, testkeys.RSA2048, testkeys.RSA3072} {
		k := testkeys.New(t, kind)
		for name, text := range map[string]string{
			"plain":           k.Line,
			"no comment":      testkeys.Authorized(k.Public()),
			"options":         `no-pty,command="echo \"hi there\"" ` + k.Line,
			"spaces, newline": "  \t" + k.Line + "\r\n",
		} {
			pk, err := sshkey.ParsePublicKey(text)
			if err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			if pk.Fingerprint != k.Fingerprint || pk.Algorithm != k.Public().Type() || pk.Authorized != testkeys.Authorized(k.Public()) {
				t.Fatalf("%s %s: parsed %+v", kind, name, pk)
			}
		}
	}
}

func field(t *testing.T, err error) string {
	t.Helper()
	var ve *sshkey.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a validation error", err)
	}
	return ve.Field
}

func TestParseRefusesOtherKeys(t *testing.T) {
	t.Parallel()
	ed := testkeys.New(t, testkeys.Ed25519)
	edBlob := strings.Fields(ed.Line)[1]
	cases := map[string]string{
		"rsa 1024":            testkeys.New(t, testkeys.RSA1024).Line,
		"dsa":                 testkeys.DSALine(t),
		"sk ed25519":          testkeys.SKEd25519Line(t),
		"sk ecdsa":            testkeys.SKECDSALine(t),
		"certificate":         testkeys.CertLine(t),
		"empty":               "",
		"blank":               " \n\t ",
		"garbage":             "hello world",
		"bad base64":          "ssh-ed25519 AAAA!!!! x",
		"type mismatch":       "ssh-rsa " + edBlob,
		"two keys":            ed.Line + "\n" + testkeys.New(t, testkeys.Ed25519).Line,
		"junk line then key":  "junk\n" + ed.Line,
		"comment line":        "# " + ed.Line,
		"type only":           "ssh-ed25519",
		"blob only":           edBlob,
		"truncated blob":      "ssh-ed25519 " + edBlob[:len(edBlob)-8],
		"too long":            ed.Line + " " + strings.Repeat("x", 17<<10),
		"unknown option form": `command="unterminated ` + ed.Line,
	}
	for name, text := range cases {
		_, err := sshkey.ParsePublicKey(text)
		if !errors.Is(err, sshkey.ErrInvalid) || field(t, err) != "public_key" {
			t.Fatalf("%s: %v", name, err)
		}
		var ve *sshkey.ValidationError
		errors.As(err, &ve)
		switch name {
		case "rsa 1024":
			if !strings.Contains(ve.Message, "2048") {
				t.Fatalf("%s: %q", name, ve.Message)
			}
		case "dsa", "sk ed25519", "sk ecdsa", "certificate":
			if !strings.Contains(ve.Message, "unsupported key type") {
				t.Fatalf("%s: %q", name, ve.Message)
			}
		}
		if len(text) > 12 && strings.Contains(err.Error(), strings.TrimSpace(text)) {
			t.Fatalf("%s: the error echoes the input", name)
		}
	}
}

func TestParseRejectsPrivateKeys(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{testkeys.Ed25519, testkeys.P256, testkeys.RSA2048} {
		k := testkeys.New(t, kind)
		for name, text := range testkeys.PrivateForms(t, k) {
			_, err := sshkey.ParsePublicKey(text)
			if !errors.Is(err, sshkey.ErrPrivateKey) {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			for _, line := range strings.Split(text, "\n") {
				if len(line) > 16 && strings.Contains(err.Error(), line) {
					t.Fatalf("%s %s: the error echoes the key", kind, name)
				}
			}
		}
	}
	if _, err := sshkey.ParsePublicKey("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n"); !errors.Is(err, sshkey.ErrPrivateKey) {
		t.Fatalf("putty: %v", err)
	}
}

// The fingerprint is what `ssh-keygen -lf` prints (when the machine has ssh-keygen).
func TestFingerprintMatchesSSHKeygen(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	for _, kind := range []string{testkeys.Ed25519, testkeys.P384, testkeys.RSA2048} {
		k := testkeys.New(t, kind)
		path := filepath.Join(t.TempDir(), "key.pub")
		if err := os.WriteFile(path, []byte(k.Line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-lf", path).Output()
		if err != nil {
			t.Fatalf("ssh-keygen: %v", err)
		}
		pk, err := sshkey.ParsePublicKey(k.Line)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Fields(string(out))
		if len(got) < 2 || got[1] != pk.Fingerprint || !strings.HasPrefix(pk.Fingerprint, "SHA256:") {
			t.Fatalf("%s: ssh-keygen says %q, we say %s", kind, out, pk.Fingerprint)
		}
	}
}
