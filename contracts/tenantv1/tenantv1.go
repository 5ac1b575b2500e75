// Package tenantv1 is the contract of the tenant service: subjects, request and reply
// types, and its events.
package tenantv1

import (
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// Service is the micro service name; Version is the contract version in its metadata.
const (
	Service = "tenant"
	Version = "1.0.0"
	Group   = "svc.tenant.v1"
)

// Endpoints, each served at Group + "." + name (svc.tenant.v1.<op>).
const (
	OpCreate        = "create"         // CreateRequest → CreateResponse (identity: user)
	OpList          = "list"           // ListRequest → ListResponse (the caller's tenants)
	OpGet           = "get"            // GetRequest → TenantResponse
	OpUpdate        = "update"         // UpdateRequest → TenantResponse
	OpSetPlan       = "set_plan"       // SetPlanRequest → TenantResponse (platform admin)
	OpDelete        = "delete"         // DeleteRequest → Empty (owner)
	OpRotateAPIKey  = "rotate_api_key" // RotateAPIKeyRequest → RotateAPIKeyResponse
	OpMembersList   = "members_list"   // MembersListRequest → MembersListResponse
	OpMembersAdd    = "members_add"    // MembersAddRequest → MemberResponse
	OpMembersUpdate = "members_update" // MembersUpdateRequest → MemberResponse
	OpMembersRemove = "members_remove" // MembersRemoveRequest → Empty
	OpBilling       = "billing"        // BillingRequest → BillingResponse (the identity's tenant)

	// Lookups for the gateway's authentication; called with a system identity.
	OpLookupMembership  = "lookup_membership"   // LookupMembershipRequest → Membership
	OpLookupUserTenants = "lookup_user_tenants" // LookupUserTenantsRequest → LookupUserTenantsResponse
	OpLookupAPIKey      = "lookup_api_key"      // LookupAPIKeyRequest → LookupAPIKeyResponse
	OpLookupTenant      = "lookup_tenant"       // LookupTenantRequest → TenantStanding
)

// Subject returns the full subject of op.
func Subject(op string) string { return Group + "." + op }

// Tenant statuses and payment statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"

	PaymentTrial   = "trial"
	PaymentActive  = "active"
	PaymentPastDue = "past_due"
)

// MaxOwnedTenants is how many tenants one user may own (platform admins excepted).
const MaxOwnedTenants = 10

// MaxTrialDays is the longest trial a user may ask for (platform admins excepted).
const MaxTrialDays = 30

// APIKeyPrefix starts every tenant API key.
const APIKeyPrefix = "art_"

// Tenant is the tenant resource (SPEC §4.2).
type Tenant struct {
	ID                    string         `json:"id" format:"uuid"`
	TenantID              string         `json:"tenant_id" format:"uuid"`
	Name                  string         `json:"name"`
	AdminEmail            string         `json:"admin_email"`
	SubscriptionTier      string         `json:"subscription_tier" enum:"free,basic,pro,enterprise"`
	Status                string         `json:"status" enum:"active,suspended"`
	PaymentStatus         string         `json:"payment_status" enum:"trial,active,past_due"`
	SubscriptionExpiresAt *time.Time     `json:"subscription_expires_at"`
	Limits                plans.Limits   `json:"limits"`
	Metadata              map[string]any `json:"metadata"`
	Description           *string        `json:"description"`
	Website               *string        `json:"website"`
	LogoURL               *string        `json:"logo_url"`
	PrimaryColor          *string        `json:"primary_color"`
	SecondaryColor        *string        `json:"secondary_color"`
	CreatedAt             time.Time      `json:"created_at"`
	UpdatedAt             time.Time      `json:"updated_at"`
	// Role is the caller's role, set on list entries.
	Role string `json:"role,omitempty" enum:"owner,admin,member,viewer"`
}

// Member is one user's membership of a tenant.
type Member struct {
	ID       string    `json:"id"`
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	Role     string    `json:"role" enum:"owner,admin,member,viewer"`
	JoinedAt time.Time `json:"joined_at"`
}

// Empty is the reply of operations that return nothing.
type Empty struct{}

