package httpapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// sign is the Go snippet of the auth tag's description (loginflow.md), verbatim: the
// tests log in with it, so the documented example is known to work.
func sign(keyFile, challenge string) (string, error) {
	pem, err := os.ReadFile(keyFile) // the private key, OpenSSH or PEM format
	if err != nil {
		return "", err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return "", err
	}
	data := []byte(challenge) // the 64 characters, as they came
	var sig *ssh.Signature
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		// Plain Sign would pick SHA-1 ("ssh-rsa"), which is refused: ask for SHA-256.
		sig, err = signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA256)
	} else {
		sig, err = signer.Sign(rand.Reader, data) // ed25519, ECDSA
	}
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ssh.Marshal(sig)), nil
}

// TestLoginFlowSnippetIsDocumented: the function above is the one in the description.
func TestLoginFlowSnippetIsDocumented(t *testing.T) {
	src, err := os.ReadFile("login_test.go")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(src), "func sign(")
	end := strings.Index(string(src)[start:], "\n}\n") + start + 3
	if start < 0 || !strings.Contains(loginFlow, string(src)[start:end]) {
		t.Fatalf("loginflow.md does not contain the tested sign function verbatim:\n%s", string(src)[start:end])
	}
}

// writeKey stores a private key as a file, OpenSSH format, as an agent would keep it.
func writeKey(t *testing.T, priv any) (string, string) {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "agent_key")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return file, string(ssh.MarshalAuthorizedKey(s.PublicKey()))
}

// registered creates an agent with the key in a fresh tenant and returns the tenant, the
// agent, its key and the key file.
func (e *env) registered(t *testing.T, priv any) (tenantID, agentID, keyID, file string) {
	t.Helper()
	tenantID, apiKeyValue := e.seedTenant("owen")
	file, pub := writeKey(t, priv)
	r := e.do("POST", "/api/v1/agents", map[string]any{"name": "bot", "public_key": pub}, apiKey(apiKeyValue))
	e.expect(r, 201, "")
	m := r.json(t)
	return tenantID, m["agent"].(map[string]any)["id"].(string), m["key"].(map[string]any)["id"].(string), file
}

func (e *env) challenge(t *testing.T, body any, headers map[string]string) string {
	t.Helper()
	r := e.do("POST", "/api/v1/auth/challenge", body, headers)
	e.expect(r, 200, "")
	c, _ := r.json(t)["challenge"].(string)
	if len(c) != 64 {
		t.Fatalf("challenge = %s", r.body)
	}
	return c
}

func TestAgentLogin(t *testing.T) {
	e := newEnv(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, priv := range map[string]any{"ed25519": edKey, "rsa": rsaKey} {
		t.Run(name, func(t *testing.T) {
			tenantID, agentID, keyID, file := e.registered(t, priv)

			// By agent: the reply names the agent; the service saw the caller's address.
			r := e.do("POST", "/api/v1/auth/challenge", map[string]any{"tenant_id": tenantID, "agent_id": strings.ToLower(agentID)}, nil)
			e.expect(r, 200, "")
			ch := r.json(t)
			if ch["tenant_id"] != tenantID || ch["agent_id"] != agentID || ch["key_id"] != nil || ch["expires_at"] == nil {
				t.Fatalf("challenge = %s", r.body)
			}
			if id := e.fleet.identity(sshkeyv1.OpChallenge); id.ClientIP != "0.0.0.0" || id.TenantID != "" || id.Kind != "" ||
				id.RequestID != r.header.Get("X-Request-Id") {
				t.Fatalf("challenge identity = %+v", id)
			}
			challenge := ch["challenge"].(string)
			response, err := sign(file, challenge)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r = e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID,
				"challenge": challenge, "response": response}, nil)
			e.expect(r, 200, "")
			var login AgentLogin
			if err := json.Unmarshal(r.body, &login); err != nil {
				t.Fatal(err)
			}
			if !login.Valid || login.TenantID != tenantID || login.AgentID != agentID || login.KeyID != keyID || login.Token == "" {
				t.Fatalf("verify = %s", r.body)
			}
			if d := login.ExpiresAt.Sub(start); d < 59*time.Minute || d > 61*time.Minute {
				t.Fatalf("expires_at %s is not an hour away", login.ExpiresAt)
			}
			if id := e.fleet.identity(sshkeyv1.OpVerify); id.ClientIP != "0.0.0.0" {
				t.Fatalf("verify identity = %+v", id)
			}

			// The token authenticates as the agent.
			agent := bearer(login.Token)
			r = e.do("GET", "/api/v1/me", nil, agent)
			e.expect(r, 200, "")
			if me := r.json(t); me["kind"] != "agent" || me["agent_id"] != agentID || me["key_id"] != keyID || me["tenant_id"] != tenantID {
				t.Fatalf("me = %s", r.body)
			}
			e.expect(e.do("GET", "/api/v1/agents/"+agentID, nil, agent), 200, "")

			// By key, with the tenant in the header (padding stripped: optional).
			challenge = e.challenge(t, map[string]any{"key_id": keyID}, map[string]string{"X-Tenant-Id": tenantID})
			response, err = sign(file, challenge)
			if err != nil {
				t.Fatal(err)
			}
			r = e.do("POST", "/api/v1/auth/verify", map[string]any{"key_id": keyID, "challenge": challenge,
				"response": strings.TrimRight(response, "=")}, map[string]string{"X-Tenant-Id": tenantID})
			e.expect(r, 200, "")
		})
	}
}

