package natsapi_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/sshkey"
	"github.com/artcafe-ai/pubsub/services/sshkey/internal/testkeys"
)

func TestEveryOperation(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	agentID := f.agent(tenant)
	hints := f.hints(t)

	// check_public_key, then create an access key (no agent) and an agent key.
	access := testkeys.New(t, testkeys.Ed25519)
	var checked sshkeyv1.CheckedPublicKey
	f.call(t, ctx, sshkeyv1.OpCheckPublicKey, sshkeyv1.CheckPublicKeyRequest{PublicKey: access.Line}, &checked)
	if checked.Fingerprint != access.Fingerprint || checked.Algorithm != "ssh-ed25519" {
		t.Fatalf("checked %+v", checked)
	}
	k := f.create(t, ctx, sshkeyv1.CreateBody{Name: "laptop", PublicKey: access.Line, Metadata: map[string]any{"owner": "ops"}})
	if !validation.IsULID(k.ID) || k.KeyID != k.ID || k.TenantID != tenant || k.Name != "laptop" ||
		k.PublicKey != testkeys.Authorized(access.Public()) || k.KeyType != sshkeyv1.TypeAccess || k.AgentID != nil ||
		k.Fingerprint != access.Fingerprint || k.Algorithm != "ssh-ed25519" || k.Status != sshkeyv1.StatusActive ||
		k.Revoked || k.RevokedAt != nil || k.RevocationReason != nil || k.LastUsed != nil ||
		k.Metadata["owner"] != "ops" || !k.CreatedAt.Equal(f.clock.Now()) || !k.UpdatedAt.Equal(k.CreatedAt) {
		t.Fatalf("created %+v", k)
	}
	agentKey := testkeys.New(t, testkeys.P256)
	ak := f.create(t, ctx, sshkeyv1.CreateBody{Name: "worker", PublicKey: agentKey.Line, AgentID: strings.ToLower(agentID)})
	if ak.KeyType != sshkeyv1.TypeAgent || ak.AgentID == nil || *ak.AgentID != agentID || ak.Algorithm != "ecdsa-sha2-nistp256" {
		t.Fatalf("agent key %+v", ak)
	}

	// get, list
	var got sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: k.ID}, &got)
	if got.Key.ID != k.ID || got.Key.Metadata["owner"] != "ops" {
		t.Fatalf("get %+v", got.Key)
	}
	var list sshkeyv1.ListResponse
	f.call(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{}, &list)
	if len(list.Keys) != 2 || list.Cursor != "" || list.Keys[0].ID != k.ID || list.Keys[1].ID != ak.ID {
		t.Fatalf("list %+v", list)
	}

	// create_for_agent (the agent service's call), lookup_credential
	other := testkeys.New(t, testkeys.Ed25519)
	otherAgent := newULID() // not visible to lookups yet: create_for_agent does not ask
	var fa sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpCreateForAgent, sshkeyv1.CreateForAgentRequest{AgentID: otherAgent, Key: sshkeyv1.CreateBody{Name: "a", PublicKey: other.Line}}, &fa)
	if fa.Key.KeyType != sshkeyv1.TypeAgent || *fa.Key.AgentID != otherAgent {
		t.Fatalf("create_for_agent %+v", fa.Key)
	}
	f.call(t, from("192.0.2.1"), sshkeyv1.OpLookupCredential, sshkeyv1.LookupCredentialRequest{TenantID: tenant, AgentID: agentID, KeyID: ak.ID}, nil)

	// challenge + verify
	v, err := f.login(t, "192.0.2.1", tenant, ak.ID, "", agentKey)
	if err != nil || v.TenantID != tenant || v.AgentID != agentID || v.KeyID != ak.ID {
		t.Fatalf("login %+v %v", v, err)
	}

	// revoke, delete, delete_for_agent
	var rev sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: ak.ID, Changes: sshkeyv1.RevokeBody{Reason: "rotated"}}, &rev)
	if rev.Key.Status != sshkeyv1.StatusRevoked || !rev.Key.Revoked || rev.Key.RevokedAt == nil || *rev.Key.RevocationReason != "rotated" {
		t.Fatalf("revoked %+v", rev.Key)
	}
	f.call(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: k.ID}, nil)
	f.call(t, ctx, sshkeyv1.OpDeleteForAgent, sshkeyv1.DeleteForAgentRequest{AgentID: otherAgent}, nil)
	f.call(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{}, &list)
	if len(list.Keys) != 1 || list.Keys[0].ID != ak.ID {
		t.Fatalf("after deletes %+v", list)
	}
	got3 := hints(3)
	want := []sshkeyv1.KeyChanged{
		{TenantID: tenant, KeyID: ak.ID, AgentID: agentID, Change: sshkeyv1.ChangeRevoked},
		{TenantID: tenant, KeyID: k.ID, Change: sshkeyv1.ChangeDeleted},
		{TenantID: tenant, KeyID: fa.Key.ID, AgentID: otherAgent, Change: sshkeyv1.ChangeDeleted},
	}
	if !slices.Equal(got3, want) {
		t.Fatalf("hints %+v, want %+v", got3, want)
	}
	if n, _ := f.repo.KeyCount(context.Background(), tenant); n != 1 {
		t.Fatalf("key counter %d, want 1", n)
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	agentID := f.agent(tenant)
	foreignAgent := f.agent(newTenant())
	ed := testkeys.New(t, testkeys.Ed25519)
	f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: ed.Line})

	type tc struct {
		body   sshkeyv1.CreateBody
		status int
		code   string
		field  string
	}
	cases := map[string]tc{
		"no name":                 {sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line}, 422, natsrpc.CodeValidationFailed, "name"},
		"no key":                  {sshkeyv1.CreateBody{Name: "k"}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"bad key type":            {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, KeyType: "root"}, 422, natsrpc.CodeValidationFailed, "key_type"},
		"agent type, no agent":    {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, KeyType: "agent"}, 422, natsrpc.CodeValidationFailed, "agent_id"},
		"malformed agent id":      {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: "nope"}, 422, natsrpc.CodeValidationFailed, "agent_id"},
		"unknown agent":           {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: newULID()}, 422, natsrpc.CodeValidationFailed, "agent_id"},
		"agent of another tenant": {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: foreignAgent}, 422, natsrpc.CodeValidationFailed, "agent_id"},
		"rsa 1024":                {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.RSA1024).Line}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"dsa":                     {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.DSALine(t)}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"sk ed25519":              {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.SKEd25519Line(t)}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"sk ecdsa":                {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.SKECDSALine(t)}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"certificate":             {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.CertLine(t)}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"garbage":                 {sshkeyv1.CreateBody{Name: "k", PublicKey: "hello"}, 422, natsrpc.CodeValidationFailed, "public_key"},
		"duplicate":               {sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.Authorized(ed.Public()) + " another comment"}, 409, natsrpc.CodeConflict, ""},
		"duplicate with options":  {sshkeyv1.CreateBody{Name: "k", PublicKey: "no-pty " + ed.Line}, 409, natsrpc.CodeConflict, ""},
	}
	for name, c := range cases {
		e := f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: c.body}, c.status, c.code)
		if c.field != "" && (len(e.Errors) == 0 || e.Errors[0].Field != c.field) {
			t.Fatalf("%s: errors %+v, want field %s", name, e.Errors, c.field)
		}
	}
	// A well-formed agent key still works, with the agent id in any case.
	f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: strings.ToLower(agentID)})

	// The agent service down: 503, nothing stored.
	f.agents.down.Store(true)
	f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID}},
		http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.agents.down.Store(false)
	if n, _ := f.repo.KeyCount(context.Background(), tenant); n != 2 {
		t.Fatalf("key counter %d, want 2", n)
	}

	// Same key in another tenant: fingerprints are unique per tenant only.
	f.create(t, member(newTenant(), plans.Basic), sshkeyv1.CreateBody{PublicKey: ed.Line})

	// Malformed JSON, identities the gateway never sends.
	if err := f.client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCreate), []byte(`{"key":`), nil); err == nil {
		t.Fatal("malformed JSON accepted")
	}
	body := sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line}}
	f.fails(t, member("", plans.Basic), sshkeyv1.OpCreate, body, 500, natsrpc.CodeInternal)
	f.fails(t, member(tenant, "gold"), sshkeyv1.OpCreate, body, 500, natsrpc.CodeInternal)
	agentCtx := natsrpc.WithIdentity(context.Background(), natsrpc.Identity{TenantID: tenant, Kind: natsrpc.KindAgent, PrincipalID: agentID, Plan: plans.Basic})
	f.fails(t, agentCtx, sshkeyv1.OpCreate, body, 403, natsrpc.CodeForbidden)
	f.fails(t, agentCtx, sshkeyv1.OpList, sshkeyv1.ListRequest{}, 403, natsrpc.CodeForbidden)
}

