package tenantv1

import "time"

// Internal events of the tenant service. They live outside tenant.> so no tenant can
// ever subscribe to them.
const (
	// SubjectTenantDeleted carries TenantDeleted on the durable platform stream
	// (platform.PlatformStream). Every service consumes it with its own durable consumer
	// to delete the tenant's data; the message id is "tenant-deleted-<tenant id>", so a
	// repeated publish is stored once.
	SubjectTenantDeleted = "platform.tenant.v1.deleted"

	// SubjectTenantChanged carries TenantChanged on core NATS (not stored): a hint for
	// gateway caches to forget a tenant's memberships, API key and status at once.
	SubjectTenantChanged = "notify.tenant.v1.changed"
)

// TenantDeleted is the cascade event.
type TenantDeleted struct {
	TenantID  string    `json:"tenant_id"`
	DeletedAt time.Time `json:"deleted_at"`
	RequestID string    `json:"request_id,omitempty"`
}

// DeletedMsgID is the JetStream message id that makes the deletion event idempotent.
func DeletedMsgID(tenantID string) string { return "tenant-deleted-" + tenantID }

// What changed, in TenantChanged.
const (
	ChangeMembers = "members"
	ChangeAPIKey  = "api_key"
	ChangeStatus  = "status" // status, payment status or plan
	ChangeDeleted = "deleted"
)

// TenantChanged tells caches which tenant to forget.
type TenantChanged struct {
	TenantID string `json:"tenant_id"`
	Change   string `json:"change"`
}
