package sshkey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Login, in two steps (SPEC §4.4, §13 "Agent login"):
//
//   - Challenge: always a fresh challenge for a well-formed request, whatever the state
//     of the tenant or key (no enumeration). It is stored — bound to the tenant and the
//     key_id/agent_id as given — only when an active agent key could answer it, so
//     outsiders cannot grow storage with junk requests.
//   - Verify: the challenge is consumed first (a conditional delete: exactly one attempt
//     wins), then the binding, the key, the signature and the agent are checked. Every
//     failure is the one ErrLoginFailed; only a dependency outage differs (503), which
//     reveals nothing an attacker could not see anyway.

// check re-states the shape rules of a login request (the contract validated them).
func (in Login) check() error {
	if !validation.IsUUID(in.TenantID) {
		return &ValidationError{Field: "tenant_id", Message: "must be a lower-case UUID"}
	}
	if in.KeyID == "" && in.AgentID == "" {
		return &ValidationError{Field: "key_id", Message: "give key_id or agent_id"}
	}
	if in.KeyID != "" && !validation.IsULID(in.KeyID) {
		return &ValidationError{Field: "key_id", Message: "must be a key id"}
	}
	if in.AgentID != "" && !validation.IsULID(in.AgentID) {
		return &ValidationError{Field: "agent_id", Message: "must be an agent id"}
	}
	return nil
}

// Challenge issues a challenge for in.
func (s *Service) Challenge(ctx context.Context, in Login) (Challenge, error) {
	if err := in.check(); err != nil {
		return Challenge{}, err
	}
	if err := s.limit(ctx, s.limits.ChallengesPerAddress, "challenge/address", in.ClientIP); err != nil {
		return Challenge{}, err
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	c := Challenge{
		TenantID: in.TenantID, Value: hex.EncodeToString(b[:]), KeyID: in.KeyID, AgentID: in.AgentID,
		ExpiresAt: s.clock().Add(sshkeyv1.ChallengeTTL),
	}
	keys, err := s.candidates(ctx, in, 1)
	if err != nil {
		return Challenge{}, err
	}
	if len(keys) > 0 {
		if err := s.repo.CreateChallenge(ctx, &c); err != nil {
			return Challenge{}, err
		}
	}
	return c, nil
}

// Verify checks a signed challenge and names who logged in.
func (s *Service) Verify(ctx context.Context, in Login, challenge, response string) (Verified, error) {
	if err := in.check(); err != nil {
		return Verified{}, err
	}
	if err := s.limit(ctx, s.limits.VerifiesPerAddress, "verify/address", in.ClientIP); err != nil {
		return Verified{}, err
	}
	who := "key:" + in.KeyID
	if in.KeyID == "" {
		who = "agent:" + in.AgentID
	}
	if err := s.limit(ctx, s.limits.VerifiesPerKeyAddress, "verify/key+address", in.TenantID, who, in.ClientIP); err != nil {
		return Verified{}, err
	}
	if !isChallenge(challenge) {
		return Verified{}, loginFailed("malformed challenge")
	}

	// Consume first: whatever happens next, this challenge is spent.
	c, err := s.repo.GetChallenge(ctx, in.TenantID, challenge)
	if errors.Is(err, ErrNotFound) {
		return Verified{}, loginFailed("unknown, expired or used challenge")
	}
	if err != nil {
		return Verified{}, err
	}
	err = s.repo.DeleteChallenge(ctx, in.TenantID, challenge, c.Version)
	if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		return Verified{}, loginFailed("challenge used by a concurrent attempt")
	}
	if err != nil {
		return Verified{}, err
	}
	if !s.clock().Before(c.ExpiresAt) {
		return Verified{}, loginFailed("challenge expired")
	}
	if c.KeyID != in.KeyID || c.AgentID != in.AgentID {
		return Verified{}, loginFailed("challenge issued for another key or agent")
	}

	sig, err := DecodeResponse(response)
	if err != nil {
		return Verified{}, err
	}
	keys, err := s.candidates(ctx, in, maxCandidates)
	if err != nil {
		return Verified{}, err
	}
	var match *Key
	for i := range keys {
		pub, err := parseStored(keys[i].PublicKey)
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Str("key_id", keys[i].ID).Msg("stored public key does not parse")
			continue
		}
		if sig.Verify(pub, challenge) == nil {
			match = &keys[i]
			break
		}
	}
	if match == nil {
		return Verified{}, loginFailed("no key of the request verifies the signature")
	}
	if err := s.agents.Lookup(ctx, in.TenantID, match.AgentID); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Verified{}, loginFailed("agent not found")
		}
		return Verified{}, err
	}
	s.touch(ctx, *match)
	return Verified{TenantID: in.TenantID, AgentID: match.AgentID, KeyID: match.ID}, nil
}

func isChallenge(s string) bool {
	if len(s) != sshkeyv1.ChallengeHexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// candidates returns up to want keys that may answer a challenge of in: the named key,
// or the active agent keys of the named agent.
func (s *Service) candidates(ctx context.Context, in Login, want int) ([]Key, error) {
	if in.KeyID != "" {
		k, err := s.repo.GetKey(ctx, in.TenantID, in.KeyID)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !k.CanLogIn(in.AgentID) {
			return nil, nil
		}
		return []Key{k}, nil
	}
	ix := Index{Kind: ByAgent, Value: in.AgentID}
	var out []Key
	cursor := ""
	for read := 0; read < maxCandidates; {
		ids, next, err := s.repo.ListIndex(ctx, in.TenantID, ix, MaxListLimit, cursor)
		if err != nil {
			return nil, err
		}
		read += len(ids)
		if len(ids) > 0 {
			keys, err := s.repo.GetKeys(ctx, in.TenantID, ids)
			if err != nil {
				return nil, err
			}
			for _, k := range keys {
				if k.CanLogIn(in.AgentID) {
					out = append(out, k)
					if len(out) == want {
						return out, nil
					}
				}
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}

// touch records a successful login on the key; best effort (a lost race or an outage
// only loses a last_used timestamp).
func (s *Service) touch(ctx context.Context, k Key) {
	for range 3 {
		now := s.clock()
		k.LastUsed = &now
		err := s.repo.UpdateKey(ctx, &k)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrConflict) {
			zerolog.Ctx(ctx).Warn().Err(err).Str("key_id", k.ID).Msg("recording last_used failed")
			return
		}
		if k, err = s.repo.GetKey(ctx, k.TenantID, k.ID); err != nil {
			return // deleted meanwhile: nothing to record
		}
	}
}

// limit counts one request against perWindow per RateWindow in the bucket named by parts
// (hashed: addresses and ids never appear in keys). Over the limit → RateLimitError
// with the seconds left in the window.
func (s *Service) limit(ctx context.Context, perWindow int64, parts ...string) error {
	if perWindow <= 0 {
		return nil
	}
	now := s.clock()
	window := now.Truncate(RateWindow)
	end := window.Add(RateWindow)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	err := s.repo.Hit(ctx, hex.EncodeToString(sum[:16]), window, perWindow, end)
	if errors.Is(err, ErrConflict) {
		wait := end.Sub(now)
		secs := max(1, int64(math.Ceil(wait.Seconds())))
		return &RateLimitError{
			Detail:     fmt.Sprintf("too many login requests; try again in %d seconds", secs),
			RetryAfter: time.Duration(secs) * time.Second,
		}
	}
	return err
}