func TestMalformedJSONIs400(t *testing.T) {
	t.Parallel()
	f := start(t)
	for _, op := range []string{sshkeyv1.OpCreate, sshkeyv1.OpVerify, sshkeyv1.OpChallenge} {
		msg, err := f.nc.Request(sshkeyv1.Subject(op), []byte(`{"key": [`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := natsrpc.ReplyError(msg); e == nil || e.Status != 400 || e.Code != natsrpc.CodeInvalidJSON {
			t.Fatalf("%s: %v", op, e)
		}
	}
}

// A pasted private key is refused with private_key_rejected by every operation that
// takes a public key, and its text appears neither in the reply nor in the logs.
func TestPrivateKeyRejectedAndNeverLogged(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	for _, kind := range []string{testkeys.Ed25519, testkeys.P384, testkeys.RSA2048} {
		for form, text := range testkeys.PrivateForms(t, testkeys.New(t, kind)) {
			reqs := map[string]any{
				sshkeyv1.OpCreate:         sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: text}},
				sshkeyv1.OpCheckPublicKey: sshkeyv1.CheckPublicKeyRequest{PublicKey: text},
				sshkeyv1.OpCreateForAgent: sshkeyv1.CreateForAgentRequest{AgentID: newULID(), Key: sshkeyv1.CreateBody{Name: "k", PublicKey: text}},
			}
			for op, req := range reqs {
				e := f.fails(t, ctx, op, req, http.StatusUnprocessableEntity, natsrpc.CodePrivateKeyRejected)
				for _, line := range strings.Split(text, "\n") {
					if len(line) > 16 && strings.Contains(e.Detail, line) {
						t.Fatalf("%s %s %s: the reply echoes the key", kind, form, op)
					}
				}
			}
			logs := f.logs.String()
			for _, line := range strings.Split(text, "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "-----") || len(line) < 16 {
					continue
				}
				if strings.Contains(logs, line[:16]) {
					t.Fatalf("%s %s: the logs contain the private key", kind, form)
				}
			}
		}
	}
	// The capture works: the request lines are there.
	if logs := f.logs.String(); !strings.Contains(logs, `"op":"create"`) || !strings.Contains(logs, `"status":422`) {
		t.Fatalf("the request log lines are missing:\n%s", logs)
	}
	if items := f.items(t, tenant, ""); len(items) > 1 { // at most the counter
		t.Fatalf("items stored: %v", items)
	}
}

