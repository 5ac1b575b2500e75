package httpapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// fakeFleet is a small agent service and sshkey service answering the agentv1 and
// sshkeyv1 contracts over the in-process NATS (faking at our own contracts). It keeps
// one state for both, checks signatures for real (golang.org/x/crypto/ssh), and
// publishes the cache hints the real services publish.
type fakeFleet struct {
	mu         sync.Mutex
	nc         *nats.Conn
	agents     map[string]map[string]*agentv1.Agent // tenant → id → agent
	keys       map[string]map[string]*fakeKey       // tenant → id → key
	challenges map[string]fakeChallenge
	seen       map[string]natsrpc.Identity // op → last caller identity
	calls      map[string]int              // op → calls
	retryAfter int                         // > 0: challenge and verify answer 429 with it
	svcs       []micro.Service
}

type fakeKey struct {
	k   sshkeyv1.Key
	pub ssh.PublicKey // nil for seeded credentials that never log in
}

type fakeChallenge struct {
	tenant, keyID, agentID string
	expires                time.Time
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{
		agents:     map[string]map[string]*agentv1.Agent{},
		keys:       map[string]map[string]*fakeKey{},
		challenges: map[string]fakeChallenge{},
		seen:       map[string]natsrpc.Identity{},
		calls:      map[string]int{},
	}
}

