package sshkey_test

// Fuzz targets (Go native fuzzing; seed corpus in testdata/fuzz/<target>/). Run one at a
// time, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzParsePublicKey$' -fuzztime 10s ./internal/sshkey/
//	go test -run '^$' -fuzz '^FuzzVerifySignature$' -fuzztime 10s ./internal/sshkey/
//	go test -run '^$' -fuzz '^FuzzVerifyRequest$' -fuzztime 10s ./internal/sshkey/
//
// Each checks that nothing panics and that every failure is one of the documented
// client errors (422 on public_key, 422 private_key_rejected, 400/422 shapes, 401
// invalid_signature), never an unclassified error (500).

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/repo"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

var accepted = []string{sshkey.AlgoEd25519, sshkey.AlgoECDSA256, sshkey.AlgoECDSA384, sshkey.AlgoECDSA521, sshkey.AlgoRSA}

// FuzzParsePublicKey fuzzes what create runs on public_key: the contract's shape check,
// then ParsePublicKey.
func FuzzParsePublicKey(f *testing.F) {
	for _, kind := range []string{testkeys.Ed25519, testkeys.P256, testkeys.RSA2048} {
		k := testkeys.New(f, kind)
		f.Add(k.Line)
		// Private keys are made here rather than committed with the corpus.
		for _, text := range testkeys.PrivateForms(f, k) {
			f.Add(text)
		}
	}
	f.Add(testkeys.SKEd25519Line(f))
	f.Add(testkeys.CertLine(f))
	f.Add("")

	f.Fuzz(func(t *testing.T, text string) {
		body := sshkeyv1.CreateBody{Name: "k", PublicKey: text}
		if err := body.Validate(); err != nil {
			var e *natsrpc.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
				t.Fatalf("Validate: %v", err)
			}
		}
		pk, err := sshkey.ParsePublicKey(text)
		if err != nil {
			// Only fixed texts come back: nothing of the input is echoed.
			var (
				ve *sshkey.ValidationError
				d  interface{ Detail() string }
			)
			switch {
			case errors.Is(err, sshkey.ErrPrivateKey) && errors.As(err, &d) && slices.Contains(sshkey.PublicKeyMessages, d.Detail()):
			case errors.As(err, &ve) && ve.Field == "public_key" && slices.Contains(sshkey.PublicKeyMessages, ve.Message):
			default:
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if strings.Contains(text, "PRIVATE KEY-----") {
			t.Fatal("a private key header was accepted as a public key")
		}
		if !slices.Contains(accepted, pk.Algorithm) || pk.Key.Type() != pk.Algorithm {
			t.Fatalf("accepted algorithm %q", pk.Algorithm)
		}
		again, err := sshkey.ParsePublicKey(pk.Authorized)
		if err != nil || again.Fingerprint != pk.Fingerprint || again.Authorized != pk.Authorized ||
			pk.Fingerprint != ssh.FingerprintSHA256(pk.Key) {
			t.Fatalf("the stored form does not parse back to the same key: %v", err)
		}
	})
}

// loginKeys are one key of each accepted algorithm.
func loginKeys(f *testing.F) []testkeys.Key {
	seed := make([]byte, ed25519.SeedSize) // deterministic, so corpus entries can target it
	return []testkeys.Key{
		testkeys.FromPrivate(f, ed25519.NewKeyFromSeed(seed)),
		testkeys.New(f, testkeys.P256), testkeys.New(f, testkeys.P384), testkeys.New(f, testkeys.P521),
		testkeys.New(f, testkeys.RSA2048),
	}
}

// FuzzVerifySignature fuzzes the signature check with random SSH signature blobs (any
// format, blob and trailing fields), random raw bytes as base64, and random text as the
// response, against real keys of every type: nothing verifies, nothing panics, every
// failure is ErrLoginFailed.
func FuzzVerifySignature(f *testing.F) {
	keys := loginKeys(f)
	mpints := ssh.Marshal(struct{ R, S *big.Int }{big.NewInt(1), new(big.Int).Lsh(big.NewInt(1), 255)})
	f.Add("ssh-ed25519", make([]byte, 64), []byte{}, []byte{})
	f.Add("ecdsa-sha2-nistp256", mpints, []byte{}, []byte("AAAA"))
	f.Add("rsa-sha2-256", make([]byte, 256), []byte{}, make([]byte, 256))
	f.Add("rsa-sha2-512", make([]byte, 255), []byte{}, make([]byte, 255))
	f.Add("ssh-rsa", make([]byte, 256), []byte{}, []byte("=="))
	f.Add("sk-ssh-ed25519@openssh.com", make([]byte, 64), []byte{1, 0, 0, 0, 9}, []byte("\x00\x00\x00\x0bssh-ed25519"))

	f.Fuzz(func(t *testing.T, format string, blob, rest, raw []byte) {
		sig := ssh.Signature{Format: format, Blob: blob, Rest: rest}
		responses := []string{
			base64.StdEncoding.EncodeToString(ssh.Marshal(&sig)),
			base64.RawStdEncoding.EncodeToString(ssh.Marshal(&sig)),
			base64.StdEncoding.EncodeToString(raw),
			string(raw),
		}
		for _, k := range keys {
			for _, resp := range responses {
				err := sshkey.VerifySignature(k.Public(), challenge, resp)
				if err == nil {
					t.Fatalf("a fuzzed response verified for %s", k.Public().Type())
				}
				if !errors.Is(err, sshkey.ErrLoginFailed) {
					t.Fatalf("unclassified error: %v", err)
				}
			}
		}
	})
}

// The fixture of FuzzVerifyRequest: fixed ids, so corpus entries can name them.
const (
	fuzzTenant       = "0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"
	fuzzAgent        = "01J000000000000000000AGENT"
	fuzzAccessKey    = "01J0000000000000000000ACC5"
	placeholderChall = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
	placeholderSign  = "SIGN"
)

var fuzzKeyIDs = []string{"01J0000000000000000000ED25", "01J00000000000000000000P25", "01J00000000000000000000P38", "01J00000000000000000000P52", "01J0000000000000000000RSA2"}

type everyAgent struct{}

func (everyAgent) Lookup(context.Context, string, string) error { return nil }

type noEvents struct{}

func (noEvents) KeyChanged(context.Context, sshkey.Key, string) {}

// FuzzVerifyRequest fuzzes the verify request path: JSON decode and shape checks as
// natsrpc does them, then Verify against a real store holding real keys. A body whose
// challenge is 64 "c" gets a freshly issued challenge for the ids it names (so fuzzed
// responses reach the signature check), and a response "SIGN" is replaced by a real
// signature of the named key. Every outcome is 400, 422, 401 or a success that the real
// signature explains.
func FuzzVerifyRequest(f *testing.F) {
	keys := loginKeys(f)
	svc, byID := fuzzService(f, keys)
	good := func(keyID, agentID, response string) []byte {
		b, _ := json.Marshal(sshkeyv1.VerifyRequest{Login: sshkeyv1.VerifyBody{
			TenantID: fuzzTenant, KeyID: keyID, AgentID: agentID, Challenge: placeholderChall, Response: response,
		}})
		return b
	}
	for _, id := range fuzzKeyIDs {
		f.Add(good(id, "", placeholderSign))
		f.Add(good(strings.ToLower(id), fuzzAgent, "AAAA"))
	}
	f.Add(good("", fuzzAgent, placeholderSign))
	f.Add(good(fuzzAccessKey, "", placeholderSign))

	f.Fuzz(func(t *testing.T, body []byte) {
		var req sshkeyv1.VerifyRequest
		if len(body) > 0 && json.Unmarshal(body, &req) != nil {
			return // 400 invalid_json
		}
		if err := req.Validate(); err != nil {
			var e *natsrpc.Error
			if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
				t.Fatalf("Validate: %v", err)
			}
			return
		}
		b := req.Login
		in := sshkey.Login{TenantID: b.TenantID, ClientIP: "192.0.2.1"}
		in.KeyID, _ = sshkeyv1.NormalizeID(b.KeyID)
		in.AgentID, _ = sshkeyv1.NormalizeID(b.AgentID)
		ctx := context.Background()
		signed := false
		if b.Challenge == placeholderChall {
			c, err := svc.Challenge(ctx, in)
			if err != nil {
				t.Fatalf("challenge: %v", err)
			}
			b.Challenge = c.Value
			if k, ok := byID[in.KeyID]; ok && b.Response == placeholderSign {
				if b.Response, err = agentlogin.Sign(k.Signer, c.Value); err != nil {
					t.Fatal(err)
				}
				signed = true
			}
		}
		v, err := svc.Verify(ctx, in, b.Challenge, b.Response)
		var ve *sshkey.ValidationError
		switch {
		case err == nil:
			if !signed || v.KeyID != in.KeyID || v.TenantID != fuzzTenant || v.AgentID != fuzzAgent {
				t.Fatalf("verified without a real signature: %+v", v)
			}
		case errors.Is(err, sshkey.ErrLoginFailed), errors.As(err, &ve):
		default:
			t.Fatalf("unclassified error: %v", err)
		}
	})
}