// Exactly max keys exist after 20 creates race for the plan's 5 slots.
func TestKeyLimitUnderConcurrentCreates(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Free)
	max := int(*mustPlan(t, plans.Free).Limits.MaxSSHKeys)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, over int
	)
	for range 20 {
		k := testkeys.New(t, testkeys.Ed25519)
		wg.Go(func() {
			err := f.client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCreate), sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: k.Line}}, nil)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
				return
			}
			if e, isWire := natsrpc.AsError(err); isWire && e.Status == http.StatusPaymentRequired && e.Code == natsrpc.CodePlanLimitExceeded &&
				e.Detail == fmt.Sprintf("ssh key limit reached: %d of %d on the free plan", max, max) {
				over++
				return
			}
			t.Errorf("create: %v", err)
		})
	}
	wg.Wait()
	if ok != max || over != 20-max {
		t.Fatalf("%d created, %d refused; want %d and %d", ok, over, max, 20-max)
	}
	var list sshkeyv1.ListResponse
	f.call(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{Limit: 100}, &list)
	if n, _ := f.repo.KeyCount(context.Background(), tenant); len(list.Keys) != max || n != int64(max) {
		t.Fatalf("%d keys listed, counter %d; want %d", len(list.Keys), n, max)
	}
	// check_public_key answers as create would; a deletion frees a slot.
	next := testkeys.New(t, testkeys.Ed25519)
	f.fails(t, ctx, sshkeyv1.OpCheckPublicKey, sshkeyv1.CheckPublicKeyRequest{PublicKey: next.Line}, 402, natsrpc.CodePlanLimitExceeded)
	f.call(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: list.Keys[0].ID}, nil)
	f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: next.Line})
	// A downgrade deletes nothing; the counter still counts on an unlimited plan.
	f.create(t, member(tenant, plans.Enterprise), sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line})
	if n, _ := f.repo.KeyCount(context.Background(), tenant); n != int64(max)+1 {
		t.Fatalf("counter %d after an enterprise create", n)
	}
	e := f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line}}, 402, natsrpc.CodePlanLimitExceeded)
	if e.Detail != fmt.Sprintf("ssh key limit reached: %d of %d on the free plan", max+1, max) {
		t.Fatalf("detail %q", e.Detail)
	}
}