func (f *fakeFleet) start(t testing.TB, nc *nats.Conn) {
	t.Helper()
	f.nc = nc
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	for _, s := range []struct {
		name, group string
		ops         map[string]micro.Handler
	}{
		{agentv1.Service, agentv1.Group, map[string]micro.Handler{
			agentv1.OpCreate:        natsrpc.Handle(srv, agentv1.OpCreate, f.agentCreate),
			agentv1.OpList:          natsrpc.Handle(srv, agentv1.OpList, f.agentList),
			agentv1.OpGet:           natsrpc.Handle(srv, agentv1.OpGet, f.agentGet),
			agentv1.OpUpdate:        natsrpc.Handle(srv, agentv1.OpUpdate, f.agentUpdate),
			agentv1.OpSetStatus:     natsrpc.Handle(srv, agentv1.OpSetStatus, f.agentSetStatus),
			agentv1.OpDelete:        natsrpc.Handle(srv, agentv1.OpDelete, f.agentDelete),
			agentv1.OpStatusSummary: natsrpc.Handle(srv, agentv1.OpStatusSummary, f.agentSummary),
		}},
		{sshkeyv1.Service, sshkeyv1.Group, map[string]micro.Handler{
			sshkeyv1.OpCreate:           natsrpc.Handle(srv, sshkeyv1.OpCreate, f.keyCreate),
			sshkeyv1.OpList:             natsrpc.Handle(srv, sshkeyv1.OpList, f.keyList),
			sshkeyv1.OpGet:              natsrpc.Handle(srv, sshkeyv1.OpGet, f.keyGet),
			sshkeyv1.OpRevoke:           natsrpc.Handle(srv, sshkeyv1.OpRevoke, f.keyRevoke),
			sshkeyv1.OpDelete:           natsrpc.Handle(srv, sshkeyv1.OpDelete, f.keyDelete),
			sshkeyv1.OpChallenge:        natsrpc.Handle(srv, sshkeyv1.OpChallenge, f.challenge),
			sshkeyv1.OpVerify:           natsrpc.Handle(srv, sshkeyv1.OpVerify, f.verify),
			sshkeyv1.OpLookupCredential: natsrpc.Handle(srv, sshkeyv1.OpLookupCredential, f.lookupCredential),
		}},
	} {
		svc, err := micro.AddService(nc, micro.Config{Name: s.name, Version: "1.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		g := svc.AddGroup(s.group)
		for op, h := range s.ops {
			if err := g.AddEndpoint(op, h); err != nil {
				t.Fatal(err)
			}
		}
		f.svcs = append(f.svcs, svc)
		t.Cleanup(func() { _ = svc.Stop() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// enter records the caller and locks the state; the returned tenant is the identity's.
func (f *fakeFleet) enter(ctx context.Context, op string) (string, func()) {
	f.mu.Lock()
	id := natsrpc.IdentityFrom(ctx)
	f.seen[op] = id
	f.calls[op]++
	return id.TenantID, f.mu.Unlock
}

func (f *fakeFleet) identity(op string) natsrpc.Identity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[op]
}

func (f *fakeFleet) callCount(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

func (f *fakeFleet) setRetryAfter(s int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retryAfter = s
}

// publish sends a cache hint, as the real services do after a change.
func (f *fakeFleet) publish(subject string, ev any) {
	b, _ := json.Marshal(ev)
	_ = f.nc.Publish(subject, b)
}

func requireTenant(tenant string) error {
	if tenant == "" {
		return natsrpc.Internal() // a tenant-scoped op without a tenant is a gateway bug
	}
	return nil
}

// ---- state helpers (mu held) ----

func (f *fakeFleet) agent(tenant, id string) (*agentv1.Agent, error) {
	a, ok := f.agents[tenant][id]
	if !ok {
		return nil, natsrpc.NotFound("agent not found")
	}
	return a, nil
}

func (f *fakeFleet) key(tenant, id string) (*fakeKey, error) {
	k, ok := f.keys[tenant][id]
	if !ok {
		return nil, natsrpc.NotFound("ssh key not found")
	}
	return k, nil
}

func (f *fakeFleet) putAgent(tenant string, a *agentv1.Agent) {
	if f.agents[tenant] == nil {
		f.agents[tenant] = map[string]*agentv1.Agent{}
	}
	f.agents[tenant][a.ID] = a
}

func (f *fakeFleet) putKey(tenant string, k *fakeKey) {
	if f.keys[tenant] == nil {
		f.keys[tenant] = map[string]*fakeKey{}
	}
	f.keys[tenant][k.k.ID] = k
}

func newAgent(tenant, id, name string) *agentv1.Agent {
	now := time.Now().UTC().Truncate(time.Second)
	return &agentv1.Agent{ID: id, AgentID: id, TenantID: tenant, Name: name, Type: agentv1.TypeWorker,
		Status: agentv1.StatusOffline, Capabilities: []agentv1.Capability{}, Metadata: map[string]any{},
		CreatedAt: now, UpdatedAt: now}
}

// parsePublicKey applies the contract's key rules closely enough for the gateway's tests.
func parsePublicKey(s string) (ssh.PublicKey, error) {
	if strings.Contains(s, "PRIVATE KEY") {
		return nil, natsrpc.NewError(http.StatusUnprocessableEntity, natsrpc.CodePrivateKeyRejected,
			"that is a private key: send only the public key (the .pub file)")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, natsrpc.Invalid(natsrpc.FieldError{Field: "public_key", Message: "is not an OpenSSH public key"})
	}
	if ck, ok := pub.(ssh.CryptoPublicKey); ok {
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
			return nil, natsrpc.Invalid(natsrpc.FieldError{Field: "public_key", Message: "RSA keys need at least 2048 bits"})
		}
	}
	return pub, nil
}

func (f *fakeFleet) addKey(tenant string, body sshkeyv1.CreateBody) (*fakeKey, error) {
	pub, err := parsePublicKey(body.PublicKey)
	if err != nil {
		return nil, err
	}
	fp := ssh.FingerprintSHA256(pub)
	for _, k := range f.keys[tenant] {
		if k.k.Fingerprint == fp {
			return nil, natsrpc.Conflict("this key is already registered in the tenant")
		}
	}
	typ := body.KeyType
	if typ == "" {
		typ = sshkeyv1.TypeAccess
		if body.AgentID != "" {
			typ = sshkeyv1.TypeAgent
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	id := ulid.Make().String()
	k := &fakeKey{pub: pub, k: sshkeyv1.Key{ID: id, KeyID: id, TenantID: tenant, Name: body.Name,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), KeyType: typ, Fingerprint: fp,
		Algorithm: pub.Type(), Status: sshkeyv1.StatusActive, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now}}
	if body.AgentID != "" {
		agent := body.AgentID
		k.k.AgentID = &agent
	}
	f.putKey(tenant, k)
	return k, nil
}

// page returns the items of ids after cursor ("after:<id>"), up to limit, and the next cursor.
func page(ids []string, cursor string, limit int) ([]string, string) {
	slices.Sort(ids)
	if limit <= 0 {
		limit = defaultLimit
	}
	after := strings.TrimPrefix(cursor, "after:")
	var out []string
	for i, id := range ids {
		if after != "" && id <= after {
			continue
		}
		out = append(out, id)
		if len(out) == limit && i < len(ids)-1 {
			return out, "after:" + id
		}
	}
	return out, ""
}

// ---- agent service ----

func (f *fakeFleet) agentCreate(ctx context.Context, r *agentv1.CreateRequest) (*agentv1.CreateResponse, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpCreate)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	a := newAgent(tenant, ulid.Make().String(), r.Agent.Name)
	if r.Agent.Type != "" {
		a.Type = r.Agent.Type
	}
	a.Description = r.Agent.Description
	if r.Agent.Capabilities != nil {
		a.Capabilities = r.Agent.Capabilities
	}
	if r.Agent.Metadata != nil {
		a.Metadata = r.Agent.Metadata
	}
	out := &agentv1.CreateResponse{}
	if r.Agent.PublicKey != "" {
		k, err := f.addKey(tenant, sshkeyv1.CreateBody{Name: r.Agent.Name, PublicKey: r.Agent.PublicKey, KeyType: sshkeyv1.TypeAgent, AgentID: a.ID})
		if err != nil {
			return nil, err // no agent remains
		}
		out.Key = &k.k
	}
	f.putAgent(tenant, a)
	out.Agent = *a
	return out, nil
}

func (f *fakeFleet) agentList(ctx context.Context, r *agentv1.ListRequest) (*agentv1.ListResponse, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpList)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	var ids []string
	for id, a := range f.agents[tenant] {
		if (r.Status == "" || a.Status == r.Status) && (r.Type == "" || a.Type == r.Type) &&
			(r.Capability == "" || slices.ContainsFunc(a.Capabilities, func(c agentv1.Capability) bool { return c.Name == r.Capability })) {
			ids = append(ids, id)
		}
	}
	got, cursor := page(ids, r.Cursor, r.Limit)
	out := &agentv1.ListResponse{Agents: []agentv1.Agent{}, Cursor: cursor}
	for _, id := range got {
		out.Agents = append(out.Agents, *f.agents[tenant][id])
	}
	return out, nil
}

func (f *fakeFleet) agentGet(ctx context.Context, r *agentv1.GetRequest) (*agentv1.AgentResponse, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpGet)
	defer unlock()
	a, err := f.agent(tenant, r.AgentID)
	if err != nil {
		return nil, err
	}
	return &agentv1.AgentResponse{Agent: *a}, nil
}

func (f *fakeFleet) agentUpdate(ctx context.Context, r *agentv1.UpdateRequest) (*agentv1.AgentResponse, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpUpdate)
	defer unlock()
	a, err := f.agent(tenant, r.AgentID)
	if err != nil {
		return nil, err
	}
	c := r.Changes
	if c.Name.HasValue() {
		a.Name = c.Name.Value
	}
	if c.Type.HasValue() {
		a.Type = c.Type.Value
	}
	if c.Description.Set {
		a.Description = c.Description.Value
	}
	if c.Capabilities.Set {
		a.Capabilities = c.Capabilities.Value
		if a.Capabilities == nil {
			a.Capabilities = []agentv1.Capability{}
		}
	}
	if c.Metadata.Set {
		a.Metadata = c.Metadata.Value
	}
	return &agentv1.AgentResponse{Agent: *a}, nil
}

func (f *fakeFleet) agentSetStatus(ctx context.Context, r *agentv1.SetStatusRequest) (*agentv1.AgentResponse, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpSetStatus)
	defer unlock()
	a, err := f.agent(tenant, r.AgentID)
	if err != nil {
		return nil, err
	}
	a.Status = r.Changes.Status
	return &agentv1.AgentResponse{Agent: *a}, nil
}

func (f *fakeFleet) agentDelete(ctx context.Context, r *agentv1.DeleteRequest) (*agentv1.Empty, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpDelete)
	defer unlock()
	if _, err := f.agent(tenant, r.AgentID); err != nil {
		return nil, err
	}
	for id, k := range f.keys[tenant] {
		if k.k.AgentID != nil && *k.k.AgentID == r.AgentID {
			delete(f.keys[tenant], id)
		}
	}
	delete(f.agents[tenant], r.AgentID)
	f.publish(agentv1.SubjectAgentChanged, agentv1.AgentChanged{TenantID: tenant, AgentID: r.AgentID, Change: agentv1.ChangeDeleted})
	return &agentv1.Empty{}, nil
}

