package sshkey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
	"github.com/artcafe-ai/pubsub/services/kit/domain"
)

// Writes of a key, without transactions:
//
//  1. the fingerprint claim F#<fp> (create-if-absent: the uniqueness check, 409),
//  2. the tenant's key counter (+1 with the plan's max: the limit, 402),
//  3. the index entries (by agent, by type),
//  4. the key item last, as the commit.
//
// On failure the earlier steps are undone. After a crash in between, what is left is
// invisible: index entries are checked against the key item on read; a claim whose key
// never appeared is taken over once it is older than the claim grace; the counter may
// count one key too many (it only ever errs towards refusing a create, never towards
// admitting one past the limit). Deletion removes the key item first (the commit, won
// by exactly one deleter), then gives back the count, the claim and the index entries.

func notFoundKey() error { return errorf(ErrNotFound, "ssh key not found") }

func duplicateKey() error {
	return errorf(ErrConflict, "a key with this fingerprint is already registered in this tenant")
}

// Create registers a key in the scope's tenant. An agent_id must name a live agent of
// the tenant (else 422 on agent_id).
func (s *Service) Create(ctx context.Context, sc Scope, in CreateInput) (Key, error) {
	k, pk, p, err := s.prepare(sc, in)
	if err != nil {
		return Key{}, err
	}
	if k.AgentID != "" {
		if err := s.agents.Lookup(ctx, sc.TenantID, k.AgentID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return Key{}, &ValidationError{Field: "agent_id", Message: "is not an agent of this tenant"}
			}
			return Key{}, err
		}
	}
	return s.register(ctx, sc, p, pk, k)
}

// CreateForAgent registers a key of type agent for agentID, which the agent service has
// just created: no lookup (the agent is not visible to lookups until its create is
// done). A key_type or agent_id in the input must agree.
func (s *Service) CreateForAgent(ctx context.Context, sc Scope, agentID string, in CreateInput) (Key, error) {
	if id, ok := sshkeyv1.NormalizeID(agentID); ok {
		agentID = id
	} else {
		return Key{}, errorf(ErrNotFound, "agent not found")
	}
	if in.AgentID != "" && strings.ToUpper(in.AgentID) != agentID {
		return Key{}, &ValidationError{Field: "agent_id", Message: "must be the agent the key is created for"}
	}
	if in.KeyType != "" && in.KeyType != sshkeyv1.TypeAgent {
		return Key{}, &ValidationError{Field: "key_type", Message: "must be agent for an agent's key"}
	}
	in.AgentID, in.KeyType = agentID, sshkeyv1.TypeAgent
	k, pk, p, err := s.prepare(sc, in)
	if err != nil {
		return Key{}, err
	}
	return s.register(ctx, sc, p, pk, k)
}

// CheckPublicKey answers what Create would say about a public key without storing it:
// the parse, type and size rules, the fingerprint not taken, the key limit not reached.
func (s *Service) CheckPublicKey(ctx context.Context, sc Scope, text string) (PublicKey, error) {
	if err := sc.check(); err != nil {
		return PublicKey{}, err
	}
	p, err := sc.plan()
	if err != nil {
		return PublicKey{}, err
	}
	pk, err := ParsePublicKey(text)
	if err != nil {
		return PublicKey{}, err
	}
	taken, err := s.claimTaken(ctx, sc.TenantID, pk.Fingerprint)
	if err != nil {
		return PublicKey{}, err
	}
	if taken {
		return PublicKey{}, duplicateKey()
	}
	if limit := p.Limits.MaxSSHKeys; limit != nil {
		n, err := s.repo.KeyCount(ctx, sc.TenantID)
		if err != nil {
			return PublicKey{}, err
		}
		if n >= *limit {
			return PublicKey{}, limitReached(n, *limit, p.ID)
		}
	}
	return pk, nil
}

func limitReached(n, limit int64, plan string) error {
	return errorf(ErrPlanLimit, "ssh key limit reached: %d of %d on the %s plan", n, limit, plan)
}