func mustPlan(t *testing.T, id string) plans.Plan {
	t.Helper()
	p, ok := plans.Get(id)
	if !ok {
		t.Fatalf("no plan %s", id)
	}
	return p
}

func TestDuplicateFingerprint(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	k := testkeys.New(t, testkeys.RSA2048)
	first := f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: k.Line})
	for _, text := range []string{testkeys.Authorized(k.Public()) + " other comment", testkeys.Authorized(k.Public()), `from="10.0.0.1" ` + k.Line} {
		f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: text}}, 409, natsrpc.CodeConflict)
		f.fails(t, ctx, sshkeyv1.OpCheckPublicKey, sshkeyv1.CheckPublicKeyRequest{PublicKey: text}, 409, natsrpc.CodeConflict)
	}
	// Revoked still holds the fingerprint; deleted frees it.
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: first.ID}, nil)
	f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: k.Line}}, 409, natsrpc.CodeConflict)
	f.call(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: first.ID}, nil)
	again := f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: k.Line})
	if again.ID == first.ID || again.Fingerprint != first.Fingerprint {
		t.Fatalf("re-created %+v", again)
	}
}

// A claim left by a create that never wrote its key is taken over once it is older
// than the claim grace; a young one may belong to a create in flight.
func TestStaleClaimIsTakenOver(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	k := testkeys.New(t, testkeys.Ed25519)
	if err := f.repo.CreateClaim(context.Background(), tenant, k.Fingerprint, sshkey.Claim{KeyID: newULID(), CreatedAt: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	body := sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: k.Line}}
	f.fails(t, ctx, sshkeyv1.OpCreate, body, 409, natsrpc.CodeConflict)
	f.clock.Advance(sshkey.DefaultClaimGrace + time.Second)
	var checked sshkeyv1.CheckedPublicKey
	f.call(t, ctx, sshkeyv1.OpCheckPublicKey, sshkeyv1.CheckPublicKeyRequest{PublicKey: k.Line}, &checked)
	created := f.create(t, ctx, body.Key)
	c, err := f.repo.GetClaim(context.Background(), tenant, k.Fingerprint)
	if err != nil || c.KeyID != created.ID {
		t.Fatalf("claim %+v %v", c, err)
	}
}