func (f *fakeFleet) agentSummary(ctx context.Context, _ *agentv1.StatusSummaryRequest) (*agentv1.StatusSummary, error) {
	tenant, unlock := f.enter(ctx, agentv1.OpStatusSummary)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	out := &agentv1.StatusSummary{}
	for _, a := range f.agents[tenant] {
		out.Total++
		switch a.Status {
		case agentv1.StatusOnline:
			out.Online++
		case agentv1.StatusOffline:
			out.Offline++
		case agentv1.StatusBusy:
			out.Busy++
		case agentv1.StatusIdle:
			out.Idle++
		case agentv1.StatusError:
			out.Error++
		}
	}
	return out, nil
}

// ---- sshkey service ----

func (f *fakeFleet) keyCreate(ctx context.Context, r *sshkeyv1.CreateRequest) (*sshkeyv1.KeyResponse, error) {
	tenant, unlock := f.enter(ctx, sshkeyv1.OpCreate)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	if r.Key.AgentID != "" {
		if _, err := f.agent(tenant, r.Key.AgentID); err != nil {
			return nil, natsrpc.Invalid(natsrpc.FieldError{Field: "agent_id", Message: "is not an agent of this tenant"})
		}
	}
	k, err := f.addKey(tenant, r.Key)
	if err != nil {
		return nil, err
	}
	return &sshkeyv1.KeyResponse{Key: k.k}, nil
}