// prepare checks the input and builds the key to write (without id and times).
func (s *Service) prepare(sc Scope, in CreateInput) (Key, PublicKey, plans.Plan, error) {
	if err := sc.check(); err != nil {
		return Key{}, PublicKey{}, plans.Plan{}, err
	}
	p, err := sc.plan()
	if err != nil {
		return Key{}, PublicKey{}, plans.Plan{}, err
	}
	if in.Name == "" || utf8.RuneCountInString(in.Name) > validation.MaxName {
		return Key{}, PublicKey{}, plans.Plan{}, &ValidationError{Field: "name", Message: "is required and at most 128 characters"}
	}
	agentID := ""
	if in.AgentID != "" {
		id, ok := sshkeyv1.NormalizeID(in.AgentID)
		if !ok {
			return Key{}, PublicKey{}, plans.Plan{}, &ValidationError{Field: "agent_id", Message: "is not an agent of this tenant"}
		}
		agentID = id
	}
	keyType := in.KeyType
	switch {
	case keyType == "" && agentID != "":
		keyType = sshkeyv1.TypeAgent
	case keyType == "":
		keyType = sshkeyv1.TypeAccess
	case !slices.Contains(sshkeyv1.Types, keyType):
		return Key{}, PublicKey{}, plans.Plan{}, &ValidationError{Field: "key_type", Message: "must be one of access, agent, deployment"}
	}
	if keyType == sshkeyv1.TypeAgent && agentID == "" {
		return Key{}, PublicKey{}, plans.Plan{}, &ValidationError{Field: "agent_id", Message: "is required for keys of type agent"}
	}
	pk, err := ParsePublicKey(in.PublicKey)
	if err != nil {
		return Key{}, PublicKey{}, plans.Plan{}, err
	}
	md := in.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return Key{
		TenantID: sc.TenantID, Name: in.Name, PublicKey: pk.Authorized, KeyType: keyType,
		AgentID: agentID, Fingerprint: pk.Fingerprint, Algorithm: pk.Algorithm,
		Status: sshkeyv1.StatusActive, Metadata: md,
	}, pk, p, nil
}

// register writes a prepared key (see the write order at the top of this file).
func (s *Service) register(ctx context.Context, sc Scope, p plans.Plan, pk PublicKey, k Key) (Key, error) {
	now := s.clock()
	id, err := s.ids.Next(now)
	if err != nil {
		return Key{}, err
	}
	k.ID, k.CreatedAt, k.UpdatedAt = id, now, now
	tenantID := sc.TenantID

	if err := s.claim(ctx, tenantID, pk.Fingerprint, id, now); err != nil {
		return Key{}, err
	}
	undo := domain.Compensation{func(ctx context.Context) error { return s.releaseClaim(ctx, tenantID, pk.Fingerprint, id) }}

	limit := p.Limits.MaxSSHKeys // nil: unlimited, still counted
	if _, err := s.addKeyCount(ctx, tenantID, 1, limit); err != nil {
		undo.Run(ctx)
		if errors.Is(err, ErrConflict) && limit != nil {
			n, cerr := s.repo.KeyCount(ctx, tenantID)
			if cerr != nil {
				n = *limit
			}
			return Key{}, limitReached(n, *limit, p.ID)
		}
		return Key{}, err
	}
	undo = append(undo, func(ctx context.Context) error { return s.uncount(ctx, tenantID) })

	for _, ix := range indexesOf(k) {
		if err := s.repo.PutIndex(ctx, tenantID, ix, id); err != nil {
			undo.Run(ctx)
			return Key{}, err
		}
		undo = append(undo, func(ctx context.Context) error { return s.repo.DeleteIndex(ctx, tenantID, ix, id) })
	}

	if err := s.repo.CreateKey(ctx, &k); err != nil {
		undo.Run(ctx)
		return Key{}, err
	}
	return k, nil
}

func indexesOf(k Key) []Index {
	ixs := []Index{{Kind: ByType, Value: k.KeyType}}
	if k.AgentID != "" {
		ixs = append(ixs, Index{Kind: ByAgent, Value: k.AgentID})
	}
	return ixs
}