func TestAgentLoginFailures(t *testing.T) {
	e := newEnv(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tenantID, agentID, _, file := e.registered(t, priv)
	verify := func(challenge, response string) resp {
		return e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID,
			"challenge": challenge, "response": response}, nil)
	}

	// A wrong signature: 401 invalid_signature, and the challenge is used up.
	challenge := e.challenge(t, map[string]any{"tenant_id": tenantID, "agent_id": agentID}, nil)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherFile, _ := writeKey(t, other)
	wrong, err := sign(otherFile, challenge)
	if err != nil {
		t.Fatal(err)
	}
	r := verify(challenge, wrong)
	e.expect(r, 401, "invalid_signature")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	right, _ := sign(file, challenge)
	e.expect(verify(challenge, right), 401, "invalid_signature")

	// A suspended tenant's agent gets the same answer, and no token.
	challenge = e.challenge(t, map[string]any{"tenant_id": tenantID, "agent_id": agentID}, nil)
	right, _ = sign(file, challenge)
	e.setStatus(tenantID, tenantv1.StatusSuspended)
	r = verify(challenge, right)
	e.expect(r, 401, "invalid_signature")
	if strings.Contains(string(r.body), "token") && strings.Contains(string(r.body), "eyJ") {
		t.Fatalf("a token for a suspended tenant: %s", r.body)
	}
	e.setStatus(tenantID, tenantv1.StatusActive)

	// Shapes: malformed JSON 400; missing or ill-typed fields 422; not JSON 415.
	e.expect(e.do("POST", "/api/v1/auth/verify", `{"tenant_id":`, nil), 400, "invalid_json")
	e.expect(e.do("POST", "/api/v1/auth/challenge", `[1]`, nil), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID}, nil), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID, "challenge": 7, "response": "x"}, nil),
		422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/challenge", map[string]any{"tenant_id": tenantID}, nil), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/challenge", map[string]any{"agent_id": agentID}, nil), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/challenge", map[string]any{"tenant_id": "ACME", "agent_id": agentID}, nil), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/challenge", map[string]any{"tenant_id": tenantID, "key_id": "k1"}, nil), 422, "validation_failed")
	r = e.do("POST", "/api/v1/auth/challenge", "tenant_id="+tenantID, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	e.expect(r, 415, "unsupported_media_type")

	// Header and body: the header fills a missing tenant; both and different is 422; a
	// malformed header is 400 as everywhere.
	other2, _ := e.seedTenant("olga")
	body := map[string]any{"tenant_id": tenantID, "agent_id": agentID}
	e.expect(e.do("POST", "/api/v1/auth/challenge", body, map[string]string{"X-Tenant-Id": other2}), 422, "validation_failed")
	e.expect(e.do("POST", "/api/v1/auth/challenge", body, map[string]string{"X-Tenant-Id": tenantID}), 200, "")
	e.expect(e.do("POST", "/api/v1/auth/challenge", body, map[string]string{"X-Tenant-Id": "nope"}), 400, "invalid_tenant_id")
	e.expect(e.do("POST", "/api/v1/auth/verify", map[string]any{"agent_id": agentID, "challenge": strings.Repeat("a", 64), "response": "eA=="},
		map[string]string{"X-Tenant-Id": other2}), 401, "invalid_signature")

	// Unknown tenants still get a challenge (no enumeration).
	e.challenge(t, map[string]any{"tenant_id": "99999999-9999-4999-8999-999999999999", "agent_id": agentID}, nil)
}