func (f *fakeFleet) keyList(ctx context.Context, r *sshkeyv1.ListRequest) (*sshkeyv1.ListResponse, error) {
	tenant, unlock := f.enter(ctx, sshkeyv1.OpList)
	defer unlock()
	if err := requireTenant(tenant); err != nil {
		return nil, err
	}
	var ids []string
	for id, k := range f.keys[tenant] {
		if (r.AgentID == "" || k.k.AgentID != nil && *k.k.AgentID == r.AgentID) && (r.KeyType == "" || k.k.KeyType == r.KeyType) {
			ids = append(ids, id)
		}
	}
	got, cursor := page(ids, r.Cursor, r.Limit)
	out := &sshkeyv1.ListResponse{Keys: []sshkeyv1.Key{}, Cursor: cursor}
	for _, id := range got {
		out.Keys = append(out.Keys, f.keys[tenant][id].k)
	}
	return out, nil
}

func (f *fakeFleet) keyGet(ctx context.Context, r *sshkeyv1.GetRequest) (*sshkeyv1.KeyResponse, error) {
	tenant, unlock := f.enter(ctx, sshkeyv1.OpGet)
	defer unlock()
	k, err := f.key(tenant, r.KeyID)
	if err != nil {
		return nil, err
	}
	return &sshkeyv1.KeyResponse{Key: k.k}, nil
}

func (f *fakeFleet) revoke(tenant, id, reason string) (*fakeKey, error) {
	k, err := f.key(tenant, id)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	k.k.Status, k.k.Revoked, k.k.RevokedAt = sshkeyv1.StatusRevoked, true, &now
	if reason != "" {
		k.k.RevocationReason = &reason
	}
	return k, nil
}

func (f *fakeFleet) keyRevoke(ctx context.Context, r *sshkeyv1.RevokeRequest) (*sshkeyv1.KeyResponse, error) {
	tenant, unlock := f.enter(ctx, sshkeyv1.OpRevoke)
	defer unlock()
	k, err := f.revoke(tenant, r.KeyID, r.Changes.Reason)
	if err != nil {
		return nil, err
	}
	f.publish(sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{TenantID: tenant, KeyID: r.KeyID, Change: sshkeyv1.ChangeRevoked})
	return &sshkeyv1.KeyResponse{Key: k.k}, nil
}

func (f *fakeFleet) keyDelete(ctx context.Context, r *sshkeyv1.DeleteRequest) (*sshkeyv1.Empty, error) {
	tenant, unlock := f.enter(ctx, sshkeyv1.OpDelete)
	defer unlock()
	if _, err := f.key(tenant, r.KeyID); err != nil {
		return nil, err
	}
	delete(f.keys[tenant], r.KeyID)
	f.publish(sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{TenantID: tenant, KeyID: r.KeyID, Change: sshkeyv1.ChangeDeleted})
	return &sshkeyv1.Empty{}, nil
}