// CreateRequest is the body of POST /tenants.
type CreateRequest struct {
	Name             string         `json:"name" maxLength:"128" minLength:"1"`
	AdminEmail       string         `json:"admin_email" maxLength:"254" format:"email"`
	SubscriptionTier string         `json:"subscription_tier,omitempty" enum:"free,basic,pro,enterprise" doc:"default basic; only a platform admin may choose enterprise"`
	Metadata         map[string]any `json:"metadata,omitempty"`
	TrialDays        int            `json:"trial_days,omitempty" minimum:"0" maximum:"365" doc:"at most 30 unless platform admin"`
}

func (r *CreateRequest) Validate() error {
	var e validation.Errors
	e.Name("name", r.Name)
	if e.Required("admin_email", r.AdminEmail) {
		e.Email("admin_email", r.AdminEmail)
	}
	e.OneOf("subscription_tier", r.SubscriptionTier, plans.Free, plans.Basic, plans.Pro, plans.Enterprise)
	if r.TrialDays < 0 || r.TrialDays > 365 {
		e.Add("trial_days", "must be between 0 and 365")
	}
	return e.Err()
}

// CreateResponse carries the API key in clear, once.
type CreateResponse struct {
	TenantID string `json:"tenant_id"`
	Tenant   Tenant `json:"tenant"`
	APIKey   string `json:"api_key"`
}

