package sshkey_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // a refused SHA-1 signature, on purpose
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

const challenge = "3f1c9a0b7d2e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"

func wire(t *testing.T, sig *ssh.Signature) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(ssh.Marshal(sig))
}

func signWith(t *testing.T, k testkeys.Key, algo, data string) *ssh.Signature {
	t.Helper()
	sig, err := k.Signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, []byte(data), algo)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// The one client implementation (contracts/agentlogin) against the service's verifier,
// for every key type and both RSA forms.
func TestAgentLoginSignVerifies(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{testkeys.Ed25519, testkeys.P256, testkeys.P384, testkeys.P521, testkeys.RSA2048, testkeys.RSA3072} {
		k := testkeys.New(t, kind)
		other := testkeys.New(t, kind)
		resp, err := agentlogin.Sign(k.Signer, challenge)
		if err != nil {
			t.Fatal(err)
		}
		if err := sshkey.VerifySignature(k.Public(), challenge, resp); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		// Padding is optional.
		if err := sshkey.VerifySignature(k.Public(), challenge, strings.TrimRight(resp, "=")); err != nil {
			t.Fatalf("%s unpadded: %v", kind, err)
		}
		for name, bad := range map[string]error{
			"another key":       sshkey.VerifySignature(other.Public(), challenge, resp),
			"another challenge": sshkey.VerifySignature(k.Public(), strings.Repeat("0", 64), resp),
			"hex-decoded bytes": verifyDecoded(t, k),
			"with a newline":    sshkey.VerifySignature(k.Public(), challenge, mustSign(t, k, challenge+"\n")),
		} {
			if !errors.Is(bad, sshkey.ErrLoginFailed) {
				t.Fatalf("%s %s: %v", kind, name, bad)
			}
		}
	}
}

func mustSign(t *testing.T, k testkeys.Key, data string) string {
	t.Helper()
	resp, err := agentlogin.Sign(k.Signer, data)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// verifyDecoded signs the 32 bytes the challenge's hex stands for, which is not what the
// SPEC says to sign.
func verifyDecoded(t *testing.T, k testkeys.Key) error {
	t.Helper()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = hexVal(challenge[2*i])<<4 | hexVal(challenge[2*i+1])
	}
	return sshkey.VerifySignature(k.Public(), challenge, mustSign(t, k, string(raw)))
}

func hexVal(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

func TestRSAForms(t *testing.T) {
	t.Parallel()
	k := testkeys.New(t, testkeys.RSA2048)
	priv := k.Private.(*rsa.PrivateKey)

	if err := sshkey.VerifySignature(k.Public(), challenge, wire(t, signWith(t, k, ssh.KeyAlgoRSASHA512, challenge))); err != nil {
		t.Fatalf("rsa-sha2-512: %v", err)
	}
	legacy, err := agentlogin.SignLegacyRSA(priv, challenge)
	if err != nil {
		t.Fatal(err)
	}
	if err := sshkey.VerifySignature(k.Public(), challenge, legacy); err != nil {
		t.Fatalf("legacy: %v", err)
	}
	if err := sshkey.VerifySignature(k.Public(), challenge, strings.TrimRight(legacy, "=")); err != nil {
		t.Fatalf("legacy unpadded: %v", err)
	}

	// SHA-1 is refused in every shape: the ssh-rsa wire format, and a raw PKCS#1 v1.5
	// SHA-1 signature.
	sha1Sig := signWith(t, k, ssh.KeyAlgoRSA, challenge)
	if sha1Sig.Format != ssh.KeyAlgoRSA || k.Public().Verify([]byte(challenge), sha1Sig) != nil {
		t.Fatalf("the library did not make a valid ssh-rsa signature: %s", sha1Sig.Format)
	}
	if err := sshkey.VerifySignature(k.Public(), challenge, wire(t, sha1Sig)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("ssh-rsa (SHA-1) accepted: %v", err)
	}
	d1 := sha1.Sum([]byte(challenge))
	raw1, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA1, d1[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := sshkey.VerifySignature(k.Public(), challenge, base64.StdEncoding.EncodeToString(raw1)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("raw SHA-1 accepted: %v", err)
	}
	// The legacy form of another challenge, or from another key, fails.
	other, _ := agentlogin.SignLegacyRSA(priv, strings.Repeat("a", 64))
	if err := sshkey.VerifySignature(k.Public(), challenge, other); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("legacy of another challenge: %v", err)
	}
	// A raw signature over the challenge without hashing it (PKCS#1 with no digest
	// info) fails.
	d := sha256.Sum256([]byte(challenge))
	noInfo, err := rsa.SignPKCS1v15(rand.Reader, priv, crypto.Hash(0), d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := sshkey.VerifySignature(k.Public(), challenge, base64.StdEncoding.EncodeToString(noInfo)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("PKCS#1 without digest info accepted: %v", err)
	}
}

// The legacy raw form is for RSA keys only; signature formats must match the key.
func TestFormsThatDoNotFitTheKey(t *testing.T) {
	t.Parallel()
	ed := testkeys.New(t, testkeys.Ed25519)
	p256 := testkeys.New(t, testkeys.P256)
	rsaKey := testkeys.New(t, testkeys.RSA2048)

	edSig, _ := ed.Signer.Sign(rand.Reader, []byte(challenge))
	// The ed25519 signature blob alone, base64: not a wire signature, not RSA.
	if err := sshkey.VerifySignature(ed.Public(), challenge, base64.StdEncoding.EncodeToString(edSig.Blob)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("bare ed25519 blob accepted: %v", err)
	}
	// An ed25519 signature presented for an ECDSA key.
	if err := sshkey.VerifySignature(p256.Public(), challenge, wire(t, edSig)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("ed25519 signature for an ECDSA key: %v", err)
	}
	// A valid signature with trailing fields (the sk-* layout) is refused.
	withRest := *edSig
	withRest.Rest = []byte{1, 0, 0, 0, 1}
	if err := sshkey.VerifySignature(ed.Public(), challenge, wire(t, &withRest)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("trailing fields accepted: %v", err)
	}
	// A wrong format name on a valid RSA blob.
	sig := signWith(t, rsaKey, ssh.KeyAlgoRSASHA256, challenge)
	sig.Format = ssh.KeyAlgoRSASHA512
	if err := sshkey.VerifySignature(rsaKey.Public(), challenge, wire(t, sig)); !errors.Is(err, sshkey.ErrLoginFailed) {
		t.Fatalf("mislabelled RSA signature accepted: %v", err)
	}
	for name, resp := range map[string]string{
		"empty":          "",
		"not base64":     "!!!not base64!!!",
		"padding inside": "QQ==QQ==",
		"one byte":       "QQ",
	} {
		if err := sshkey.VerifySignature(ed.Public(), challenge, resp); !errors.Is(err, sshkey.ErrLoginFailed) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