// TestLoginIgnoresCredentials: the login routes read no credentials, so a bad or
// ambiguous one sent along does not fail them.
func TestLoginIgnoresCredentials(t *testing.T) {
	e := newEnv(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tenantID, agentID, _, file := e.registered(t, priv)
	for name, h := range map[string]map[string]string{
		"garbage bearer":    bearer("not-a-jwt"),
		"not bearer":        {"Authorization": "Basic Zm9vOmJhcg=="},
		"expired agent":     bearer(signHS256(t, testSecret, map[string]any{"sub": "agent:" + agentID, "exp": time.Now().Add(-time.Hour).Unix()})),
		"token and api key": mergeH(bearer("x"), apiKey("art_nope")),
	} {
		t.Run(name, func(t *testing.T) {
			challenge := e.challenge(t, map[string]any{"tenant_id": tenantID, "agent_id": agentID}, h)
			response, _ := sign(file, challenge)
			r := e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID,
				"challenge": challenge, "response": response}, h)
			e.expect(r, 200, "")
		})
	}
}

func TestLoginRateLimitRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.fleet.setRetryAfter(17)
	body := map[string]any{"tenant_id": "99999999-9999-4999-8999-999999999999", "agent_id": "01JBAGENT00000000000000001"}
	r := e.do("POST", "/api/v1/auth/challenge", body, nil)
	e.expect(r, 429, "rate_limited")
	if got := r.header.Get("Retry-After"); got != "17" {
		t.Fatalf("Retry-After = %q, want 17", got)
	}
	r = e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": body["tenant_id"], "agent_id": body["agent_id"],
		"challenge": strings.Repeat("0", 64), "response": "eA=="}, nil)
	e.expect(r, 429, "rate_limited")
	if got := r.header.Get("Retry-After"); got != "17" {
		t.Fatalf("Retry-After = %q, want 17", got)
	}
}

// TestLoginClientAddress: behind a trusted proxy the service sees the client's address
// (the rightmost X-Forwarded-For entry no trusted proxy vouches for).
func TestLoginClientAddress(t *testing.T) {
	e := newEnv(t, withTrustedProxies("0.0.0.0", "10.0.0.0/8"))
	body := map[string]any{"tenant_id": "99999999-9999-4999-8999-999999999999", "agent_id": "01JBAGENT00000000000000001"}
	e.challenge(t, body, map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.1.2.3"})
	if ip := e.fleet.identity(sshkeyv1.OpChallenge).ClientIP; ip != "203.0.113.7" {
		t.Fatalf("client address = %q, want 203.0.113.7", ip)
	}
}

// TestLoginNeverLogsSecrets: challenges, signatures, tokens and keys stay out of the logs.
func TestLoginNeverLogsSecrets(t *testing.T) {
	e := newEnv(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	tenantID, agentID, _, file := e.registered(t, priv)
	challenge := e.challenge(t, map[string]any{"tenant_id": tenantID, "agent_id": agentID}, nil)
	response, _ := sign(file, challenge)
	r := e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID,
		"challenge": challenge, "response": response}, nil)
	e.expect(r, 200, "")
	token := r.json(t)["token"].(string)
	e.expect(e.do("POST", "/api/v1/auth/verify", map[string]any{"tenant_id": tenantID, "agent_id": agentID,
		"challenge": challenge, "response": response}, nil), 401, "invalid_signature")

	logs := e.logs.String()
	for what, s := range map[string]string{"challenge": challenge, "response": response[:40], "token": token[:40]} {
		if strings.Contains(logs, s) {
			t.Errorf("the %s was logged", what)
		}
	}
	lines := e.logs.accessLines(t)
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(fmt.Sprint(l["route"]), "/api/v1/auth/") {
			n++
		}
	}
	if n < 3 {
		t.Fatalf("%d access lines for the login routes, want 3", n)
	}
}