// claim reserves fingerprint for keyID, taking over a stale claim (one whose key was
// never written, or was deleted without releasing it) once.
func (s *Service) claim(ctx context.Context, tenantID, fp, keyID string, now time.Time) error {
	for range 2 {
		err := s.repo.CreateClaim(ctx, tenantID, fp, Claim{KeyID: keyID, CreatedAt: now})
		if !errors.Is(err, ErrConflict) {
			return err
		}
		c, err := s.repo.GetClaim(ctx, tenantID, fp)
		if errors.Is(err, ErrNotFound) {
			continue // released meanwhile: try again
		}
		if err != nil {
			return err
		}
		stale, err := s.staleClaim(ctx, tenantID, c)
		if err != nil {
			return err
		}
		if !stale {
			return duplicateKey()
		}
		if err := s.repo.DeleteClaim(ctx, tenantID, fp, c.Version); err != nil && !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return duplicateKey()
}

// staleClaim reports a claim whose key does not exist and that is old enough that no
// create can still be writing it.
func (s *Service) staleClaim(ctx context.Context, tenantID string, c Claim) (bool, error) {
	if s.clock().Sub(c.CreatedAt) < s.claimGrace {
		return false, nil
	}
	_, err := s.repo.GetKey(ctx, tenantID, c.KeyID)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, ErrNotFound):
		return true, nil
	}
	return false, err
}

// claimTaken reports whether fp is reserved by a live (or possibly in-flight) key.
func (s *Service) claimTaken(ctx context.Context, tenantID, fp string) (bool, error) {
	c, err := s.repo.GetClaim(ctx, tenantID, fp)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	stale, err := s.staleClaim(ctx, tenantID, c)
	return !stale, err
}

