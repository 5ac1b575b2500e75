package agentlogin_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

const tenantID = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"

// fakeAPI serves the two login routes of the API for one registered key, verifying the
// way the SPEC says (wire signature, SHA-1 refused; legacy raw form for RSA). The real
// verifier is tested against Sign in services/sshkey.
type fakeAPI struct {
	pub        ssh.PublicKey
	keyID      string
	mu         sync.Mutex
	challenges map[string]bool
}

func (f *fakeAPI) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, status int, code, detail string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req-header")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"detail": detail, "code": code, "request_id": "req-body"})
	}
	mux.HandleFunc("POST /api/v1/auth/challenge", func(w http.ResponseWriter, r *http.Request) {
		var b sshkeyv1.ChallengeBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Header.Get("Content-Type") != "application/json" {
			fail(w, 400, "invalid_json", "bad body")
			return
		}
		if err := b.Validate(); err != nil {
			fail(w, 422, "validation_failed", err.Error())
			return
		}
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		ch := hexString(raw[:])
		f.mu.Lock()
		f.challenges[ch] = true
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(sshkeyv1.Challenge{Challenge: ch, ExpiresAt: time.Now().Add(5 * time.Minute), TenantID: b.TenantID, KeyID: &b.KeyID})
	})
	mux.HandleFunc("POST /api/v1/auth/verify", func(w http.ResponseWriter, r *http.Request) {
		var b sshkeyv1.VerifyBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			fail(w, 400, "invalid_json", "bad body")
			return
		}
		f.mu.Lock()
		ok := f.challenges[b.Challenge]
		delete(f.challenges, b.Challenge)
		f.mu.Unlock()
		if !ok || b.KeyID != f.keyID || !f.verify(b.Challenge, b.Response) {
			fail(w, 401, "invalid_signature", "the challenge response is not valid")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"valid": true, "token": "tok-" + b.KeyID, "expires_at": time.Now().Add(time.Hour).UTC(),
			"tenant_id": b.TenantID, "agent_id": "AGENT", "key_id": b.KeyID,
		})
	})
	return mux
}

func (f *fakeAPI) verify(challenge, response string) bool {
	raw, err := base64.StdEncoding.DecodeString(response)
	if err != nil {
		return false
	}
	var sig ssh.Signature
	if ssh.Unmarshal(raw, &sig) == nil && sig.Format != ssh.KeyAlgoRSA && f.pub.Verify([]byte(challenge), &sig) == nil {
		return true
	}
	if ck, ok := f.pub.(ssh.CryptoPublicKey); ok {
		if k, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok {
			d := sha256.Sum256([]byte(challenge))
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], raw) == nil
		}
	}
	return false
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func serve(t *testing.T, pub ssh.PublicKey) *agentlogin.Client {
	t.Helper()
	f := &fakeAPI{pub: pub, keyID: "01HZZZZZZZZZZZZZZZZZZZZZZZ", challenges: map[string]bool{}}
	srv := httptest.NewServer(f.handler(t))
	t.Cleanup(srv.Close)
	return &agentlogin.Client{BaseURL: srv.URL + "/api/v1/", HTTP: srv.Client()}
}