// failingKeys fails every write of a key item: the create's last step.
type failingKeys struct{ store.Table }

func (t failingKeys) Put(ctx context.Context, it store.Item, c store.Cond) (int64, error) {
	if strings.HasPrefix(it.SK, "K#") {
		return 0, store.ErrUnavailable
	}
	return t.Table.Put(ctx, it, c)
}

// A create that fails at its last step leaves nothing behind: no claim, no index entry,
// the count given back.
func TestCreateCompensation(t *testing.T) {
	t.Parallel()
	f := startWith(t, func(t store.Table) store.Table { return failingKeys{t} })
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	agentID := f.agent(tenant)
	f.fails(t, ctx, sshkeyv1.OpCreate, sshkeyv1.CreateRequest{Key: sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID}},
		http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	if items := f.items(t, tenant, ""); !slices.Equal(items, []string{"N#KEYS"}) {
		t.Fatalf("items left: %v", items)
	}
	if n, _ := f.repo.KeyCount(context.Background(), tenant); n != 0 {
		t.Fatalf("counter %d", n)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	a, b := f.agent(tenant), f.agent(tenant)
	mk := func(body sshkeyv1.CreateBody) string {
		body.PublicKey = testkeys.New(t, testkeys.Ed25519).Line
		return f.create(t, ctx, body).ID
	}
	// Stale ids made at the keys' own millisecond sort among them.
	staleID := func() string { return ulid.MustNew(ulid.Timestamp(f.clock.Now()), rand.Reader).String() }
	var aKeys, agentKeys, accessKeys, all []string
	for range 3 {
		id := mk(sshkeyv1.CreateBody{AgentID: a})
		aKeys, agentKeys, all = append(aKeys, id), append(agentKeys, id), append(all, id)
		// Stale index entries between the real ones: left by interrupted writes.
		for _, ix := range []sshkey.Index{{Kind: sshkey.ByAgent, Value: a}, {Kind: sshkey.ByType, Value: sshkeyv1.TypeAgent}} {
			if err := f.repo.PutIndex(context.Background(), tenant, ix, staleID()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		id := mk(sshkeyv1.CreateBody{AgentID: b})
		agentKeys, all = append(agentKeys, id), append(all, id)
	}
	for range 2 {
		id := mk(sshkeyv1.CreateBody{})
		accessKeys, all = append(accessKeys, id), append(all, id)
	}
	deployA := mk(sshkeyv1.CreateBody{AgentID: a, KeyType: sshkeyv1.TypeDeployment})
	aKeys, all = append(aKeys, deployA), append(all, deployA)
	// More stale entries at the end of the indexes.
	for i := range 3 {
		last := fmt.Sprintf("7ZZZZZZZZZZZZZZZZZZZZZZZZ%d", i)
		_ = f.repo.PutIndex(context.Background(), tenant, sshkey.Index{Kind: sshkey.ByAgent, Value: a}, last)
		_ = f.repo.PutIndex(context.Background(), tenant, sshkey.Index{Kind: sshkey.ByType, Value: sshkeyv1.TypeAccess}, last)
	}

	page := func(req sshkeyv1.ListRequest) []string {
		t.Helper()
		var ids []string
		for {
			var out sshkeyv1.ListResponse
			f.call(t, ctx, sshkeyv1.OpList, req, &out)
			if len(out.Keys) == 0 && out.Cursor != "" {
				t.Fatalf("%+v: an empty page with a cursor", req)
			}
			for _, k := range out.Keys {
				if req.AgentID != "" && (k.AgentID == nil || *k.AgentID != strings.ToUpper(req.AgentID)) || req.KeyType != "" && k.KeyType != req.KeyType {
					t.Fatalf("%+v: key %+v does not match", req, k)
				}
				ids = append(ids, k.ID)
			}
			if out.Cursor == "" {
				return ids
			}
			req.Cursor = out.Cursor
		}
	}
	sorted := func(ids []string) []string { return slices.Sorted(slices.Values(ids)) }
	for _, limit := range []int{1, 2, 3, 100} {
		for _, c := range []struct {
			req  sshkeyv1.ListRequest
			want []string
		}{
			{sshkeyv1.ListRequest{}, all},
			{sshkeyv1.ListRequest{AgentID: a}, aKeys},
			{sshkeyv1.ListRequest{AgentID: strings.ToLower(a)}, aKeys},
			{sshkeyv1.ListRequest{KeyType: sshkeyv1.TypeAgent}, agentKeys},
			{sshkeyv1.ListRequest{KeyType: sshkeyv1.TypeAccess}, accessKeys},
			{sshkeyv1.ListRequest{AgentID: a, KeyType: sshkeyv1.TypeDeployment}, []string{deployA}},
			{sshkeyv1.ListRequest{AgentID: b, KeyType: sshkeyv1.TypeAccess}, nil},
		} {
			c.req.Limit = limit
			if got := page(c.req); !slices.Equal(got, sorted(c.want)) {
				t.Fatalf("%+v: %v, want %v", c.req, got, sorted(c.want))
			}
		}
	}
	// Another tenant sees none of them; a foreign cursor and bad filters are refused.
	var other sshkeyv1.ListResponse
	f.call(t, member(newTenant(), plans.Pro), sshkeyv1.OpList, sshkeyv1.ListRequest{AgentID: a}, &other)
	if len(other.Keys) != 0 {
		t.Fatalf("another tenant lists %d keys", len(other.Keys))
	}
	f.fails(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{Cursor: "garbage"}, 400, natsrpc.CodeInvalidNextToken)
	f.fails(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{KeyType: "root"}, 422, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{AgentID: "x"}, 422, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, sshkeyv1.OpList, sshkeyv1.ListRequest{Limit: 101}, 422, natsrpc.CodeValidationFailed)
}

func TestRevokeDeleteAndCrossTenant(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant, intruder := newTenant(), newTenant()
	ctx, ictx := member(tenant, plans.Basic), member(intruder, plans.Basic)
	k := f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line})

	// Another tenant's key ids are 404 everywhere; so are malformed and unknown ids.
	for _, c := range []struct {
		ctx context.Context
		id  string
	}{{ictx, k.ID}, {ctx, "not-an-id"}, {ctx, newULID()}, {ctx, strings.ToLower(newULID())}} {
		f.fails(t, c.ctx, sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: c.id}, 404, natsrpc.CodeNotFound)
		f.fails(t, c.ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: c.id}, 404, natsrpc.CodeNotFound)
		f.fails(t, c.ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: c.id}, 404, natsrpc.CodeNotFound)
	}
	f.fails(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: k.ID, Changes: sshkeyv1.RevokeBody{Reason: strings.Repeat("x", 1025)}}, 422, natsrpc.CodeValidationFailed)

	f.clock.Advance(time.Minute)
	var rev sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: k.ID}, &rev)
	if !rev.Key.Revoked || rev.Key.RevocationReason != nil || !rev.Key.RevokedAt.Equal(f.clock.Now()) || !rev.Key.UpdatedAt.Equal(f.clock.Now()) {
		t.Fatalf("revoked %+v", rev.Key)
	}
	// Revoking again changes nothing.
	f.clock.Advance(time.Minute)
	var again sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: k.ID, Changes: sshkeyv1.RevokeBody{Reason: "later"}}, &again)
	if !again.Key.RevokedAt.Equal(*rev.Key.RevokedAt) || again.Key.RevocationReason != nil {
		t.Fatalf("revoked twice %+v", again.Key)
	}
	f.call(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: k.ID}, nil)
	f.fails(t, ctx, sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: k.ID}, 404, natsrpc.CodeNotFound)
	f.fails(t, ctx, sshkeyv1.OpDelete, sshkeyv1.DeleteRequest{KeyID: k.ID}, 404, natsrpc.CodeNotFound)
	if items := f.items(t, tenant, ""); !slices.Equal(items, []string{"N#KEYS"}) {
		t.Fatalf("items left after delete: %v", items)
	}
}