// ListRequest pages through the caller's tenants. Cursor is the store cursor of the
// previous page (the gateway signs it into next_token).
type ListRequest struct {
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

func (r *ListRequest) Validate() error {
	var e validation.Errors
	e.Limit("limit", r.Limit)
	return e.Err()
}

// ListResponse is one page; Cursor is empty on the last page.
type ListResponse struct {
	Tenants []Tenant `json:"tenants"`
	Cursor  string   `json:"cursor,omitempty"`
}

// GetRequest names a tenant.
type GetRequest struct {
	TenantID string `json:"tenant_id"`
}

func (r *GetRequest) Validate() error { return tenantID(r.TenantID) }

// TenantResponse carries one tenant.
type TenantResponse struct {
	Tenant Tenant `json:"tenant"`
}

// UpdateBody is the body of PUT /tenants/{id}: only these fields are writable there.
// Absent fields stay; null clears an optional field.
type UpdateBody struct {
	Name           patch.Field[string]         `json:"name,omitzero" maxLength:"128" minLength:"1"`
	AdminEmail     patch.Field[string]         `json:"admin_email,omitzero" maxLength:"254" format:"email"`
	Metadata       patch.Field[map[string]any] `json:"metadata,omitzero" nullable:"true"`
	Description    patch.Field[string]         `json:"description,omitzero" maxLength:"1024" nullable:"true"`
	Website        patch.Field[string]         `json:"website,omitzero" maxLength:"2048" format:"uri" nullable:"true"`
	LogoURL        patch.Field[string]         `json:"logo_url,omitzero" maxLength:"2048" format:"uri" nullable:"true"`
	PrimaryColor   patch.Field[string]         `json:"primary_color,omitzero" pattern:"^#[0-9A-Fa-f]{6}$" nullable:"true"`
	SecondaryColor patch.Field[string]         `json:"secondary_color,omitzero" pattern:"^#[0-9A-Fa-f]{6}$" nullable:"true"`
}

func (b *UpdateBody) validate(e *validation.Errors) {
	if b.Name.Set {
		if b.Name.Null {
			e.Add("name", "cannot be null")
		} else {
			e.Name("name", b.Name.Value)
		}
	}
	if b.AdminEmail.Set {
		if b.AdminEmail.Null || b.AdminEmail.Value == "" {
			e.Add("admin_email", "is required")
		} else {
			e.Email("admin_email", b.AdminEmail.Value)
		}
	}
	e.MaxLen("description", b.Description.Value, validation.MaxDescription)
	e.HTTPSURL("website", b.Website.Value)
	e.HTTPSURL("logo_url", b.LogoURL.Value)
	e.Color("primary_color", b.PrimaryColor.Value)
	e.Color("secondary_color", b.SecondaryColor.Value)
}

// Validate checks the body alone (the gateway calls it before the tenant id is known).
func (b *UpdateBody) Validate() error {
	var e validation.Errors
	b.validate(&e)
	return e.Err()
}

// UpdateRequest applies Changes to a tenant.
type UpdateRequest struct {
	TenantID string     `json:"tenant_id"`
	Changes  UpdateBody `json:"changes"`
}

func (r *UpdateRequest) Validate() error {
	if err := tenantID(r.TenantID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// SetPlanBody is the body of PUT /tenants/{id}/plan (platform admins only).
type SetPlanBody struct {
	SubscriptionTier string `json:"subscription_tier,omitempty" enum:"free,basic,pro,enterprise"`
	Status           string `json:"status,omitempty" enum:"active,suspended"`
	PaymentStatus    string `json:"payment_status,omitempty" enum:"trial,active,past_due"`
}

func (b *SetPlanBody) Validate() error {
	var e validation.Errors
	if b.SubscriptionTier == "" && b.Status == "" && b.PaymentStatus == "" {
		e.Add("subscription_tier", "give subscription_tier, status or payment_status")
	}
	e.OneOf("subscription_tier", b.SubscriptionTier, plans.Free, plans.Basic, plans.Pro, plans.Enterprise)
	e.OneOf("status", b.Status, StatusActive, StatusSuspended)
	e.OneOf("payment_status", b.PaymentStatus, PaymentTrial, PaymentActive, PaymentPastDue)
	return e.Err()
}

// SetPlanRequest changes plan or status.
type SetPlanRequest struct {
	TenantID string      `json:"tenant_id"`
	Changes  SetPlanBody `json:"changes"`
}

func (r *SetPlanRequest) Validate() error {
	if err := tenantID(r.TenantID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// DeleteRequest deletes a tenant and, through TenantDeleted, everything it owns.
type DeleteRequest struct {
	TenantID string `json:"tenant_id"`
}

func (r *DeleteRequest) Validate() error { return tenantID(r.TenantID) }

// RotateAPIKeyRequest replaces a tenant's API key; the old one stops working at once.
type RotateAPIKeyRequest struct {
	TenantID string `json:"tenant_id"`
}

func (r *RotateAPIKeyRequest) Validate() error { return tenantID(r.TenantID) }

// RotateAPIKeyResponse carries the new key in clear, once.
type RotateAPIKeyResponse struct {
	APIKey string `json:"api_key"`
}

// MembersListRequest pages through a tenant's members.
type MembersListRequest struct {
	TenantID string `json:"tenant_id"`
	Limit    int    `json:"limit,omitempty"`
	Cursor   string `json:"cursor,omitempty"`
}

func (r *MembersListRequest) Validate() error {
	if err := tenantID(r.TenantID); err != nil {
		return err
	}
	var e validation.Errors
	e.Limit("limit", r.Limit)
	return e.Err()
}

// MembersListResponse is one page of members.
type MembersListResponse struct {
	Members []Member `json:"members"`
	Cursor  string   `json:"cursor,omitempty"`
}

// MaxUserID bounds user ids (OIDC sub values).
const MaxUserID = 256

// MemberAddBody is the body of POST /tenants/{id}/members.
type MemberAddBody struct {
	UserID string `json:"user_id" minLength:"1" maxLength:"256"`
	Email  string `json:"email,omitempty" maxLength:"254" format:"email"`
	Role   string `json:"role" enum:"owner,admin,member,viewer"`
}

func (b *MemberAddBody) Validate() error {
	var e validation.Errors
	if e.Required("user_id", b.UserID) {
		e.MaxLen("user_id", b.UserID, MaxUserID)
	}
	e.Email("email", b.Email)
	if e.Required("role", b.Role) {
		e.OneOf("role", b.Role, "owner", "admin", "member", "viewer")
	}
	return e.Err()
}

// MembersAddRequest adds a member.
type MembersAddRequest struct {
	TenantID string        `json:"tenant_id"`
	Member   MemberAddBody `json:"member"`
}

func (r *MembersAddRequest) Validate() error {
	if err := tenantID(r.TenantID); err != nil {
		return err
	}
	return r.Member.Validate()
}

// MemberUpdateBody is the body of PUT /tenants/{id}/members/{user_id}.
type MemberUpdateBody struct {
	Role string `json:"role" enum:"owner,admin,member,viewer"`
}

func (b *MemberUpdateBody) Validate() error {
	var e validation.Errors
	if e.Required("role", b.Role) {
		e.OneOf("role", b.Role, "owner", "admin", "member", "viewer")
	}
	return e.Err()
}

// MembersUpdateRequest changes a member's role.
type MembersUpdateRequest struct {
	TenantID string           `json:"tenant_id"`
	UserID   string           `json:"user_id"`
	Changes  MemberUpdateBody `json:"changes"`
}

func (r *MembersUpdateRequest) Validate() error {
	if err := tenantID(r.TenantID); err != nil {
		return err
	}
	return r.Changes.Validate()
}

// MemberResponse carries one member.
type MemberResponse struct {
	Member Member `json:"member"`
}

// MembersRemoveRequest removes a member.
type MembersRemoveRequest struct {
	TenantID string `json:"tenant_id"`
	UserID   string `json:"user_id"`
}

func (r *MembersRemoveRequest) Validate() error { return tenantID(r.TenantID) }

// LookupMembershipRequest asks for UserID's role in TenantID.
type LookupMembershipRequest struct {
	TenantID string `json:"tenant_id"`
	UserID   string `json:"user_id"`
}

func (r *LookupMembershipRequest) Validate() error { return tenantID(r.TenantID) }

// Membership is a user's role in a tenant with the tenant's standing; 404 when the user
// is not a member (or the tenant does not exist).
type Membership struct {
	TenantID     string `json:"tenant_id"`
	Role         string `json:"role"`
	TenantStatus string `json:"tenant_status"`
	TenantTier   string `json:"tenant_tier"`
}

// LookupUserTenantsRequest lists up to Limit of a user's memberships (tenant
// resolution needs only to know whether there is exactly one).
type LookupUserTenantsRequest struct {
	UserID string `json:"user_id"`
	Limit  int    `json:"limit,omitempty"`
}

// LookupUserTenantsResponse lists memberships, ordered by tenant id.
type LookupUserTenantsResponse struct {
	Memberships []Membership `json:"memberships"`
	More        bool         `json:"more"`
}

// LookupAPIKeyRequest finds the tenant of an API key by the key's SHA-256 (hex). The key
// itself never travels past the gateway.
type LookupAPIKeyRequest struct {
	KeyHash string `json:"key_hash"`
}

// LookupAPIKeyResponse names the key's tenant; 404 for an unknown or rotated key.
type LookupAPIKeyResponse struct {
	TenantID     string `json:"tenant_id"`
	TenantStatus string `json:"tenant_status"`
	TenantTier   string `json:"tenant_tier"`
}

// LookupTenantRequest asks for a tenant's standing (the gateway, for agent tokens).
type LookupTenantRequest struct {
	TenantID string `json:"tenant_id"`
}

func (r *LookupTenantRequest) Validate() error { return tenantID(r.TenantID) }

// TenantStanding is what callers need to know of a live tenant; 404 when it does not
// exist or is being deleted.
type TenantStanding struct {
	TenantID     string `json:"tenant_id"`
	TenantStatus string `json:"tenant_status"`
	TenantTier   string `json:"tenant_tier"`
}

// tenantID makes a malformed id a 404 (SPEC §13). A fresh error each time: a shared
// *natsrpc.Error could be changed by one caller under another.
func tenantID(id string) error {
	if !validation.IsUUID(id) {
		return natsrpc.NotFound("tenant not found")
	}
	return nil
}

// BillingRequest asks for the billing view of the caller's tenant (from the identity).
type BillingRequest struct{}

// BillingResponse is GET /billing (SPEC §4.7): the plan, its monthly price as a JSON number
// in USD, the payment status and the next billing date (the end of the trial while in
// trial, else the next monthly anniversary of the tenant's creation).
type BillingResponse struct {
	TenantID        string  `json:"tenant_id" format:"uuid"`
	Plan            string  `json:"plan" enum:"free,basic,pro,enterprise"`
	BillingCycle    string  `json:"billing_cycle" enum:"monthly"`
	NextBillingDate string  `json:"next_billing_date" format:"date"`
	Amount          float64 `json:"amount"`
	Currency        string  `json:"currency" enum:"USD"`
	Status          string  `json:"status" enum:"trial,active,past_due"`
}
