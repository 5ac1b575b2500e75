// Package agentlogin is the one client implementation of agent login (SPEC §4.4): it
// loads an agent's private key, signs a challenge the way the sshkey service verifies
// it, and runs the challenge → sign → verify exchange over HTTP to obtain an agent
// token. The example program, the end-to-end tests and the CLI all use it.
//
// What is signed is the 64 ASCII characters of the challenge exactly as returned (not
// hex-decoded, no newline). The response is the standard base64 of the SSH wire
// signature (string format, string blob) that ssh.Signer produces; RSA keys sign with
// rsa-sha2-256, never the SHA-1 "ssh-rsa" format. This is not `ssh-keygen -Y sign`,
// whose SSHSIG envelope signs a hash of the message under a namespace.
package agentlogin

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// Sign signs challenge with signer and returns the login response: the standard base64
// of the SSH signature blob. RSA keys sign with rsa-sha2-256 (the signer must be an
// ssh.AlgorithmSigner, as every signer of the ssh package is).
func Sign(signer ssh.Signer, challenge string) (string, error) {
	if signer == nil {
		return "", errors.New("agentlogin: no signer")
	}
	var (
		sig *ssh.Signature
		err error
	)
	switch signer.PublicKey().Type() {
	case ssh.KeyAlgoRSA, ssh.CertAlgoRSAv01:
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return "", errors.New("agentlogin: this RSA signer cannot sign with rsa-sha2-256 (SHA-1 ssh-rsa signatures are refused)")
		}
		sig, err = as.SignWithAlgorithm(rand.Reader, []byte(challenge), ssh.KeyAlgoRSASHA256)
	default:
		sig, err = signer.Sign(rand.Reader, []byte(challenge))
	}
	if err != nil {
		return "", fmt.Errorf("agentlogin: signing the challenge: %w", err)
	}
	return base64.StdEncoding.EncodeToString(ssh.Marshal(sig)), nil
}

// SignLegacyRSA returns the original clients' response: the standard base64 of a raw
// RSASSA-PKCS1-v1_5 signature of SHA-256(challenge). The sshkey service accepts it for
// RSA keys only.
func SignLegacyRSA(key *rsa.PrivateKey, challenge string) (string, error) {
	if key == nil {
		return "", errors.New("agentlogin: no RSA key")
	}
	digest := sha256.Sum256([]byte(challenge))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("agentlogin: signing the challenge: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

// ErrPassphraseNeeded: the key file is encrypted and no passphrase was given.
var ErrPassphraseNeeded = errors.New("agentlogin: the private key is encrypted: a passphrase is needed")

// LoadSigner reads a private key file (OpenSSH, PKCS#1, PKCS#8 or SEC 1 PEM), decrypting
// it with passphrase when it is encrypted.
func LoadSigner(path string, passphrase []byte) (ssh.Signer, error) {
	raw, err := loadRaw(path, passphrase)
	if err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Errorf("agentlogin: %s: %w", path, err)
	}
	return s, nil
}

// LoadRSAKey reads an RSA private key file like LoadSigner, for SignLegacyRSA.
func LoadRSAKey(path string, passphrase []byte) (*rsa.PrivateKey, error) {
	raw, err := loadRaw(path, passphrase)
	if err != nil {
		return nil, err
	}
	k, ok := raw.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("agentlogin: %s is not an RSA private key", path)
	}
	return k, nil
}

func loadRaw(path string, passphrase []byte) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agentlogin: %w", err)
	}
	var raw any
	if len(passphrase) > 0 {
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(b, passphrase)
	} else {
		raw, err = ssh.ParseRawPrivateKey(b)
	}
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, fmt.Errorf("%w (%s)", ErrPassphraseNeeded, path)
	}
	if err != nil {
		return nil, fmt.Errorf("agentlogin: %s: %w", path, err)
	}
	return raw, nil
}

// Token is a minted agent token and whom it names.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	TenantID  string    `json:"tenant_id"`
	AgentID   string    `json:"agent_id"`
	KeyID     string    `json:"key_id"`
}