func TestLoginEd25519AndRSA(t *testing.T) {
	t.Parallel()
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, priv := range map[string]crypto.Signer{"ed25519": edPriv, "rsa": rsaPriv} {
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		c := serve(t, signer.PublicKey())
		tok, err := c.Login(context.Background(), tenantID, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "", signer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tok.Token != "tok-01HZZZZZZZZZZZZZZZZZZZZZZZ" || tok.TenantID != tenantID || tok.AgentID != "AGENT" || tok.ExpiresAt.IsZero() {
			t.Fatalf("%s: token %+v", name, tok)
		}
		// Another key of the same type does not verify.
		var otherPriv crypto.Signer
		if name == "rsa" {
			otherPriv, err = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			_, otherPriv, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			t.Fatal(err)
		}
		other, _ := ssh.NewSignerFromKey(otherPriv)
		_, err = c.Login(context.Background(), tenantID, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "", other)
		var apiErr *agentlogin.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "invalid_signature" || apiErr.RequestID != "req-body" {
			t.Fatalf("%s: wrong key: %v", name, err)
		}
	}

	// The legacy raw RSA form through LoginWith.
	signer, _ := ssh.NewSignerFromKey(rsaPriv)
	c := serve(t, signer.PublicKey())
	tok, err := c.LoginWith(context.Background(), tenantID, "01HZZZZZZZZZZZZZZZZZZZZZZZ", "", func(ch string) (string, error) {
		return agentlogin.SignLegacyRSA(rsaPriv, ch)
	})
	if err != nil || tok.Token == "" {
		t.Fatalf("legacy: %v %+v", err, tok)
	}
}

func TestSignRSAUsesSHA256(t *testing.T) {
	t.Parallel()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	resp, err := agentlogin.Sign(signer, "abc")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(resp)
	var sig ssh.Signature
	if err := ssh.Unmarshal(raw, &sig); err != nil || sig.Format != ssh.KeyAlgoRSASHA256 {
		t.Fatalf("signature format %q, %v", sig.Format, err)
	}
	if err := signer.PublicKey().Verify([]byte("abc"), &sig); err != nil {
		t.Fatal(err)
	}
	if _, err := agentlogin.Sign(nil, "abc"); err == nil {
		t.Fatal("a nil signer signed")
	}
	if _, err := agentlogin.SignLegacyRSA(nil, "abc"); err == nil {
		t.Fatal("a nil RSA key signed")
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /a/auth/challenge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "17")
		w.Header().Set("X-Request-Id", "req-429")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"detail":"slow down","code":"rate_limited","request_id":"req-429"}`))
	})
	mux.HandleFunc("POST /b/auth/challenge", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-502")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>proxy error</html>"))
	})
	mux.HandleFunc("POST /c/auth/challenge", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"detail":"key_id: give key_id or agent_id","code":"validation_failed","request_id":"r","errors":[{"field":"key_id","message":"give key_id or agent_id"}]}`))
	})
	mux.HandleFunc("POST /d/auth/challenge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`not json`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := context.Background()

	_, err := (&agentlogin.Client{BaseURL: srv.URL + "/a"}).Challenge(ctx, tenantID, "K", "")
	var e *agentlogin.APIError
	if !errors.As(err, &e) || e.Status != 429 || e.Code != "rate_limited" || e.Detail != "slow down" || e.RetryAfter != 17*time.Second || e.RequestID != "req-429" {
		t.Fatalf("429: %#v", err)
	}
	_, err = (&agentlogin.Client{BaseURL: srv.URL + "/b"}).Challenge(ctx, tenantID, "K", "")
	if !errors.As(err, &e) || e.Status != 502 || e.Code != "http_502" || e.Detail != "Bad Gateway" || e.RequestID != "req-502" {
		t.Fatalf("502: %#v", err)
	}
	_, err = (&agentlogin.Client{BaseURL: srv.URL + "/c"}).Challenge(ctx, tenantID, "", "")
	if !errors.As(err, &e) || e.Status != 422 || len(e.Errors) != 1 || e.Errors[0].Field != "key_id" {
		t.Fatalf("422: %#v", err)
	}
	_, err = (&agentlogin.Client{BaseURL: srv.URL + "/d"}).Challenge(ctx, tenantID, "K", "")
	if err == nil || errors.As(err, &e) {
		t.Fatalf("non-JSON success: %v", err)
	}
	_, err = (&agentlogin.Client{BaseURL: "http://127.0.0.1:1"}).Challenge(ctx, tenantID, "K", "")
	if err == nil {
		t.Fatal("no server, no error")
	}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSigner(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)

	block, err := ssh.MarshalPrivateKey(priv, "agent")
	if err != nil {
		t.Fatal(err)
	}
	plain := writeFile(t, "id_ed25519", pem.EncodeToMemory(block))
	s, err := agentlogin.LoadSigner(plain, nil)
	if err != nil || ssh.FingerprintSHA256(s.PublicKey()) != ssh.FingerprintSHA256(sshPub) {
		t.Fatalf("plain key: %v", err)
	}

	block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "agent", []byte("sesame"))
	if err != nil {
		t.Fatal(err)
	}
	enc := writeFile(t, "id_enc", pem.EncodeToMemory(block))
	if _, err := agentlogin.LoadSigner(enc, nil); !errors.Is(err, agentlogin.ErrPassphraseNeeded) {
		t.Fatalf("encrypted key without passphrase: %v", err)
	}
	if _, err := agentlogin.LoadSigner(enc, []byte("wrong")); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	if s, err := agentlogin.LoadSigner(enc, []byte("sesame")); err != nil || ssh.FingerprintSHA256(s.PublicKey()) != ssh.FingerprintSHA256(sshPub) {
		t.Fatalf("encrypted key with passphrase: %v", err)
	}
	if _, err := agentlogin.LoadRSAKey(plain, nil); err == nil {
		t.Fatal("an ed25519 key loaded as RSA")
	}

	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaPriv)
	pkcs8 := writeFile(t, "rsa.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	k, err := agentlogin.LoadRSAKey(pkcs8, nil)
	if err != nil || !k.Equal(rsaPriv) {
		t.Fatalf("PKCS#8 RSA: %v", err)
	}
	if s, err := agentlogin.LoadSigner(pkcs8, nil); err != nil || s.PublicKey().Type() != ssh.KeyAlgoRSA {
		t.Fatalf("PKCS#8 RSA signer: %v", err)
	}

	if _, err := agentlogin.LoadSigner(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Fatal("a missing file loaded")
	}
	if _, err := agentlogin.LoadSigner(writeFile(t, "pub", ssh.MarshalAuthorizedKey(sshPub)), nil); err == nil {
		t.Fatal("a public key loaded as a private key")
	}
}