func (f *fakeFleet) challenge(ctx context.Context, r *sshkeyv1.ChallengeRequest) (*sshkeyv1.Challenge, error) {
	_, unlock := f.enter(ctx, sshkeyv1.OpChallenge)
	defer unlock()
	if f.retryAfter > 0 {
		return nil, natsrpc.RateLimited("too many login attempts from this address", f.retryAfter)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	ch := hex.EncodeToString(b[:])
	out := &sshkeyv1.Challenge{Challenge: ch, ExpiresAt: time.Now().UTC().Add(sshkeyv1.ChallengeTTL), TenantID: r.Login.TenantID}
	if r.Login.KeyID != "" {
		out.KeyID = &r.Login.KeyID
	}
	if r.Login.AgentID != "" {
		out.AgentID = &r.Login.AgentID
	}
	f.challenges[ch] = fakeChallenge{tenant: r.Login.TenantID, keyID: r.Login.KeyID, agentID: r.Login.AgentID, expires: out.ExpiresAt}
	return out, nil
}

func (f *fakeFleet) verify(ctx context.Context, r *sshkeyv1.VerifyRequest) (*sshkeyv1.Verified, error) {
	_, unlock := f.enter(ctx, sshkeyv1.OpVerify)
	defer unlock()
	if f.retryAfter > 0 {
		return nil, natsrpc.RateLimited("too many login attempts from this address", f.retryAfter)
	}
	l := r.Login
	ch, ok := f.challenges[l.Challenge]
	delete(f.challenges, l.Challenge) // consumed by the first attempt, right or wrong
	if !ok || time.Now().After(ch.expires) || ch.tenant != l.TenantID || ch.keyID != l.KeyID || ch.agentID != l.AgentID {
		return nil, sshkeyv1.InvalidSignature()
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(l.Response, "="))
	var sig ssh.Signature
	if err != nil || ssh.Unmarshal(raw, &sig) != nil || sig.Format == ssh.KeyAlgoRSA {
		return nil, sshkeyv1.InvalidSignature()
	}
	for _, k := range f.keys[l.TenantID] {
		if k.pub == nil || k.k.Status != sshkeyv1.StatusActive || k.k.KeyType != sshkeyv1.TypeAgent || k.k.AgentID == nil ||
			(l.KeyID != "" && k.k.ID != l.KeyID) || (l.AgentID != "" && *k.k.AgentID != l.AgentID) {
			continue
		}
		if k.pub.Verify([]byte(l.Challenge), &sig) == nil {
			return &sshkeyv1.Verified{TenantID: l.TenantID, AgentID: *k.k.AgentID, KeyID: k.k.ID}, nil
		}
	}
	return nil, sshkeyv1.InvalidSignature()
}

func (f *fakeFleet) lookupCredential(ctx context.Context, r *sshkeyv1.LookupCredentialRequest) (*sshkeyv1.Empty, error) {
	_, unlock := f.enter(ctx, sshkeyv1.OpLookupCredential)
	defer unlock()
	k, ok := f.keys[r.TenantID][r.KeyID]
	if !ok || k.k.Status != sshkeyv1.StatusActive || k.k.AgentID == nil || *k.k.AgentID != r.AgentID {
		return nil, natsrpc.NotFound("credential not found")
	}
	return &sshkeyv1.Empty{}, nil
}

// ---- fixtures ----

// seedAgent puts an agent named name with id (a fresh ULID when "") in tenant.
func (e *env) seedAgent(tenant, id, name string) string {
	e.t.Helper()
	if id == "" {
		id = ulid.Make().String()
	}
	e.fleet.mu.Lock()
	defer e.fleet.mu.Unlock()
	if _, ok := e.fleet.agents[tenant][id]; !ok {
		e.fleet.putAgent(tenant, newAgent(tenant, id, name))
	}
	return id
}

// seedCredential makes (agent, key) an active agent key of tenant, so tokens minted for
// them pass the revocation check. The key has no public half: it cannot log in.
func (e *env) seedCredential(tenant, agentID, keyID string) {
	e.t.Helper()
	e.seedAgent(tenant, agentID, "agent "+agentID)
	e.fleet.mu.Lock()
	defer e.fleet.mu.Unlock()
	if _, ok := e.fleet.keys[tenant][keyID]; ok {
		return
	}
	agent := agentID
	now := time.Now().UTC()
	e.fleet.putKey(tenant, &fakeKey{k: sshkeyv1.Key{ID: keyID, KeyID: keyID, TenantID: tenant, Name: "seeded",
		KeyType: sshkeyv1.TypeAgent, AgentID: &agent, Status: sshkeyv1.StatusActive, Metadata: map[string]any{},
		CreatedAt: now, UpdatedAt: now}})
}

// newEd25519 returns a fresh key pair as an ssh.Signer and its authorized_keys line.
func newEd25519(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, string(ssh.MarshalAuthorizedKey(s.PublicKey()))
}
