// Package agentv1 is the contract of the agent service: subjects, request and reply
// types, and its events. Tenant-scoped operations take the tenant from the caller's
// natsrpc.Identity (resolved by the gateway), never from the body.
package agentv1

import (
	"strconv"
	"strings"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Service is the micro service name; Version is the contract version in its metadata.
const (
	Service = "agent"
	Version = "1.0.0"
	Group   = "svc.agent.v1"
)

// Endpoints, each served at Group + "." + name.
const (
	OpCreate        = "create"         // CreateRequest → CreateResponse (201 at the gateway)
	OpList          = "list"           // ListRequest → ListResponse
	OpGet           = "get"            // GetRequest → AgentResponse
	OpUpdate        = "update"         // UpdateRequest → AgentResponse
	OpSetStatus     = "set_status"     // SetStatusRequest → AgentResponse (operator override)
	OpDelete        = "delete"         // DeleteRequest → Empty (its SSH keys go first)
	OpStatusSummary = "status_summary" // StatusSummaryRequest → StatusSummary

	// OpLookup is for the gateway (agent-token revocation) and the sshkey service (an
	// agent must exist in the tenant): LookupRequest → LookupResponse, 404 when absent.
	OpLookup = "lookup"
)

// Subject returns the full subject of op.
func Subject(op string) string { return Group + "." + op }

// Agent types.
const (
	TypeWorker     = "worker"
	TypeSupervisor = "supervisor"
	TypeSpecialist = "specialist"
	TypeSystem     = "system"
	TypeCustom     = "custom"
)

// Types lists the valid agent types.
var Types = []string{TypeWorker, TypeSupervisor, TypeSpecialist, TypeSystem, TypeCustom}

// Agent statuses.
const (
	StatusOnline  = "online"
	StatusOffline = "offline"
	StatusBusy    = "busy"
	StatusIdle    = "idle"
	StatusError   = "error"
)

// Statuses lists the valid agent statuses.
var Statuses = []string{StatusOnline, StatusOffline, StatusBusy, StatusIdle, StatusError}

// Bounds of an agent's fields.
const (
	MaxCapabilities   = 64
	MaxVersion        = 64
	MaxMetadataBytes  = validation.MaxMetadataBytes // encoded JSON of metadata or capability parameters
	MaxPublicKeyBytes = sshkeyv1.MaxPublicKeyBytes
)

// Capability is something an agent can do; `capability=` filters match Name exactly.
type Capability struct {
	Name        string         `json:"name" minLength:"1" maxLength:"128"`
	Description string         `json:"description,omitempty" maxLength:"1024"`
	Version     string         `json:"version,omitempty" maxLength:"64"`
	Parameters  map[string]any `json:"parameters,omitempty"`
}

// Agent is the agent resource (SPEC §4.3).
type Agent struct {
	ID           string         `json:"id" doc:"ULID, upper-case"`
	AgentID      string         `json:"agent_id" doc:"same as id"`
	TenantID     string         `json:"tenant_id" format:"uuid"`
	Name         string         `json:"name"`
	Type         string         `json:"type" enum:"worker,supervisor,specialist,system,custom"`
	Description  string         `json:"description"`
	Status       string         `json:"status" enum:"online,offline,busy,idle,error"`
	Capabilities []Capability   `json:"capabilities" nullable:"false"`
	Metadata     map[string]any `json:"metadata"`
	LastSeen     *time.Time     `json:"last_seen"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// Empty is the reply of operations that return nothing.
type Empty struct{}

// NormalizeID upper-cases an agent id and reports whether it is a ULID; a malformed id
// is a 404 wherever it appears in a path.
func NormalizeID(id string) (string, bool) {
	id = strings.ToUpper(id)
	return id, validation.IsULID(id)
}

// CreateBody is the body of POST /agents.
type CreateBody struct {
	Name         string         `json:"name" minLength:"1" maxLength:"128"`
	Type         string         `json:"type,omitempty" enum:"worker,supervisor,specialist,system,custom" doc:"default worker"`
	Description  string         `json:"description,omitempty" maxLength:"1024"`
	Capabilities []Capability   `json:"capabilities,omitempty" maxItems:"64"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	PublicKey    string         `json:"public_key,omitempty" maxLength:"16384" doc:"an OpenSSH public key; registered as an SSH key of type agent in the same call"`
}

func (b *CreateBody) Validate() error {
	var e validation.Errors
	e.Name("name", b.Name)
	e.OneOf("type", b.Type, Types...)
	e.MaxLen("description", b.Description, validation.MaxDescription)
	capabilities(&e, "capabilities", b.Capabilities)
	e.Metadata("metadata", b.Metadata)
	if len(b.PublicKey) > MaxPublicKeyBytes {
		e.Add("public_key", "must be at most %d bytes", MaxPublicKeyBytes)
	}
	return e.Err()
}

// CreateRequest creates an agent in the caller's tenant.
type CreateRequest struct {
	Agent CreateBody `json:"agent"`
}

func (r *CreateRequest) Validate() error { return r.Agent.Validate() }

// CreateResponse carries the agent and, when public_key was given, its SSH key.
type CreateResponse struct {
	Agent Agent         `json:"agent"`
	Key   *sshkeyv1.Key `json:"key,omitempty"`
}

// ListRequest pages through the tenant's agents, ordered by id; filters match exactly and
// combine with AND.
type ListRequest struct {
	Status     string `json:"status,omitempty"`
	Type       string `json:"type,omitempty"`
	Capability string `json:"capability,omitempty"`
	Limit      int    `json:"limit,omitempty"`
	Cursor     string `json:"cursor,omitempty"`
}

func (r *ListRequest) Validate() error {
	var e validation.Errors
	e.OneOf("status", r.Status, Statuses...)
	e.OneOf("type", r.Type, Types...)
	e.MaxLen("capability", r.Capability, validation.MaxName)
	e.Limit("limit", r.Limit)
	return e.Err()
}

// ListResponse is one page; Cursor is empty on the last page.
type ListResponse struct {
	Agents []Agent `json:"agents"`
	Cursor string  `json:"cursor,omitempty"`
}

// GetRequest names an agent of the caller's tenant.
type GetRequest struct {
	AgentID string `json:"agent_id"`
}

func (r *GetRequest) Validate() error { return agentID(r.AgentID) }

// AgentResponse carries one agent.
type AgentResponse struct {
	Agent Agent `json:"agent"`
}

// UpdateBody is the body of PUT /agents/{id}: absent fields stay, null clears an
// optional one, a value replaces the stored one wholesale.
type UpdateBody struct {
	Name         patch.Field[string]         `json:"name,omitzero" minLength:"1" maxLength:"128"`
	Type         patch.Field[string]         `json:"type,omitzero" enum:"worker,supervisor,specialist,system,custom"`
	Description  patch.Field[string]         `json:"description,omitzero" maxLength:"1024" nullable:"true"`
	Capabilities patch.Field[[]Capability]   `json:"capabilities,omitzero" maxItems:"64" nullable:"true"`
	Metadata     patch.Field[map[string]any] `json:"metadata,omitzero" nullable:"true"`
}

func (b *UpdateBody) Validate() error {
	var e validation.Errors
	if b.Name.Set {
		if b.Name.Null {
			e.Add("name", "cannot be null")
		} else {
			e.Name("name", b.Name.Value)
		}
	}
	if b.Type.Set {
		if b.Type.Null || b.Type.Value == "" {
			e.Add("type", "cannot be null")
		} else {
			e.OneOf("type", b.Type.Value, Types...)
		}
	}
	e.MaxLen("description", b.Description.Value, validation.MaxDescription)
	capabilities(&e, "capabilities", b.Capabilities.Value)
	e.Metadata("metadata", b.Metadata.Value)
	return e.Err()
}

// AgentEditable reports whether an agent acting on its own record may send b: agents may
// change description, capabilities and metadata, not name or type (SPEC §13).
func (b *UpdateBody) AgentEditable() bool { return !b.Name.Set && !b.Type.Set }

// UpdateRequest applies Changes to an agent.
type UpdateRequest struct {
	AgentID string     `json:"agent_id"`
	Changes UpdateBody `json:"changes"`
}

func (r *UpdateRequest) Validate() error {
	if err := agentID(r.AgentID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// SetStatusBody is the body of PUT /agents/{id}/status.
type SetStatusBody struct {
	Status string `json:"status" enum:"online,offline,busy,idle,error"`
}

func (b *SetStatusBody) Validate() error {
	var e validation.Errors
	if e.Required("status", b.Status) {
		e.OneOf("status", b.Status, Statuses...)
	}
	return e.Err()
}

// SetStatusRequest sets an agent's status by hand; it stands until the agent's next
// presence change.
type SetStatusRequest struct {
	AgentID string        `json:"agent_id"`
	Changes SetStatusBody `json:"changes"`
}

func (r *SetStatusRequest) Validate() error {
	if err := agentID(r.AgentID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// DeleteRequest deletes an agent; its SSH keys are deleted first, so no key of a deleted
// agent can log in.
type DeleteRequest struct {
	AgentID string `json:"agent_id"`
}

func (r *DeleteRequest) Validate() error { return agentID(r.AgentID) }

// StatusSummaryRequest asks for the tenant's agent counts by status.
type StatusSummaryRequest struct{}

// StatusSummary counts the tenant's agents by status.
type StatusSummary struct {
	Online  int64 `json:"online"`
	Offline int64 `json:"offline"`
	Busy    int64 `json:"busy"`
	Idle    int64 `json:"idle"`
	Error   int64 `json:"error"`
	Total   int64 `json:"total"`
}

// LookupRequest asks whether an agent exists in a tenant (TenantID given explicitly: the
// caller is the gateway or a service, not a tenant member).
type LookupRequest struct {
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
}

func (r *LookupRequest) Validate() error {
	if !validation.IsUUID(r.TenantID) {
		return natsrpc.NotFound("agent not found")
	}
	return agentID(r.AgentID)
}

// LookupResponse is a live agent's status.
type LookupResponse struct {
	AgentID string `json:"agent_id"`
	Status  string `json:"status"`
}

func agentID(id string) error {
	if !validation.IsULID(id) {
		return natsrpc.NotFound("agent not found")
	}
	return nil
}

func capabilities(e *validation.Errors, field string, cs []Capability) {
	if len(cs) > MaxCapabilities {
		e.Add(field, "must have at most %d entries", MaxCapabilities)
		return
	}
	seen := map[string]bool{}
	for i, c := range cs {
		f := field + "[" + strconv.Itoa(i) + "]"
		e.Name(f+".name", c.Name)
		if seen[c.Name] {
			e.Add(f+".name", "appears twice")
		}
		seen[c.Name] = true
		e.MaxLen(f+".description", c.Description, validation.MaxDescription)
		e.MaxLen(f+".version", c.Version, MaxVersion)
		e.Metadata(f+".parameters", c.Parameters)
	}
}
