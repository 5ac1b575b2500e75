package natsapi_test

import (
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/agentlogin"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

func TestLoginWithEveryKeyType(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	agentID := f.agent(tenant)
	for _, kind := range []string{testkeys.Ed25519, testkeys.P256, testkeys.P384, testkeys.P521, testkeys.RSA2048, testkeys.RSA3072} {
		k := testkeys.New(t, kind)
		key := f.agentKey(t, tenant, agentID, k)
		f.clock.Advance(time.Second)
		v, err := f.login(t, "192.0.2.10", tenant, strings.ToLower(key.ID), "", k)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if v.TenantID != tenant || v.AgentID != agentID || v.KeyID != key.ID {
			t.Fatalf("%s: verified %+v", kind, v)
		}
		var got sshkeyv1.KeyResponse
		f.call(t, member(tenant, plans.Pro), sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: key.ID}, &got)
		if got.Key.LastUsed == nil || !got.Key.LastUsed.Equal(f.clock.Now()) || !got.Key.UpdatedAt.Equal(key.UpdatedAt) {
			t.Fatalf("%s: last_used %v, updated_at %v", kind, got.Key.LastUsed, got.Key.UpdatedAt)
		}
		if kind == testkeys.RSA2048 {
			// The original clients' raw PKCS#1 v1.5 SHA-256 form.
			ch := f.challenge(t, "192.0.2.10", sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
			resp, err := agentlogin.SignLegacyRSA(k.Private.(*rsa.PrivateKey), ch.Challenge)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.verify(from("192.0.2.10"), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: strings.TrimRight(resp, "=")}); err != nil {
				t.Fatalf("legacy RSA: %v", err)
			}
		}
	}
}

