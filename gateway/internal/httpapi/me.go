package httpapi

import (
	"net/http"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// Me is GET /api/v1/me: who the caller is and, when a tenant can be resolved for the
// request (x-tenant-id, token claim, or a single membership), their standing in it.
type Me struct {
	Kind          string     `json:"kind" enum:"user,agent,api_key"`
	UserID        string     `json:"user_id,omitempty"`
	Email         string     `json:"email,omitempty"`
	AgentID       string     `json:"agent_id,omitempty"`
	KeyID         string     `json:"key_id,omitempty" doc:"the SSH key an agent logged in with"`
	TenantID      string     `json:"tenant_id,omitempty" format:"uuid"`
	Role          string     `json:"role,omitempty" enum:"owner,admin,member,viewer"`
	PlatformAdmin bool       `json:"platform_admin,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty" doc:"when the token expires; absent for API keys"`
}

func (a *api) me(r *request) error {
	p := r.principal
	m := Me{Kind: string(p.Kind), TenantID: r.access.TenantID, Role: r.access.Role, PlatformAdmin: p.PlatformAdmin}
	switch p.Kind {
	case natsrpc.KindUser:
		m.UserID, m.Email = p.UserID, p.Email
	case natsrpc.KindAgent:
		m.AgentID, m.KeyID = p.AgentID, p.KeyID
		if m.TenantID == "" {
			m.TenantID = p.TenantID
		}
	case natsrpc.KindAPIKey:
		if m.TenantID == "" {
			m.TenantID = p.TenantID
		}
	}
	if !p.ExpiresAt.IsZero() {
		exp := p.ExpiresAt.UTC()
		m.ExpiresAt = &exp
	}
	return r.reply(http.StatusOK, m)
}