func TestDeleteForAgent(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	doomed, kept := f.agent(tenant), f.agent(tenant)
	keys := []testkeys.Key{testkeys.New(t, testkeys.Ed25519), testkeys.New(t, testkeys.P256), testkeys.New(t, testkeys.Ed25519)}
	var ids []string
	for _, k := range keys {
		ids = append(ids, f.agentKey(t, tenant, doomed, k).ID)
	}
	// A deployment key bound to the agent goes too; another agent's key stays.
	ids = append(ids, f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: doomed, KeyType: sshkeyv1.TypeDeployment}).ID)
	keptKey := testkeys.New(t, testkeys.Ed25519)
	keptID := f.agentKey(t, tenant, kept, keptKey).ID
	_ = f.repo.PutIndex(context.Background(), tenant, sshkey.Index{Kind: sshkey.ByAgent, Value: doomed}, newULID()) // stale
	hints := f.hints(t)

	f.call(t, ctx, sshkeyv1.OpDeleteForAgent, sshkeyv1.DeleteForAgentRequest{AgentID: strings.ToLower(doomed)}, nil)
	got := hints(len(ids))
	for i, h := range got {
		if h.Change != sshkeyv1.ChangeDeleted || h.AgentID != doomed || !slices.Contains(ids, h.KeyID) || h.TenantID != tenant {
			t.Fatalf("hint %d: %+v", i, h)
		}
	}
	for _, id := range ids {
		f.fails(t, ctx, sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: id}, 404, natsrpc.CodeNotFound)
	}
	f.call(t, ctx, sshkeyv1.OpGet, sshkeyv1.GetRequest{KeyID: keptID}, nil)
	if n, _ := f.repo.KeyCount(context.Background(), tenant); n != 1 {
		t.Fatalf("counter %d, want 1", n)
	}
	if left := f.items(t, tenant, "G#"+doomed); len(left) != 0 {
		t.Fatalf("index entries left: %v", left)
	}
	// Idempotent; a deleted agent key cannot log in; the other agent still can.
	f.call(t, ctx, sshkeyv1.OpDeleteForAgent, sshkeyv1.DeleteForAgentRequest{AgentID: doomed}, nil)
	_, err := f.login(t, "192.0.2.7", tenant, ids[0], "", keys[0])
	isInvalidSignature(t, err, "deleted key")
	if _, err := f.login(t, "192.0.2.7", tenant, keptID, "", keptKey); err != nil {
		t.Fatalf("the other agent: %v", err)
	}
	f.fails(t, ctx, sshkeyv1.OpDeleteForAgent, sshkeyv1.DeleteForAgentRequest{AgentID: "nope"}, 404, natsrpc.CodeNotFound)
}