// A well-formed challenge request always gets a challenge; it is stored only when an
// active agent key could answer it.
func TestChallengeNoEnumerationNoStorage(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	agentID := f.agent(tenant)
	good := f.agentKey(t, tenant, agentID, testkeys.New(t, testkeys.Ed25519))
	access := f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID, KeyType: sshkeyv1.TypeAccess})
	revoked := f.agentKey(t, tenant, agentID, testkeys.New(t, testkeys.Ed25519))
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: revoked.ID}, nil)
	unknownTenant := newTenant()

	for name, c := range map[string]struct {
		body   sshkeyv1.ChallengeBody
		stored bool
	}{
		"good key":             {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: good.ID}, true},
		"good key, lower case": {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: strings.ToLower(good.ID)}, true},
		"good agent":           {sshkeyv1.ChallengeBody{TenantID: tenant, AgentID: agentID}, true},
		"key and its agent":    {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: good.ID, AgentID: agentID}, true},
		"key, another agent":   {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: good.ID, AgentID: newULID()}, false},
		"unknown tenant":       {sshkeyv1.ChallengeBody{TenantID: unknownTenant, KeyID: good.ID}, false},
		"unknown key":          {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: newULID()}, false},
		"unknown agent":        {sshkeyv1.ChallengeBody{TenantID: tenant, AgentID: newULID()}, false},
		"access key":           {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: access.ID}, false},
		"revoked key":          {sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: revoked.ID}, false},
	} {
		before := len(f.items(t, c.body.TenantID, "CH#"))
		ch := f.challenge(t, "192.0.2.20", c.body)
		wantKey, wantAgent := strings.ToUpper(c.body.KeyID), strings.ToUpper(c.body.AgentID)
		if len(ch.Challenge) != 64 || strings.ToLower(ch.Challenge) != ch.Challenge || strings.Trim(ch.Challenge, "0123456789abcdef") != "" ||
			!ch.ExpiresAt.Equal(f.clock.Now().Add(5*time.Minute)) || ch.TenantID != c.body.TenantID ||
			(wantKey == "") != (ch.KeyID == nil) || (ch.KeyID != nil && *ch.KeyID != wantKey) ||
			(wantAgent == "") != (ch.AgentID == nil) || (ch.AgentID != nil && *ch.AgentID != wantAgent) {
			t.Fatalf("%s: challenge %+v", name, ch)
		}
		after := f.items(t, c.body.TenantID, "CH#")
		if stored := len(after) == before+1; stored != c.stored || (!c.stored && len(after) != before) {
			t.Fatalf("%s: %d challenges stored before, %d after; want stored=%v", name, before, len(after), c.stored)
		}
	}
	if items := f.items(t, unknownTenant, ""); len(items) != 0 {
		t.Fatalf("the unknown tenant has items: %v", items)
	}
	// Shapes are checked: 422, never a challenge.
	for name, b := range map[string]sshkeyv1.ChallengeBody{
		"no ids":          {TenantID: tenant},
		"no tenant":       {KeyID: good.ID},
		"upper tenant":    {TenantID: strings.ToUpper(tenant), KeyID: good.ID},
		"malformed key":   {TenantID: tenant, KeyID: "abc"},
		"malformed agent": {TenantID: tenant, AgentID: "abc"},
	} {
		if err := f.client.Call(from("192.0.2.20"), sshkeyv1.Subject(sshkeyv1.OpChallenge), sshkeyv1.ChallengeRequest{Login: b}, nil); !isStatus(err, 422) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// A challenge is consumed by the first attempt, right or wrong.
func TestReplay(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	agentID := f.agent(tenant)
	k := testkeys.New(t, testkeys.Ed25519)
	key := f.agentKey(t, tenant, agentID, k)
	ip := "192.0.2.30"

	ch := f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	body := sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: sign(t, testkeys.New(t, testkeys.Ed25519), ch.Challenge)}
	_, err := f.verify(from(ip), body)
	isInvalidSignature(t, err, "wrong signature")
	body.Response = sign(t, k, ch.Challenge)
	_, err = f.verify(from(ip), body)
	isInvalidSignature(t, err, "right signature after a failed attempt")

	// Malformed base64 consumes it too.
	ch = f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	_, err = f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: "%%%"})
	isInvalidSignature(t, err, "malformed response")
	_, err = f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: sign(t, k, ch.Challenge)})
	isInvalidSignature(t, err, "right signature after a malformed attempt")

	// A success consumes it.
	ch = f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	body = sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: sign(t, k, ch.Challenge)}
	if _, err := f.verify(from(ip), body); err != nil {
		t.Fatal(err)
	}
	_, err = f.verify(from(ip), body)
	isInvalidSignature(t, err, "replayed success")
	// A challenge nobody issued, and one in upper case.
	_, err = f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: strings.Repeat("ab", 32), Response: sign(t, k, strings.Repeat("ab", 32))})
	isInvalidSignature(t, err, "unknown challenge")
	ch = f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	up := strings.ToUpper(ch.Challenge)
	_, err = f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: up, Response: sign(t, k, up)})
	isInvalidSignature(t, err, "upper-case challenge")
}

func TestExpiredChallenge(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	agentID := f.agent(tenant)
	k := testkeys.New(t, testkeys.Ed25519)
	key := f.agentKey(t, tenant, agentID, k)
	ch := f.challenge(t, "192.0.2.40", sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	f.clock.Advance(sshkeyv1.ChallengeTTL)
	_, err := f.verify(from("192.0.2.40"), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: sign(t, k, ch.Challenge)})
	isInvalidSignature(t, err, "expired challenge")

	// Just inside the window it works.
	ch = f.challenge(t, "192.0.2.40", sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: key.ID})
	f.clock.Advance(sshkeyv1.ChallengeTTL - time.Millisecond)
	if _, err := f.verify(from("192.0.2.40"), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: key.ID, Challenge: ch.Challenge, Response: sign(t, k, ch.Challenge)}); err != nil {
		t.Fatal(err)
	}
}

