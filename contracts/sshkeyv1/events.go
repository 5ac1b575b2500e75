package sshkeyv1

// SubjectKeyChanged carries KeyChanged on core NATS (not stored): a hint for gateway
// caches to forget a key at once, so tokens minted with a revoked or deleted key fail.
const SubjectKeyChanged = "notify.sshkey.v1.changed"

// What changed, in KeyChanged.
const (
	ChangeRevoked = "revoked"
	ChangeDeleted = "deleted"
)

// KeyChanged tells caches which key to forget.
type KeyChanged struct {
	TenantID string `json:"tenant_id"`
	KeyID    string `json:"key_id"`
	AgentID  string `json:"agent_id,omitempty"`
	Change   string `json:"change"`
}