// APIError is an error reply of the API: {detail, code, request_id, errors?}, with the
// HTTP status and Retry-After. The artcafe CLI uses it for every call it makes; the JSON
// form is what its --json output prints.
type APIError struct {
	Status    int                  `json:"status"`
	Code      string               `json:"code"`
	Detail    string               `json:"detail"`
	RequestID string               `json:"request_id,omitempty"`
	Errors    []natsrpc.FieldError `json:"errors,omitempty"`
	// RetryAfter is the Retry-After of a 429 (0 when absent).
	RetryAfter time.Duration `json:"-"`
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Detail)
	if e.RequestID != "" {
		s += " (request_id " + e.RequestID + ")"
	}
	return s
}

// ParseAPIError reads an error reply. A body that is not the API's JSON (a proxy's
// page) still gives a code and a detail from the status.
func ParseAPIError(status int, h http.Header, body []byte) *APIError {
	var e APIError
	_ = json.Unmarshal(body, &e)
	e.Status = status
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(status)
	}
	if e.Detail == "" {
		e.Detail = http.StatusText(status)
	}
	if e.RequestID == "" {
		e.RequestID = h.Get("X-Request-Id")
	}
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return &e
}

// Client talks to the API. The zero HTTP means a client with a 30 s timeout.
type Client struct {
	// BaseURL is the API prefix, e.g. http://127.0.0.1:8000/api/v1.
	BaseURL string
	HTTP    *http.Client
}

// maxReply bounds the replies read.
const maxReply = 1 << 20

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Challenge asks for a challenge for keyID or agentID (either may be "").
func (c *Client) Challenge(ctx context.Context, tenantID, keyID, agentID string) (sshkeyv1.Challenge, error) {
	var out sshkeyv1.Challenge
	err := c.post(ctx, "/auth/challenge", sshkeyv1.ChallengeBody{TenantID: tenantID, KeyID: keyID, AgentID: agentID}, &out)
	if err == nil && out.Challenge == "" {
		err = errors.New("agentlogin: the challenge reply carries no challenge")
	}
	return out, err
}

// Verify sends a signed challenge and returns the agent token.
func (c *Client) Verify(ctx context.Context, tenantID, keyID, agentID, challenge, response string) (Token, error) {
	var out struct {
		Valid bool `json:"valid"`
		Token
	}
	body := sshkeyv1.VerifyBody{TenantID: tenantID, KeyID: keyID, AgentID: agentID, Challenge: challenge, Response: response}
	if err := c.post(ctx, "/auth/verify", body, &out); err != nil {
		return Token{}, err
	}
	if !out.Valid || out.Token.Token == "" {
		return Token{}, errors.New("agentlogin: the verify reply carries no token")
	}
	return out.Token, nil
}

// Login runs challenge → sign → verify for keyID or agentID (either may be "") and
// returns the agent token.
func (c *Client) Login(ctx context.Context, tenantID, keyID, agentID string, signer ssh.Signer) (Token, error) {
	return c.LoginWith(ctx, tenantID, keyID, agentID, func(challenge string) (string, error) {
		return Sign(signer, challenge)
	})
}

// LoginWith is Login with any way of answering the challenge (e.g. SignLegacyRSA).
func (c *Client) LoginWith(ctx context.Context, tenantID, keyID, agentID string, sign func(challenge string) (string, error)) (Token, error) {
	ch, err := c.Challenge(ctx, tenantID, keyID, agentID)
	if err != nil {
		return Token{}, err
	}
	resp, err := sign(ch.Challenge)
	if err != nil {
		return Token{}, err
	}
	return c.Verify(ctx, tenantID, keyID, agentID, ch.Challenge, resp)
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("agentlogin: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("agentlogin: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("agentlogin: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return fmt.Errorf("agentlogin: reading the reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return ParseAPIError(resp.StatusCode, resp.Header, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agentlogin: the reply of %s is not the expected JSON: %w", path, err)
	}
	return nil
}