// A challenge is bound to the tenant and to the key or agent it was issued for.
func TestChallengeBinding(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenantX, tenantY := newTenant(), newTenant()
	agentX := f.agent(tenantX)
	agentY := f.agent(tenantY)
	kA, kB := testkeys.New(t, testkeys.Ed25519), testkeys.New(t, testkeys.Ed25519)
	keyA := f.agentKey(t, tenantX, agentX, kA)
	keyB := f.agentKey(t, tenantX, agentX, kB)
	kY := testkeys.New(t, testkeys.Ed25519)
	keyY := f.agentKey(t, tenantY, agentY, kY)
	// The same public key registered in both tenants.
	keyAinY := f.agentKey(t, tenantY, agentY, kA)
	ip := "192.0.2.50"

	try := func(what string, issue sshkeyv1.ChallengeBody, answer sshkeyv1.VerifyBody, k testkeys.Key) {
		t.Helper()
		ch := f.challenge(t, ip, issue)
		answer.Challenge, answer.Response = ch.Challenge, sign(t, k, ch.Challenge)
		_, err := f.verify(from(ip), answer)
		isInvalidSignature(t, err, what)
	}
	try("key A's challenge answered by key B", sshkeyv1.ChallengeBody{TenantID: tenantX, KeyID: keyA.ID},
		sshkeyv1.VerifyBody{TenantID: tenantX, KeyID: keyB.ID}, kB)
	try("key A's challenge, key A named, key B signs", sshkeyv1.ChallengeBody{TenantID: tenantX, KeyID: keyA.ID},
		sshkeyv1.VerifyBody{TenantID: tenantX, KeyID: keyA.ID}, kB)
	try("key challenge answered as the agent", sshkeyv1.ChallengeBody{TenantID: tenantX, KeyID: keyA.ID},
		sshkeyv1.VerifyBody{TenantID: tenantX, AgentID: agentX}, kA)
	try("agent challenge answered as a key", sshkeyv1.ChallengeBody{TenantID: tenantX, AgentID: agentX},
		sshkeyv1.VerifyBody{TenantID: tenantX, KeyID: keyA.ID}, kA)
	try("tenant X's challenge used for tenant Y", sshkeyv1.ChallengeBody{TenantID: tenantX, KeyID: keyA.ID},
		sshkeyv1.VerifyBody{TenantID: tenantY, KeyID: keyAinY.ID}, kA)
	try("tenant X's key id in tenant Y", sshkeyv1.ChallengeBody{TenantID: tenantY, KeyID: keyA.ID},
		sshkeyv1.VerifyBody{TenantID: tenantY, KeyID: keyA.ID}, kA)
	try("tenant Y's key in tenant X", sshkeyv1.ChallengeBody{TenantID: tenantX, KeyID: keyY.ID},
		sshkeyv1.VerifyBody{TenantID: tenantX, KeyID: keyY.ID}, kY)
	try("agent Y's key for agent X", sshkeyv1.ChallengeBody{TenantID: tenantX, AgentID: agentX},
		sshkeyv1.VerifyBody{TenantID: tenantX, AgentID: agentX}, kY)

	// The matching answers work.
	for _, c := range []struct {
		tenant, key string
		k           testkeys.Key
	}{{tenantX, keyA.ID, kA}, {tenantX, keyB.ID, kB}, {tenantY, keyAinY.ID, kA}} {
		if v, err := f.login(t, ip, c.tenant, c.key, "", c.k); err != nil || v.KeyID != c.key || v.TenantID != c.tenant {
			t.Fatalf("%s: %+v %v", c.key, v, err)
		}
	}
}