func TestLookupCredential(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Pro)
	agentID := f.agent(tenant)
	k := f.agentKey(t, tenant, agentID, testkeys.New(t, testkeys.Ed25519))
	access := f.create(t, ctx, sshkeyv1.CreateBody{PublicKey: testkeys.New(t, testkeys.Ed25519).Line, AgentID: agentID, KeyType: sshkeyv1.TypeAccess})
	sys := from("")

	f.call(t, sys, sshkeyv1.OpLookupCredential, sshkeyv1.LookupCredentialRequest{TenantID: tenant, AgentID: agentID, KeyID: k.ID}, nil)
	f.call(t, sys, sshkeyv1.OpLookupCredential, sshkeyv1.LookupCredentialRequest{TenantID: tenant, AgentID: strings.ToLower(agentID), KeyID: strings.ToLower(k.ID)}, nil)
	for name, req := range map[string]sshkeyv1.LookupCredentialRequest{
		"another agent":  {TenantID: tenant, AgentID: newULID(), KeyID: k.ID},
		"another tenant": {TenantID: newTenant(), AgentID: agentID, KeyID: k.ID},
		"access key":     {TenantID: tenant, AgentID: agentID, KeyID: access.ID},
		"unknown key":    {TenantID: tenant, AgentID: agentID, KeyID: newULID()},
		"malformed":      {TenantID: "x", AgentID: "y", KeyID: "z"},
		"empty":          {},
	} {
		if err := f.client.Call(sys, sshkeyv1.Subject(sshkeyv1.OpLookupCredential), req, nil); !isStatus(err, 404) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	f.call(t, ctx, sshkeyv1.OpRevoke, sshkeyv1.RevokeRequest{KeyID: k.ID}, nil)
	if err := f.client.Call(sys, sshkeyv1.Subject(sshkeyv1.OpLookupCredential), sshkeyv1.LookupCredentialRequest{TenantID: tenant, AgentID: agentID, KeyID: k.ID}, nil); !isStatus(err, 404) {
		t.Fatalf("revoked: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var e *natsrpc.Error
	return errors.As(err, &e) && e.Status == status
}

func TestCreateForAgentRules(t *testing.T) {
	t.Parallel()
	f := start(t)
	tenant := newTenant()
	ctx := member(tenant, plans.Basic)
	agentID := newULID()
	line := testkeys.New(t, testkeys.Ed25519).Line
	for name, c := range map[string]struct {
		req    sshkeyv1.CreateForAgentRequest
		status int
		field  string
	}{
		"malformed agent": {sshkeyv1.CreateForAgentRequest{AgentID: "x", Key: sshkeyv1.CreateBody{Name: "k", PublicKey: line}}, 404, ""},
		"other agent":     {sshkeyv1.CreateForAgentRequest{AgentID: agentID, Key: sshkeyv1.CreateBody{Name: "k", PublicKey: line, AgentID: newULID()}}, 422, "agent_id"},
		"access type":     {sshkeyv1.CreateForAgentRequest{AgentID: agentID, Key: sshkeyv1.CreateBody{Name: "k", PublicKey: line, KeyType: sshkeyv1.TypeAccess}}, 422, "key_type"},
		"rsa 1024":        {sshkeyv1.CreateForAgentRequest{AgentID: agentID, Key: sshkeyv1.CreateBody{Name: "k", PublicKey: testkeys.New(t, testkeys.RSA1024).Line}}, 422, "public_key"},
	} {
		err := f.client.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCreateForAgent), c.req, nil)
		e, ok := natsrpc.AsError(err)
		if !ok || e.Status != c.status || (c.field != "" && (len(e.Errors) == 0 || e.Errors[0].Field != c.field)) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var out sshkeyv1.KeyResponse
	f.call(t, ctx, sshkeyv1.OpCreateForAgent, sshkeyv1.CreateForAgentRequest{AgentID: strings.ToLower(agentID), Key: sshkeyv1.CreateBody{Name: "k", PublicKey: line, KeyType: sshkeyv1.TypeAgent, AgentID: strings.ToLower(agentID)}}, &out)
	if *out.Key.AgentID != agentID || out.Key.KeyType != sshkeyv1.TypeAgent {
		t.Fatalf("%+v", out.Key)
	}
	f.fails(t, ctx, sshkeyv1.OpCreateForAgent, sshkeyv1.CreateForAgentRequest{AgentID: agentID, Key: sshkeyv1.CreateBody{Name: "k", PublicKey: line}}, 409, natsrpc.CodeConflict)
}