// fuzzService is a service on a real (embedded) store with keys under fixed ids: agent
// keys of fuzzAgent and an access key, no rate limits (one address sends everything).
func fuzzService(f *testing.F, keys []testkeys.Key) (*sshkey.Service, map[string]testkeys.Key) {
	rp := repo.New(storetest.NewTable(f, repo.Table))
	ctx := context.Background()
	byID := map[string]testkeys.Key{}
	put := func(id, keyType string, k testkeys.Key) {
		pk, err := sshkey.ParsePublicKey(k.Line)
		if err != nil {
			f.Fatal(err)
		}
		key := &sshkey.Key{
			ID: id, TenantID: fuzzTenant, Name: "k", PublicKey: pk.Authorized, KeyType: keyType, AgentID: fuzzAgent,
			Fingerprint: pk.Fingerprint, Algorithm: pk.Algorithm, Status: sshkeyv1.StatusActive,
		}
		if err := rp.CreateKey(ctx, key); err != nil {
			f.Fatal(err)
		}
		if err := rp.PutIndex(ctx, fuzzTenant, sshkey.Index{Kind: sshkey.ByAgent, Value: fuzzAgent}, id); err != nil {
			f.Fatal(err)
		}
		byID[id] = k
	}
	for i, id := range fuzzKeyIDs {
		put(id, sshkeyv1.TypeAgent, keys[i])
	}
	put(fuzzAccessKey, sshkeyv1.TypeAccess, testkeys.New(f, testkeys.Ed25519))
	return sshkey.NewService(rp, everyAgent{}, noEvents{}, sshkey.WithRateLimits(sshkey.RateLimits{})), byID
}
