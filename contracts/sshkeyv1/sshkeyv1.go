// Package sshkeyv1 is the contract of the sshkey service: agents' SSH public keys and the
// challenge–response login (SPEC §4.4, §13 "Agent login"). Tenant-scoped operations take
// the tenant from the caller's natsrpc.Identity; the login operations are unauthenticated
// and name the tenant in the body.
package sshkeyv1

import (
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Service is the micro service name; Version is the contract version in its metadata.
const (
	Service = "sshkey"
	Version = "1.0.0"
	Group   = "svc.sshkey.v1"
)

// Endpoints, each served at Group + "." + name.
const (
	OpCreate = "create" // CreateRequest → KeyResponse (201 at the gateway)
	OpList   = "list"   // ListRequest → ListResponse
	OpGet    = "get"    // GetRequest → KeyResponse
	OpRevoke = "revoke" // RevokeRequest → KeyResponse
	OpDelete = "delete" // DeleteRequest → Empty

	// Login (no credentials; rate limited per client address and per key).
	OpChallenge = "challenge" // ChallengeRequest → Challenge
	OpVerify    = "verify"    // VerifyRequest → Verified; the gateway mints the agent token

	// Internal, for other services and the gateway; never mapped to a public route.
	OpCreateForAgent   = "create_for_agent"  // CreateForAgentRequest → KeyResponse (agent service; agent already checked)
	OpDeleteForAgent   = "delete_for_agent"  // DeleteForAgentRequest → Empty (agent service, before it deletes an agent)
	OpLookupCredential = "lookup_credential" // LookupCredentialRequest → Empty; 404 unless the key is active and bound to the agent
	OpCheckPublicKey   = "check_public_key"  // CheckPublicKeyRequest → CheckedPublicKey; 422/409/402 as create would answer
)

// Subject returns the full subject of op.
func Subject(op string) string { return Group + "." + op }

// Key types.
const (
	TypeAccess     = "access"
	TypeAgent      = "agent"
	TypeDeployment = "deployment"
)

// Types lists the valid key types.
var Types = []string{TypeAccess, TypeAgent, TypeDeployment}

// Key statuses.
const (
	StatusActive  = "active"
	StatusRevoked = "revoked"
)

// Bounds and codes.
const (
	MaxPublicKeyBytes = 16 << 10
	MaxReason         = 1024
	MaxMetadataBytes  = validation.MaxMetadataBytes
	// ChallengeHexLen is the length of a challenge: 32 random bytes as lower-case hex.
	ChallengeHexLen = 64
	// ChallengeTTL is how long a challenge may be answered.
	ChallengeTTL = 5 * time.Minute
	// MaxResponseBytes bounds the base64 signature (an RSA-16384 signature fits).
	MaxResponseBytes = 8 << 10
)

// Key is the SSH key resource (SPEC §4.4).
type Key struct {
	ID               string         `json:"id" doc:"ULID, upper-case"`
	KeyID            string         `json:"key_id" doc:"same as id"`
	TenantID         string         `json:"tenant_id" format:"uuid"`
	Name             string         `json:"name"`
	PublicKey        string         `json:"public_key" doc:"OpenSSH authorized_keys form"`
	KeyType          string         `json:"key_type" enum:"access,agent,deployment"`
	AgentID          *string        `json:"agent_id"`
	Fingerprint      string         `json:"fingerprint" doc:"SHA256:…, as ssh-keygen -lf prints it"`
	Algorithm        string         `json:"algorithm" doc:"ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa"`
	Status           string         `json:"status" enum:"active,revoked"`
	Revoked          bool           `json:"revoked"`
	RevokedAt        *time.Time     `json:"revoked_at"`
	RevocationReason *string        `json:"revocation_reason"`
	LastUsed         *time.Time     `json:"last_used"`
	Metadata         map[string]any `json:"metadata"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
}

// Empty is the reply of operations that return nothing.
type Empty struct{}

// NormalizeID upper-cases a key (or agent) id and reports whether it is a ULID.
func NormalizeID(id string) (string, bool) {
	id = strings.ToUpper(id)
	return id, validation.IsULID(id)
}

// CreateBody is the body of POST /ssh-keys.
type CreateBody struct {
	Name      string         `json:"name" minLength:"1" maxLength:"128"`
	PublicKey string         `json:"public_key" minLength:"1" maxLength:"16384" doc:"one OpenSSH public key line (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa ≥ 2048 bits)"`
	KeyType   string         `json:"key_type,omitempty" enum:"access,agent,deployment" doc:"default agent when agent_id is given, else access"`
	AgentID   string         `json:"agent_id,omitempty" doc:"the agent this key logs in as"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// Validate checks shapes only; parsing the key (422 for a bad, short or private key)
// is the service's job, so the key is never echoed or logged by a generic path.
func (b *CreateBody) Validate() error {
	var e validation.Errors
	e.Name("name", b.Name)
	if e.Required("public_key", b.PublicKey) && len(b.PublicKey) > MaxPublicKeyBytes {
		e.Add("public_key", "must be at most %d bytes", MaxPublicKeyBytes)
	}
	e.OneOf("key_type", b.KeyType, Types...)
	if b.AgentID != "" {
		if _, ok := NormalizeID(b.AgentID); !ok {
			e.Add("agent_id", "is not an agent of this tenant")
		}
	}
	if b.KeyType == TypeAgent && b.AgentID == "" {
		e.Add("agent_id", "is required for keys of type agent")
	}
	e.Metadata("metadata", b.Metadata)
	return e.Err()
}

// CreateRequest adds a key to the caller's tenant.
type CreateRequest struct {
	Key CreateBody `json:"key"`
}

func (r *CreateRequest) Validate() error { return r.Key.Validate() }

// CreateForAgentRequest is CreateRequest from the agent service, which has just created
// (or checked) the agent: the key is bound to AgentID with type agent.
type CreateForAgentRequest struct {
	AgentID string     `json:"agent_id"`
	Key     CreateBody `json:"key"`
}

func (r *CreateForAgentRequest) Validate() error {
	if _, ok := NormalizeID(r.AgentID); !ok {
		return natsrpc.NotFound("agent not found")
	}
	return r.Key.Validate()
}

// CheckPublicKeyRequest asks whether a public key could be registered in the caller's
// tenant (parse, type, size, fingerprint unique, key limit) without storing it.
type CheckPublicKeyRequest struct {
	PublicKey string `json:"public_key"`
}

// CheckedPublicKey is a parsed key's identity.
type CheckedPublicKey struct {
	Algorithm   string `json:"algorithm"`
	Fingerprint string `json:"fingerprint"`
}

// KeyResponse carries one key.
type KeyResponse struct {
	Key Key `json:"key"`
}

// ListRequest pages through the tenant's keys, ordered by id.
type ListRequest struct {
	AgentID string `json:"agent_id,omitempty"`
	KeyType string `json:"key_type,omitempty"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
}

func (r *ListRequest) Validate() error {
	var e validation.Errors
	e.OneOf("key_type", r.KeyType, Types...)
	if r.AgentID != "" {
		if _, ok := NormalizeID(r.AgentID); !ok {
			e.Add("agent_id", "must be an agent id")
		}
	}
	e.Limit("limit", r.Limit)
	return e.Err()
}

// ListResponse is one page; Cursor is empty on the last page.
type ListResponse struct {
	Keys   []Key  `json:"keys"`
	Cursor string `json:"cursor,omitempty"`
}

// GetRequest names a key of the caller's tenant.
type GetRequest struct {
	KeyID string `json:"key_id"`
}

func (r *GetRequest) Validate() error { return keyID(r.KeyID) }

// RevokeBody is the body of POST /ssh-keys/{id}/revoke.
type RevokeBody struct {
	Reason string `json:"reason,omitempty" maxLength:"1024"`
}

func (b *RevokeBody) Validate() error {
	var e validation.Errors
	e.MaxLen("reason", b.Reason, MaxReason)
	return e.Err()
}

// RevokeRequest revokes a key: it can no longer log in, and tokens minted with it stop
// working within seconds.
type RevokeRequest struct {
	KeyID   string     `json:"key_id"`
	Changes RevokeBody `json:"changes"`
}

func (r *RevokeRequest) Validate() error {
	if err := keyID(r.KeyID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// DeleteRequest deletes a key.
type DeleteRequest struct {
	KeyID string `json:"key_id"`
}

func (r *DeleteRequest) Validate() error { return keyID(r.KeyID) }

// DeleteForAgentRequest deletes every key bound to an agent of the caller's tenant.
type DeleteForAgentRequest struct {
	AgentID string `json:"agent_id"`
}

func (r *DeleteForAgentRequest) Validate() error {
	if _, ok := NormalizeID(r.AgentID); !ok {
		return natsrpc.NotFound("agent not found")
	}
	return nil
}

// LookupCredentialRequest asks whether an agent token's key is still good: the key
// exists in the tenant, is active and is bound to the agent.
type LookupCredentialRequest struct {
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
	KeyID    string `json:"key_id"`
}

// ChallengeBody is the body of POST /auth/challenge. The tenant may come from
// x-tenant-id instead; key_id or agent_id (or both) name who will answer.
type ChallengeBody struct {
	TenantID string `json:"tenant_id,omitempty" format:"uuid"`
	KeyID    string `json:"key_id,omitempty"`
	AgentID  string `json:"agent_id,omitempty"`
}

// Validate checks shapes. A well-formed request always gets a challenge, whatever the
// state of the tenant or key (no enumeration).
func (b *ChallengeBody) Validate() error {
	var e validation.Errors
	if e.Required("tenant_id", b.TenantID) && !validation.IsUUID(b.TenantID) {
		e.Add("tenant_id", "must be a lower-case UUID")
	}
	loginIDs(&e, b.KeyID, b.AgentID)
	return e.Err()
}

// ChallengeRequest is ChallengeBody as sent to the service.
type ChallengeRequest struct {
	Login ChallengeBody `json:"login"`
}

func (r *ChallengeRequest) Validate() error { return r.Login.Validate() }

// Challenge is what the agent signs: the 64 ASCII characters of Challenge exactly.
type Challenge struct {
	Challenge string    `json:"challenge" doc:"64 lower-case hex characters; sign these ASCII bytes as they are"`
	ExpiresAt time.Time `json:"expires_at"`
	TenantID  string    `json:"tenant_id"`
	KeyID     *string   `json:"key_id"`
	AgentID   *string   `json:"agent_id"`
}

// VerifyBody is the body of POST /auth/verify.
type VerifyBody struct {
	TenantID  string `json:"tenant_id,omitempty" format:"uuid"`
	KeyID     string `json:"key_id,omitempty"`
	AgentID   string `json:"agent_id,omitempty"`
	Challenge string `json:"challenge" minLength:"64" maxLength:"64"`
	Response  string `json:"response" minLength:"1" maxLength:"8192" doc:"standard base64 of an SSH signature blob over the challenge (rsa-sha2-256/512 for RSA; never ssh-rsa SHA-1), or for RSA keys of a raw RSASSA-PKCS1-v1_5 SHA-256 signature"`
}

// Validate checks shapes (422 for missing or ill-typed fields); every well-formed
// attempt that fails afterwards is 401 invalid_signature with one detail.
func (b *VerifyBody) Validate() error {
	var e validation.Errors
	if e.Required("tenant_id", b.TenantID) && !validation.IsUUID(b.TenantID) {
		e.Add("tenant_id", "must be a lower-case UUID")
	}
	loginIDs(&e, b.KeyID, b.AgentID)
	if e.Required("challenge", b.Challenge) && len(b.Challenge) != ChallengeHexLen {
		e.Add("challenge", "must be %d characters", ChallengeHexLen)
	}
	if e.Required("response", b.Response) && len(b.Response) > MaxResponseBytes {
		e.Add("response", "must be at most %d characters", MaxResponseBytes)
	}
	return e.Err()
}

// VerifyRequest is VerifyBody as sent to the service.
type VerifyRequest struct {
	Login VerifyBody `json:"login"`
}

func (r *VerifyRequest) Validate() error { return r.Login.Validate() }

// Verified names who logged in; the gateway mints the agent token from it.
type Verified struct {
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
	KeyID    string `json:"key_id"`
}

// InvalidSignature is the one answer to every well-formed login attempt that fails.
func InvalidSignature() *natsrpc.Error {
	return natsrpc.NewError(401, natsrpc.CodeInvalidSignature, "the challenge response is not valid")
}

func loginIDs(e *validation.Errors, key, agent string) {
	if key == "" && agent == "" {
		e.Add("key_id", "give key_id or agent_id")
	}
	if key != "" {
		if _, ok := NormalizeID(key); !ok {
			e.Add("key_id", "must be a key id")
		}
	}
	if agent != "" {
		if _, ok := NormalizeID(agent); !ok {
			e.Add("agent_id", "must be an agent id")
		}
	}
}

func keyID(id string) error {
	if !validation.IsULID(id) {
		return natsrpc.NotFound("ssh key not found")
	}
	return nil
}
