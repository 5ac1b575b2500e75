// Package testkeys makes SSH keys for tests: every accepted algorithm, the rejected ones
// (short RSA, DSA, security keys, certificates) and pasted private keys in their usual
// forms.
package testkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Kinds of keys New makes.
const (
	Ed25519 = "ed25519"
	P256    = "p256"
	P384    = "p384"
	P521    = "p521"
	RSA1024 = "rsa1024"
	RSA2048 = "rsa2048"
	RSA3072 = "rsa3072"
)

// Key is a private key with its SSH forms.
type Key struct {
	Private crypto.Signer
	Signer  ssh.Signer
	// Line is the authorized_keys line with a comment.
	Line        string
	Fingerprint string
}

// Public is the public key.
func (k Key) Public() ssh.PublicKey { return k.Signer.PublicKey() }

// New makes a fresh key of kind.
func New(t testing.TB, kind string) Key {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch kind {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case P256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case P384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case P521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case RSA1024:
		priv, err = rsa.GenerateKey(rand.Reader, 1024) // refused on purpose
	case RSA2048:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		t.Fatalf("testkeys: unknown kind %q", kind)
	}
	if err != nil {
		t.Fatalf("testkeys: %s: %v", kind, err)
	}
	return FromPrivate(t, priv)
}

// FromPrivate wraps an existing private key.
func FromPrivate(t testing.TB, priv crypto.Signer) Key {
	t.Helper()
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("testkeys: %v", err)
	}
	return Key{
		Private:     priv,
		Signer:      s,
		Line:        strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " agent@test",
		Fingerprint: ssh.FingerprintSHA256(s.PublicKey()),
	}
}

// Authorized is the authorized_keys form of pub without a comment.
func Authorized(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func line(algo string, blob []byte) string {
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		// Key types the ssh package cannot parse still make a line of their own.
		return algo + " " + base64.StdEncoding.EncodeToString(blob)
	}
	return Authorized(pub)
}

// DSALine is an ssh-dss public key line (DSA is refused).
func DSALine(t testing.TB) string {
	t.Helper()
	bits := func(n int) *big.Int {
		v, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(n-1)))
		if err != nil {
			t.Fatal(err)
		}
		return v.SetBit(v, n-1, 1)
	}
	blob := ssh.Marshal(struct {
		Name       string
		P, Q, G, Y *big.Int
	}{"ssh-dss", bits(1024), bits(160), bits(1000), bits(1000)})
	return line("ssh-dss", blob) + " old@dsa"
}

// SKEd25519Line is a FIDO security-key ed25519 line (sk-* types are refused).
func SKEd25519Line(t testing.TB) string {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	blob := ssh.Marshal(struct {
		Name        string
		KeyBytes    []byte
		Application string
	}{ssh.KeyAlgoSKED25519, pub, "ssh:"})
	return line(ssh.KeyAlgoSKED25519, blob) + " sk@test"
}

// SKECDSALine is a FIDO security-key ECDSA line.
func SKECDSALine(t testing.TB) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	blob := ssh.Marshal(struct {
		Name        string
		ID          string
		Key         []byte
		Application string
	}{ssh.KeyAlgoSKECDSA256, "nistp256", point, "ssh:"})
	return line(ssh.KeyAlgoSKECDSA256, blob) + " sk@test"
}

// CertLine is an OpenSSH certificate line for a fresh ed25519 key (certificates are
// refused).
func CertLine(t testing.TB) string {
	t.Helper()
	k, ca := New(t, Ed25519), New(t, Ed25519)
	cert := &ssh.Certificate{Key: k.Public(), CertType: ssh.UserCert, KeyId: "agent", ValidPrincipals: []string{"agent"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca.Signer); err != nil {
		t.Fatalf("testkeys: cert: %v", err)
	}
	return Authorized(cert) + " cert@test"
}

// PrivateForms are k's private key as people paste it: OpenSSH PEM (plain and
// encrypted), PKCS#8 PEM, the type's own PEM (PKCS#1 / SEC 1) where it has one, and
// the OpenSSH body without its armour lines.
func PrivateForms(t testing.TB, k Key) map[string]string {
	t.Helper()
	out := map[string]string{}
	block, err := ssh.MarshalPrivateKey(k.Private, "agent@test")
	if err != nil {
		t.Fatal(err)
	}
	openssh := string(pem.EncodeToMemory(block))
	out["openssh"] = openssh
	lines := strings.Split(strings.TrimSpace(openssh), "\n")
	out["openssh body"] = strings.Join(lines[1:len(lines)-1], "\n")
	enc, err := ssh.MarshalPrivateKeyWithPassphrase(k.Private, "agent@test", []byte("sesame"))
	if err != nil {
		t.Fatal(err)
	}
	out["openssh encrypted"] = string(pem.EncodeToMemory(enc))
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	out["pkcs8"] = pkcs8
	pl := strings.Split(strings.TrimSpace(pkcs8), "\n")
	out["pkcs8 body"] = strings.Join(pl[1:len(pl)-1], "\n")
	switch p := k.Private.(type) {
	case *rsa.PrivateKey:
		out["pkcs1"] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(p)}))
	case *ecdsa.PrivateKey:
		b, err := x509.MarshalECPrivateKey(p)
		if err != nil {
			t.Fatal(err)
		}
		out["sec1"] = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}))
	}
	// A private key pasted with the public line after it, as from a cat of both files.
	out["private then public"] = openssh + k.Line + "\n"
	return out
}