func TestOnlyActiveAgentKeysLogIn(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	agentID := f.agent(tenant)
	ip := "192.0.2.60"
	mk := func(body sshkeyv1.CreateBody) (sshkeyv1.Key, testkeys.Key) {
		k := testkeys.New(t, testkeys.Ed25519)
		body.PublicKey = k.Line
		return f.create(t, ctx, body), k
	}
	access, kAccess := mk(sshkeyv1.CreateBody{AgentID: agentID, KeyType: sshkeyv1.TypeAccess})
	deploy, kDeploy := mk(sshkeyv1.CreateBody{AgentID: agentID, KeyType: sshkeyv1.TypeDeployment})
	unbound, kUnbound := mk(sshkeyv1.CreateBody{})
	revoked, kRevoked := mk(sshkeyv1.CreateBody{AgentID: agentID})
	deleted, kDeleted := mk(sshkeyv1.CreateBody{AgentID: agentID})
	good, kGood := mk(sshkeyv1.CreateBody{AgentID: agentID})

	// Challenges taken while the keys were good, answered after the change.
	chRevoked := f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: revoked.ID})
	chDeleted := f.challenge(t, ip, sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: deleted.ID})
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: revoked.ID}, nil)
	f.call(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: deleted.ID}, nil)
	_, err := f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: revoked.ID, Challenge: chRevoked.Challenge, Response: sign(t, kRevoked, chRevoked.Challenge)})
	isInvalidSignature(t, err, "revoked after the challenge")
	_, err = f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: deleted.ID, Challenge: chDeleted.Challenge, Response: sign(t, kDeleted, chDeleted.Challenge)})
	isInvalidSignature(t, err, "deleted after the challenge")

	for name, c := range map[string]struct {
		id string
		k  testkeys.Key
	}{"access": {access.ID, kAccess}, "deployment": {deploy.ID, kDeploy}, "unbound": {unbound.ID, kUnbound}, "revoked": {revoked.ID, kRevoked}, "deleted": {deleted.ID, kDeleted}} {
		_, err := f.login(t, ip, tenant, c.id, "", c.k)
		isInvalidSignature(t, err, name)
		_, err = f.login(t, ip, tenant, "", agentID, c.k)
		isInvalidSignature(t, err, name+" by agent")
	}
	if _, err := f.login(t, ip, tenant, good.ID, agentID, kGood); err != nil {
		t.Fatal(err)
	}
	// The agent is gone (its record deleted): no login; its service down: 503.
	f.agents.remove(tenant, agentID)
	_, err = f.login(t, ip, tenant, good.ID, "", kGood)
	isInvalidSignature(t, err, "agent gone")
	f.agents.add(tenant, agentID)
	f.agents.down.Store(true)
	_, err = f.login(t, ip, tenant, good.ID, "", kGood)
	if !isStatus(err, http.StatusServiceUnavailable) {
		t.Fatalf("agent service down: %v", err)
	}
}

// With agent_id only, any active agent key of that agent may answer; the reply names it.
func TestAgentOnlyLogin(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	agentID, otherAgent := f.agent(tenant), f.agent(tenant)
	ip := "192.0.2.70"
	kEd, kP256, kRSA, kRevoked, kOther := testkeys.New(t, testkeys.Ed25519), testkeys.New(t, testkeys.P256), testkeys.New(t, testkeys.RSA2048), testkeys.New(t, testkeys.Ed25519), testkeys.New(t, testkeys.Ed25519)
	ed := f.agentKey(t, tenant, agentID, kEd)
	p256 := f.agentKey(t, tenant, agentID, kP256)
	rsaKey := f.agentKey(t, tenant, agentID, kRSA)
	revoked := f.agentKey(t, tenant, agentID, kRevoked)
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: revoked.ID}, nil)
	f.agentKey(t, tenant, otherAgent, kOther)

	for _, c := range []struct {
		k  testkeys.Key
		id string
	}{{kP256, p256.ID}, {kEd, ed.ID}, {kRSA, rsaKey.ID}} {
		v, err := f.login(t, ip, tenant, "", strings.ToLower(agentID), c.k)
		if err != nil || v.KeyID != c.id || v.AgentID != agentID {
			t.Fatalf("%s: %+v %v", c.id, v, err)
		}
	}
	_, err := f.login(t, ip, tenant, "", agentID, kRevoked)
	isInvalidSignature(t, err, "revoked key of the agent")
	_, err = f.login(t, ip, tenant, "", agentID, kOther)
	isInvalidSignature(t, err, "another agent's key")
}