// releaseClaim deletes fp's claim if it is still keyID's: a create that took over a
// stale claim must not lose it to the old key's clean-up.
func (s *Service) releaseClaim(ctx context.Context, tenantID, fp, keyID string) error {
	c, err := s.repo.GetClaim(ctx, tenantID, fp)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.KeyID != keyID {
		return nil
	}
	if err := s.repo.DeleteClaim(ctx, tenantID, fp, c.Version); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// uncount gives a key back to the tenant's counter (never below zero).
func (s *Service) uncount(ctx context.Context, tenantID string) error {
	if _, err := s.addKeyCount(ctx, tenantID, -1, nil); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// Get returns a key of the scope's tenant.
func (s *Service) Get(ctx context.Context, sc Scope, keyID string) (Key, error) {
	if err := sc.check(); err != nil {
		return Key{}, err
	}
	id, ok := sshkeyv1.NormalizeID(keyID)
	if !ok {
		return Key{}, notFoundKey()
	}
	k, err := s.repo.GetKey(ctx, sc.TenantID, id)
	if errors.Is(err, ErrNotFound) {
		return Key{}, notFoundKey()
	}
	return k, err
}

// List pages through the tenant's keys in id order, filtered. A filtered list reads one
// index (by agent when given, else by type), confirms each entry against its key and
// keeps reading until the page is full or the index ends, so stale entries never make a
// short or empty page.
func (s *Service) List(ctx context.Context, sc Scope, f ListFilter, limit int, cursor string) ([]Key, string, error) {
	if err := sc.check(); err != nil {
		return nil, "", err
	}
	limit = clampLimit(limit)
	if f.AgentID != "" {
		id, ok := sshkeyv1.NormalizeID(f.AgentID)
		if !ok {
			return nil, "", &ValidationError{Field: "agent_id", Message: "must be an agent id"}
		}
		f.AgentID = id
	}
	if f.KeyType != "" && !slices.Contains(sshkeyv1.Types, f.KeyType) {
		return nil, "", &ValidationError{Field: "key_type", Message: "must be one of access, agent, deployment"}
	}
	var ix Index
	switch {
	case f.AgentID != "":
		ix = Index{Kind: ByAgent, Value: f.AgentID}
	case f.KeyType != "":
		ix = Index{Kind: ByType, Value: f.KeyType}
	default:
		return s.repo.ListKeys(ctx, sc.TenantID, limit, cursor)
	}

	out := make([]Key, 0, limit)
	for {
		// Reading exactly what is missing makes the store's cursor land right after the
		// last entry this page consumed.
		ids, next, err := s.repo.ListIndex(ctx, sc.TenantID, ix, limit-len(out), cursor)
		if err != nil {
			return nil, "", err
		}
		found, err := s.confirm(ctx, sc.TenantID, ids, f)
		if err != nil {
			return nil, "", err
		}
		out = append(out, found...)
		cursor = next
		if cursor == "" {
			return out, "", nil
		}
		if len(out) == limit {
			break
		}
	}
	more, err := s.anyConfirmed(ctx, sc.TenantID, ix, f, cursor)
	if err != nil || !more {
		return out, "", err
	}
	return out, cursor, nil
}

func clampLimit(limit int) int {
	switch {
	case limit <= 0:
		return DefaultListLimit
	case limit > MaxListLimit:
		return MaxListLimit
	}
	return limit
}

// peekSize is the page size used to look past a full page for one more key.
const peekSize = 20

func (s *Service) anyConfirmed(ctx context.Context, tenantID string, ix Index, f ListFilter, cursor string) (bool, error) {
	for cursor != "" {
		ids, next, err := s.repo.ListIndex(ctx, tenantID, ix, peekSize, cursor)
		if err != nil {
			return false, err
		}
		found, err := s.confirm(ctx, tenantID, ids, f)
		if err != nil || len(found) > 0 {
			return len(found) > 0, err
		}
		cursor = next
	}
	return false, nil
}

// confirm returns the keys of ids that exist and match f (index entries are hints).
func (s *Service) confirm(ctx context.Context, tenantID string, ids []string, f ListFilter) ([]Key, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys, err := s.repo.GetKeys(ctx, tenantID, ids)
	if err != nil {
		return nil, err
	}
	out := keys[:0]
	for _, k := range keys {
		if (f.AgentID == "" || k.AgentID == f.AgentID) && (f.KeyType == "" || k.KeyType == f.KeyType) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Revoke marks a key revoked: it can no longer log in, and gateways forget it at once.
// Revoking a revoked key changes nothing.
func (s *Service) Revoke(ctx context.Context, sc Scope, keyID, reason string) (Key, error) {
	if err := sc.check(); err != nil {
		return Key{}, err
	}
	if utf8.RuneCountInString(reason) > sshkeyv1.MaxReason {
		return Key{}, &ValidationError{Field: "reason", Message: "must be at most 1024 characters"}
	}
	for attempt := range maxAttempts {
		k, err := s.Get(ctx, sc, keyID)
		if err != nil {
			return Key{}, err
		}
		if !k.Active() {
			return k, nil
		}
		now := s.clock()
		k.Status, k.RevokedAt, k.UpdatedAt = sshkeyv1.StatusRevoked, &now, now
		if reason != "" {
			k.RevocationReason = &reason
		}
		err = s.repo.UpdateKey(ctx, &k)
		if err == nil {
			s.events.KeyChanged(ctx, k, sshkeyv1.ChangeRevoked)
			return k, nil
		}
		if !errors.Is(err, ErrConflict) {
			return Key{}, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return Key{}, err
		}
	}
	return Key{}, errorf(ErrConflict, "the key is being changed by other requests; try again")
}

// Delete removes a key, its claim and its index entries.
func (s *Service) Delete(ctx context.Context, sc Scope, keyID string) error {
	if err := sc.check(); err != nil {
		return err
	}
	for attempt := range maxAttempts {
		k, err := s.Get(ctx, sc, keyID)
		if err != nil {
			return err
		}
		deleted, err := s.deleteKey(ctx, k)
		if err != nil {
			return err
		}
		if deleted {
			return nil
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return errorf(ErrConflict, "the key is being changed by other requests; try again")
}

// deleteKey deletes k at the version read and, when this call won, cleans up after it
// and publishes the change. false: k changed or went meanwhile (re-read and retry).
func (s *Service) deleteKey(ctx context.Context, k Key) (bool, error) {
	err := s.repo.DeleteKey(ctx, k.TenantID, k.ID, k.Version)
	if errors.Is(err, ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// The key is gone (the commit); what follows only tidies up, on a context that
	// survives the request's. Failures leave items that reads ignore.
	tidy := domain.Compensation{
		func(ctx context.Context) error { return s.uncount(ctx, k.TenantID) },
		func(ctx context.Context) error { return s.releaseClaim(ctx, k.TenantID, k.Fingerprint, k.ID) },
	}
	for _, ix := range indexesOf(k) {
		tidy = append(tidy, func(ctx context.Context) error { return s.repo.DeleteIndex(ctx, k.TenantID, ix, k.ID) })
	}
	tidy.Run(ctx)
	s.events.KeyChanged(ctx, k, sshkeyv1.ChangeDeleted)
	return true, nil
}

// DeleteForAgent deletes every key bound to agentID (the agent service calls it before
// it deletes the agent), found through the agent index.
func (s *Service) DeleteForAgent(ctx context.Context, sc Scope, agentID string) error {
	if err := sc.check(); err != nil {
		return err
	}
	id, ok := sshkeyv1.NormalizeID(agentID)
	if !ok {
		return errorf(ErrNotFound, "agent not found")
	}
	ix := Index{Kind: ByAgent, Value: id}
	// Every pass removes each entry it read (with its key, or as stale) or fails, so
	// reading from the start again always makes progress.
	for {
		ids, _, err := s.repo.ListIndex(ctx, sc.TenantID, ix, purgePage, "")
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		keys, err := s.repo.GetKeys(ctx, sc.TenantID, ids)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.AgentID != id {
				continue
			}
			if err := s.deleteKeyRetrying(ctx, k); err != nil {
				return err
			}
		}
		for _, keyID := range ids {
			if err := s.repo.DeleteIndex(ctx, sc.TenantID, ix, keyID); err != nil {
				return err
			}
		}
	}
}

func (s *Service) deleteKeyRetrying(ctx context.Context, k Key) error {
	for attempt := range maxAttempts {
		deleted, err := s.deleteKey(ctx, k)
		if err != nil || deleted {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
		k, err = s.repo.GetKey(ctx, k.TenantID, k.ID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errorf(ErrConflict, "the agent's keys are being changed by other requests; try again")
}

// LookupCredential checks an agent token's key for the gateway: it exists in the
// tenant, is active, is an agent key and is bound to agentID.
func (s *Service) LookupCredential(ctx context.Context, tenantID, agentID, keyID string) error {
	notFound := errorf(ErrNotFound, "credential not found")
	agentID, okA := sshkeyv1.NormalizeID(agentID)
	keyID, okK := sshkeyv1.NormalizeID(keyID)
	if !validation.IsUUID(tenantID) || !okA || !okK {
		return notFound
	}
	k, err := s.repo.GetKey(ctx, tenantID, keyID)
	if errors.Is(err, ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if !k.CanLogIn(agentID) {
		return notFound
	}
	return nil
}

// Purge deletes every item of a deleted tenant (keys, claims, index entries, counter,
// challenges). It is idempotent: the cascade consumer calls it again after a crash or a
// redelivery.
func (s *Service) Purge(ctx context.Context, tenantID string) error {
	if !validation.IsUUID(tenantID) {
		return fmt.Errorf("%w: tenant id %q", ErrScope, tenantID)
	}
	for {
		n, err := s.repo.PurgePage(ctx, tenantID, purgePage)
		if err != nil {
			return err
		}
		if n == 0 {
			zerolog.Ctx(ctx).Debug().Str("tenant_id", tenantID).Msg("ssh keys of a deleted tenant purged")
			return nil
		}
	}
}
