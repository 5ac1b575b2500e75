package sshkey

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// Accepted key algorithms (SPEC §4.4) and RSA bounds.
const (
	AlgoEd25519   = ssh.KeyAlgoED25519
	AlgoECDSA256  = ssh.KeyAlgoECDSA256
	AlgoECDSA384  = ssh.KeyAlgoECDSA384
	AlgoECDSA521  = ssh.KeyAlgoECDSA521
	AlgoRSA       = ssh.KeyAlgoRSA
	MinRSABits    = 2048
	MaxRSABits    = 16384 // keeps verification cost bounded; no real agent key is larger
	publicKeyName = "public_key"
)

// PublicKey is a parsed, accepted public key.
type PublicKey struct {
	Key ssh.PublicKey
	// Authorized is the stored form: "type base64", without options or comment.
	Authorized string
	// Algorithm is Key.Type().
	Algorithm string
	// Fingerprint is the OpenSSH "SHA256:…" form, as ssh-keygen -lf prints it.
	Fingerprint string
}

// The answers about a public key. They are fixed texts: nothing of the input (which may
// be a private key) is ever echoed.
const (
	msgPrivateKey  = "this is a private key: paste the public key (the .pub file) instead, and keep the private key secret"
	msgRequired    = "is required"
	msgTooLong     = "is too long"
	msgOneLine     = "must be one OpenSSH public key line"
	msgComment     = "must be an OpenSSH public key line, not a comment"
	msgNotAKey     = "is not an OpenSSH public key (expected a line like \"ssh-ed25519 AAAA… comment\")"
	msgRSAShort    = "RSA keys must have at least 2048 bits"
	msgRSALong     = "RSA keys may have at most 16384 bits"
	msgUnsupported = "unsupported key type: use ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa (at least 2048 bits)"
)

func invalidKey(msg string) error { return &ValidationError{Field: publicKeyName, Message: msg} }

// ParsePublicKey parses one OpenSSH public key line (authorized_keys form; options and
// a comment allowed) and applies the type and size rules. Errors are a ValidationError
// on public_key or ErrPrivateKey; their text never contains the input.
func ParsePublicKey(text string) (PublicKey, error) {
	if looksPrivate(text) {
		return PublicKey{}, errorf(ErrPrivateKey, "%s", msgPrivateKey)
	}
	line := strings.TrimSpace(text)
	switch {
	case line == "":
		return PublicKey{}, invalidKey(msgRequired)
	case len(line) > sshkeyv1.MaxPublicKeyBytes:
		return PublicKey{}, invalidKey(msgTooLong)
	case strings.ContainsAny(line, "\r\n"):
		return PublicKey{}, invalidKey(msgOneLine)
	case line[0] == '#':
		return PublicKey{}, invalidKey(msgComment)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		if declaresUnsupportedType(line) {
			return PublicKey{}, unsupportedType()
		}
		return PublicKey{}, invalidKey(msgNotAKey)
	}
	if err := checkAlgorithm(pub); err != nil {
		return PublicKey{}, err
	}
	return PublicKey{
		Key:         pub,
		Authorized:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		Algorithm:   pub.Type(),
		Fingerprint: ssh.FingerprintSHA256(pub),
	}, nil
}

func checkAlgorithm(pub ssh.PublicKey) error {
	switch pub.Type() {
	case AlgoEd25519, AlgoECDSA256, AlgoECDSA384, AlgoECDSA521:
		return nil
	case AlgoRSA:
		bits := rsaBits(pub)
		switch {
		case bits < MinRSABits:
			return invalidKey(msgRSAShort)
		case bits > MaxRSABits:
			return invalidKey(msgRSALong)
		}
		return nil
	}
	return unsupportedType()
}

func unsupportedType() error {
	return invalidKey(msgUnsupported)
}

// declaresUnsupportedType recognises a line naming a key type the ssh package no longer
// parses (ssh-dss), so the answer says what is wrong rather than "not a key".
func declaresUnsupportedType(line string) bool {
	fields := strings.Fields(line)
	for _, f := range fields[:min(len(fields), 2)] { // the type, or options then the type
		if f == ssh.KeyAlgoDSA || strings.HasPrefix(f, "sk-") || strings.HasSuffix(f, "-cert-v01@openssh.com") {
			return true
		}
	}
	return false
}

func rsaBits(pub ssh.PublicKey) int {
	if ck, ok := pub.(ssh.CryptoPublicKey); ok {
		if k, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok {
			return k.N.BitLen()
		}
	}
	return 0
}

// parseStored parses a key as stored (Authorized form), for verification.
func parseStored(authorized string) (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorized))
	return pub, err
}

// opensshMagic is the base64 of "openssh-key-v1\x00", the start of the binary form of
// an OpenSSH private key: its armour lines may have been lost in the paste.
const opensshMagic = "b3BlbnNzaC1rZXktdjEA"

// looksPrivate recognises pasted private keys: PEM or OpenSSH armour, PuTTY files,
// anything the ssh package parses as a private key (even one needing a passphrase),
// and the un-armoured base64 of an OpenSSH, PKCS#1, PKCS#8 or SEC 1 private key.
func looksPrivate(text string) bool {
	if strings.Contains(text, "PRIVATE KEY-----") || strings.Contains(text, "PuTTY-User-Key-File-") ||
		strings.Contains(text, opensshMagic) {
		return true
	}
	if strings.Contains(text, "-----BEGIN") {
		_, err := ssh.ParseRawPrivateKey([]byte(text))
		var missing *ssh.PassphraseMissingError
		if err == nil || errors.As(err, &missing) {
			return true
		}
	}
	return bareDERPrivateKey(text)
}

// bareDERPrivateKey reports base64 text (possibly over several lines) that decodes to
// a DER private key.
func bareDERPrivateKey(text string) bool {
	joined := strings.Join(strings.Fields(text), "")
	if len(joined) < 64 {
		return false
	}
	der, err := base64.StdEncoding.DecodeString(joined)
	if err != nil {
		if der, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(joined, "=")); err != nil {
			return false
		}
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	_, err = x509.ParseECPrivateKey(der)
	return err == nil
}
