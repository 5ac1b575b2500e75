package agentv1

// SubjectAgentChanged carries AgentChanged on core NATS (not stored): a hint for gateway
// caches (agent-token checks) to forget an agent at once.
const SubjectAgentChanged = "notify.agent.v1.changed"

// What changed, in AgentChanged.
const (
	ChangeDeleted = "deleted"
)

// AgentChanged tells caches which agent to forget.
type AgentChanged struct {
	TenantID string `json:"tenant_id"`
	AgentID  string `json:"agent_id"`
	Change   string `json:"change"`
}