func TestVerifyShapes(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ok := sshkeyv1.VerifyBody{TenantID: tenant, KeyID: newULID(), Challenge: strings.Repeat("a", 64), Response: "QQ=="}
	for name, mut := range map[string]func(b *sshkeyv1.VerifyBody){
		"no tenant":       func(b *sshkeyv1.VerifyBody) { b.TenantID = "" },
		"bad tenant":      func(b *sshkeyv1.VerifyBody) { b.TenantID = "acme" },
		"no ids":          func(b *sshkeyv1.VerifyBody) { b.KeyID = "" },
		"bad key id":      func(b *sshkeyv1.VerifyBody) { b.KeyID = "k-1" },
		"no challenge":    func(b *sshkeyv1.VerifyBody) { b.Challenge = "" },
		"short challenge": func(b *sshkeyv1.VerifyBody) { b.Challenge = "abc" },
		"no response":     func(b *sshkeyv1.VerifyBody) { b.Response = "" },
		"huge response":   func(b *sshkeyv1.VerifyBody) { b.Response = strings.Repeat("A", sshkeyv1.MaxResponseBytes+1) },
	} {
		b := ok
		mut(&b)
		if _, err := f.verify(from("192.0.2.80"), b); !isStatus(err, 422) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	_, err := f.verify(from("192.0.2.80"), ok)
	isInvalidSignature(t, err, "well-formed, nothing behind it")
	b := ok
	b.Challenge = strings.Repeat("é", 32)
	_, err = f.verify(from("192.0.2.80"), b)
	isInvalidSignature(t, err, "non-hex challenge")
}

// Limits per client address and per (key, address), each answered with the seconds to
// the end of the window; never per key across addresses.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	agentID := f.agent(tenant)
	kA := testkeys.New(t, testkeys.Ed25519)
	keyA := f.agentKey(t, tenant, agentID, kA)
	keyB := f.agentKey(t, tenant, agentID, testkeys.New(t, testkeys.Ed25519))
	limits := struct{ challenges, verifies, perKey int }{30, 30, 10}

	limited := func(err error, what string) {
		t.Helper()
		e, ok := natsrpc.AsError(err)
		if !ok || e.Status != http.StatusTooManyRequests || e.Code != natsrpc.CodeRateLimited || e.RetryAfter != 45 {
			t.Fatalf("%s: %v (retry after %v), want 429 after 45 s", what, err, e)
		}
	}
	challenge := func(ip string) error {
		return f.client.Call(from(ip), sshkeyv1.Subject(sshkeyv1.OpChallenge), sshkeyv1.ChallengeRequest{Login: sshkeyv1.ChallengeBody{TenantID: tenant, KeyID: keyA.ID}}, nil)
	}
	verify := func(ip, keyID string) error {
		_, err := f.verify(from(ip), sshkeyv1.VerifyBody{TenantID: tenant, KeyID: keyID, Challenge: strings.Repeat("0", 64), Response: "QQ=="})
		return err
	}

	// Challenges per address.
	for i := range limits.challenges {
		if err := challenge("203.0.113.1"); err != nil {
			t.Fatalf("challenge %d: %v", i, err)
		}
	}
	limited(challenge("203.0.113.1"), "challenge over the limit")
	if err := challenge("203.0.113.2"); err != nil {
		t.Fatalf("another address: %v", err)
	}

	// Verifies per (key, address): key A from one address, then key B from there and
	// key A from elsewhere still get through.
	for range limits.perKey {
		isInvalidSignature(t, verify("203.0.113.3", keyA.ID), "verify under the limit")
	}
	limited(verify("203.0.113.3", keyA.ID), "verify of one key over the limit")
	isInvalidSignature(t, verify("203.0.113.3", keyB.ID), "another key, same address")
	isInvalidSignature(t, verify("203.0.113.4", keyA.ID), "same key, another address")
	// The key's owner still logs in from its own address.
	if _, err := f.login(t, "203.0.113.5", tenant, keyA.ID, "", kA); err != nil {
		t.Fatalf("login from the owner's address while an outsider is limited: %v", err)
	}

	// Verifies per address, over many keys.
	for i := range limits.verifies {
		isInvalidSignature(t, verify("203.0.113.6", newULID()), "verify "+string(rune('a'+i%26)))
	}
	limited(verify("203.0.113.6", newULID()), "verifies of one address over the limit")

	// The next window starts afresh.
	f.clock.Advance(45 * time.Second)
	if err := challenge("203.0.113.1"); err != nil {
		t.Fatalf("next window: %v", err)
	}
	isInvalidSignature(t, verify("203.0.113.3", keyA.ID), "next window")
}
