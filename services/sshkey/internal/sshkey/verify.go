package sshkey

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Signature is a decoded login response: the raw bytes and, when they parse as one,
// the SSH wire signature (format + blob).
type Signature struct {
	raw []byte
	ssh *ssh.Signature
}

// DecodeResponse decodes a login response: standard base64, padding optional. Errors
// are ErrLoginFailed.
func DecodeResponse(response string) (Signature, error) {
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(response, "="))
	if err != nil || len(raw) == 0 {
		return Signature{}, loginFailed("response is not base64")
	}
	sig := Signature{raw: raw}
	var wire ssh.Signature
	if ssh.Unmarshal(raw, &wire) == nil && wire.Format != "" {
		sig.ssh = &wire
	}
	return sig, nil
}

// Verify checks sig over the challenge's ASCII bytes with pub: an SSH wire signature of
// any algorithm the key supports except SHA-1 "ssh-rsa", or, for RSA keys, the original
// clients' raw RSASSA-PKCS1-v1_5 SHA-256 signature. Errors are ErrLoginFailed.
func (sig Signature) Verify(pub ssh.PublicKey, challenge string) error {
	data := []byte(challenge)
	if w := sig.ssh; w != nil {
		switch {
		case w.Format == ssh.KeyAlgoRSA:
			// Checked before Verify, which would accept it: SHA-1 is broken.
			return loginFailed("SHA-1 ssh-rsa signatures are not accepted")
		case len(w.Rest) > 0:
			// Only security-key (sk-*) signatures carry trailing fields, and those key
			// types are never registered.
			return loginFailed("unexpected trailing signature fields")
		}
		if pub.Verify(data, w) == nil {
			return nil
		}
	}
	// A raw RSA signature could, by chance, also parse as a wire blob: for RSA keys the
	// legacy form is tried whenever the wire form did not verify.
	if k := rsaKey(pub); k != nil {
		digest := sha256.Sum256(data)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig.raw) == nil {
			return nil
		}
	}
	return loginFailed("signature does not verify")
}

// VerifySignature decodes response and verifies it over challenge with pub.
func VerifySignature(pub ssh.PublicKey, challenge, response string) error {
	sig, err := DecodeResponse(response)
	if err != nil {
		return err
	}
	return sig.Verify(pub, challenge)
}

func rsaKey(pub ssh.PublicKey) *rsa.PublicKey {
	if pub.Type() != ssh.KeyAlgoRSA {
		return nil
	}
	if ck, ok := pub.(ssh.CryptoPublicKey); ok {
		k, _ := ck.CryptoPublicKey().(*rsa.PublicKey)
		return k
	}
	return nil
}
