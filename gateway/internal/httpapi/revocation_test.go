package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// TestAgentTokenRevocation: an agent token stands while its key does, the answer is
// cached, and a KeyChanged event ends it at once — not after the cache's TTL.
func TestAgentTokenRevocation(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	self := e.seedAgent(tenantID, "", "me")
	agent := bearer(e.agentToken(tenantID, self))
	path := "/api/v1/agents/" + self

	e.expect(e.do("GET", path, nil, agent), 200, "")
	calls := e.fleet.callCount(sshkeyv1.OpLookupCredential)
	e.expect(e.do("GET", path, nil, agent), 200, "")
	if got := e.fleet.callCount(sshkeyv1.OpLookupCredential); got != calls {
		t.Fatalf("credential asked again within the cache TTL (%d → %d)", calls, got)
	}

	// Revoked without telling anyone: the cached answer still stands (this is what the
	// event below is for)...
	e.fleet.mu.Lock()
	if _, err := e.fleet.revoke(tenantID, testKeyID, ""); err != nil {
		t.Fatal(err)
	}
	e.fleet.mu.Unlock()
	e.expect(e.do("GET", path, nil, agent), 200, "")
	// ...and the KeyChanged hint ends it at once.
	n := e.hintCount(sshkeyv1.SubjectKeyChanged)
	e.fleet.publish(sshkeyv1.SubjectKeyChanged, sshkeyv1.KeyChanged{TenantID: tenantID, KeyID: testKeyID, Change: sshkeyv1.ChangeRevoked})
	e.waitHints(sshkeyv1.SubjectKeyChanged, n+1)
	r := e.do("GET", path, nil, agent)
	e.expect(r, 401, "token_revoked")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
	e.expect(e.do("GET", "/api/v1/me", nil, agent), 401, "token_revoked")
}

// TestAgentTokenEndsWithItsAgentAndKey: deleting the agent or revoking/deleting the key
// through the API ends tokens at once (the services' hints reach the checker).
func TestAgentTokenEndsWithItsAgentAndKey(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name    string
		subject string
		method  string
		path    func(agentID string) string
	}{
		{"key revoked", sshkeyv1.SubjectKeyChanged, "POST", func(string) string { return "/api/v1/ssh-keys/" + testKeyID + "/revoke" }},
		{"key deleted", sshkeyv1.SubjectKeyChanged, "DELETE", func(string) string { return "/api/v1/ssh-keys/" + testKeyID }},
		{"agent deleted", agentv1.SubjectAgentChanged, "DELETE", func(id string) string { return "/api/v1/agents/" + id }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			owner := fmt.Sprintf("owner%d", i) // one tenant each: the token needs no header
			tenantID, key := e.seedTenant(owner)
			self := e.seedAgent(tenantID, "", c.name)
			agent := bearer(e.agentToken(tenantID, self))
			e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 200, "") // cached: it stands
			n := e.hintCount(c.subject)
			creds := bearer(e.userToken(owner))
			if i%2 == 1 {
				creds = apiKey(key)
			}
			if r := e.do(c.method, c.path(self), nil, creds); r.status >= 300 {
				t.Fatalf("ending it: %d %s", r.status, r.body)
			}
			e.waitHints(c.subject, n+1)
			e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 401, "token_revoked")
		})
	}
}

// TestAgentTokenOfDeletedTenant: the tenant-deleted hint ends its agents' tokens at once.
func TestAgentTokenOfDeletedTenant(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	self := e.seedAgent(tenantID, "", "me")
	agent := bearer(e.agentToken(tenantID, self))
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 200, "")

	e.expect(e.do("DELETE", "/api/v1/tenants/"+tenantID, nil, bearer(e.userToken("owen"))), 204, "")
	n := e.hintCount(tenantv1.SubjectTenantChanged)
	e.fleet.publish(tenantv1.SubjectTenantChanged, tenantv1.TenantChanged{TenantID: tenantID, Change: tenantv1.ChangeDeleted})
	e.waitHints(tenantv1.SubjectTenantChanged, n+1)
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, agent), 401, "token_revoked")
}

// TestAgentTokenWhenSSHKeyServiceIsDown: an agent token that cannot be checked is 503,
// never a 401 and never let through.
func TestAgentTokenWhenSSHKeyServiceIsDown(t *testing.T) {
	e := newEnv(t)
	tenantID, _ := e.seedTenant("owen")
	self := e.seedAgent(tenantID, "", "me")
	agent := bearer(e.agentToken(tenantID, self))
	for _, svc := range e.fleet.svcs {
		if svc.Info().Name == sshkeyv1.Service {
			if err := svc.Stop(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := e.fleet.nc.Flush(); err != nil { // the server has the unsubscriptions
		t.Fatal(err)
	}
	r := e.do("GET", "/api/v1/agents/"+self, nil, agent)
	e.expect(r, http.StatusServiceUnavailable, "service_unavailable")
	// Users are not affected.
	e.expect(e.do("GET", "/api/v1/agents/"+self, nil, bearer(e.userToken("owen"))), 200, "")
}
