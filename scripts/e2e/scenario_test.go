package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

const (
	get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
)

// step runs one part of a story; the story stops at the first failed step.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}

// story is what the scenario leaves behind for the restart check.
type story struct {
	alice, dave     string   // user tokens
	deletedTenant   string   // deleted at the end of the scenario
	deletedAPIKey   string   // its last API key
	daveTenants     []string // the 12 tenants dave belongs to
	daveOwnedTenant string
	agents          agentStory // the agents scenario's
}

// tenantPath is /api/v1/tenants/<id><rest>.
func tenantPath(id string, rest ...string) string {
	return "/api/v1/tenants/" + id + strings.Join(rest, "")
}

// limit reads a numeric limit of a tenant (JSON numbers decode as float64).
func limit(t *testing.T, tn tenantJSON, name string) float64 {
	t.Helper()
	v, ok := tn.Limits[name].(float64)
	if !ok {
		t.Fatalf("limits.%s = %v (%T), want a number", name, tn.Limits[name], tn.Limits[name])
	}
	return v
}

// listAll pages through GET /api/v1/tenants with limit and returns the pages.
func listAll(t *testing.T, c *client, tok string, lim int) [][]tenantJSON {
	t.Helper()
	var pages [][]tenantJSON
	next := ""
	for range 20 {
		q := url.Values{"limit": {fmt.Sprint(lim)}}
		if next != "" {
			q.Set("next_token", next)
		}
		var l tenantList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/tenants?"+q.Encode(), bearer(tok))
		if l.NextToken != nil && len(l.Tenants) == 0 {
			t.Fatalf("empty page with a next_token (page %d)", len(pages)+1)
		}
		if len(l.Tenants) > lim {
			t.Fatalf("page of %d with limit %d", len(l.Tenants), lim)
		}
		pages = append(pages, l.Tenants)
		if l.NextToken == nil {
			return pages
		}
		next = *l.NextToken
	}
	t.Fatal("more than 20 pages")
	return nil
}

func ids(pages [][]tenantJSON) []string {
	var out []string
	for _, p := range pages {
		for _, tn := range p {
			out = append(out, tn.ID)
		}
	}
	return out
}

// runScenario is the user story of SPEC §4.2 over HTTP, with the §13 rules it touches.
// It fills st as it goes, so a later check can use what was done before a failure.
func runScenario(t *testing.T, env stackEnv, c *client, st *story) {
	alice := env.token(t, "-sub", "e2e-alice")
	bob := env.token(t, "-sub", "e2e-bob")
	carol := env.token(t, "-sub", "e2e-carol")
	ops := env.token(t, "-sub", "e2e-ops", "-role", "platform_admin")
	st.alice = alice

	step(t, "credentials", func(t *testing.T) {
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, "/api/v1/tenants")
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, "/api/v1/tenants", bearer("garbage"))
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, "/api/v1/me", header("Authorization", "Basic Zm9vOmJhcg=="))
		other := env
		other.Secret = testkit.RandomHex(t, 32)
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, "/api/v1/me", bearer(other.token(t, "-sub", "e2e-alice")))
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, "/api/v1/me", apiKey("art_not-a-real-key"))
		c.expectError(t, http.StatusBadRequest, "ambiguous_credentials", get, "/api/v1/me", bearer(alice), apiKey("art_x"))
		c.expectError(t, http.StatusNotFound, "not_found", get, "/api/v1/no-such-route", bearer(alice))
		var me meReply
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(alice))
		if me.Kind != "user" || me.UserID != "e2e-alice" {
			t.Fatalf("/me = %+v", me)
		}
	})

	var tenantID, key string
	step(t, "create tenant", func(t *testing.T) {
		var cr createReply
		c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(alice),
			jsonBody(map[string]any{"name": "Acme", "admin_email": "alice@example.com", "metadata": map[string]any{"team": "e2e"}}))
		tn := cr.Tenant
		if !uuidRe.MatchString(cr.TenantID) || tn.ID != cr.TenantID || tn.TenantID != cr.TenantID || !cr.Success {
			t.Fatalf("ids: %+v", cr)
		}
		if tn.Name != "Acme" || tn.AdminEmail != "alice@example.com" || tn.SubscriptionTier != "basic" || tn.Status != "active" || tn.Metadata["team"] != "e2e" {
			t.Fatalf("tenant: %+v", tn)
		}
		if limit(t, tn, "max_agents") != 5 || limit(t, tn, "max_channels") != 50 {
			t.Fatalf("basic limits: %v", tn.Limits)
		}
		if !strings.HasPrefix(cr.APIKey, "art_") || len(cr.APIKey) < 20 {
			t.Fatalf("api_key %q", cr.APIKey)
		}
		tenantID, key = cr.TenantID, cr.APIKey

		// The admin_token is a user token for the creator, scoped to the new tenant.
		var me meReply
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(cr.AdminToken))
		if me.Kind != "user" || me.UserID != "e2e-alice" || me.TenantID != tenantID || me.Role != "owner" {
			t.Fatalf("/me with admin_token = %+v", me)
		}
		c.expect(t, http.StatusOK, nil, get, tenantPath(tenantID), bearer(cr.AdminToken))
	})

	step(t, "list my tenants", func(t *testing.T) {
		r := c.expect(t, http.StatusOK, nil, get, "/api/v1/tenants", bearer(alice))
		if v, ok := r.object(t)["next_token"]; !ok || v != nil {
			t.Fatalf("next_token must be present and null on the last page: %s", r)
		}
		var l tenantList
		_ = r.decode(&l)
		if len(l.Tenants) != 1 || l.Tenants[0].ID != tenantID || l.Tenants[0].Role != "owner" {
			t.Fatalf("list: %s", r)
		}
	})

	step(t, "rename; read-only fields are ignored", func(t *testing.T) {
		var env tenantEnvelope
		c.expect(t, http.StatusOK, &env, put, tenantPath(tenantID), bearer(alice), jsonBody(map[string]any{"name": "Acme Renamed"}))
		if env.Tenant.Name != "Acme Renamed" || !env.Success {
			t.Fatalf("rename: %+v", env)
		}
		c.expect(t, http.StatusOK, &env, put, tenantPath(tenantID), bearer(alice), jsonBody(map[string]any{
			"name":              "Acme Again",
			"subscription_tier": "enterprise",
			"limits":            map[string]any{"max_agents": 1000},
			"status":            "suspended",
			"payment_status":    "past_due",
			"tenant_id":         "00000000-0000-4000-8000-000000000000",
		}))
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), bearer(alice))
		tn := env.Tenant
		if tn.Name != "Acme Again" || tn.SubscriptionTier != "basic" || tn.Status != "active" || tn.ID != tenantID ||
			limit(t, tn, "max_agents") != 5 || tn.PaymentStatus == "past_due" {
			t.Fatalf("PUT wrote a read-only field: %+v", tn)
		}
	})

	step(t, "members", func(t *testing.T) {
		var m memberEnvelope
		c.expect(t, http.StatusCreated, &m, post, tenantPath(tenantID, "/members"), bearer(alice),
			jsonBody(map[string]any{"user_id": "e2e-carol", "email": "carol@example.com", "role": "member"}))
		if m.Member.ID != "e2e-carol" || m.Member.UserID != "e2e-carol" || m.Member.Role != "member" || m.Member.JoinedAt == "" || !m.Success {
			t.Fatalf("add member: %+v", m)
		}
		c.expectError(t, http.StatusConflict, "conflict", post, tenantPath(tenantID, "/members"), bearer(alice),
			jsonBody(map[string]any{"user_id": "e2e-carol", "role": "viewer"}))

		var ml memberList
		c.expect(t, http.StatusOK, &ml, get, tenantPath(tenantID, "/members"), bearer(alice))
		roles := map[string]string{}
		for _, mm := range ml.Members {
			roles[mm.UserID] = mm.Role
		}
		if len(ml.Members) != 2 || roles["e2e-alice"] != "owner" || roles["e2e-carol"] != "member" {
			t.Fatalf("members: %+v", ml)
		}

		c.expect(t, http.StatusOK, &m, put, tenantPath(tenantID, "/members/e2e-carol"), bearer(alice), jsonBody(map[string]any{"role": "admin"}))
		if m.Member.Role != "admin" {
			t.Fatalf("role change: %+v", m)
		}
		eventually(t, 5*time.Second, "carol sees her new role", func() (bool, string) {
			r := c.do(t, get, "/api/v1/me", bearer(carol), tenantHeader(tenantID))
			var me meReply
			if r.Status != http.StatusOK || r.decode(&me) != nil || me.Role != "admin" || me.TenantID != tenantID {
				return false, r.String()
			}
			return true, ""
		})
		// An admin may not grant the owner role (only an owner does).
		c.expectError(t, http.StatusForbidden, "forbidden", put, tenantPath(tenantID, "/members/e2e-carol"), bearer(carol), jsonBody(map[string]any{"role": "owner"}))
	})

	step(t, "API key", func(t *testing.T) {
		var env tenantEnvelope
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), apiKey(key))
		if env.Tenant.ID != tenantID {
			t.Fatalf("GET with the API key: %+v", env)
		}
		var me meReply
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", apiKey(key))
		if me.Kind != "api_key" || me.TenantID != tenantID {
			t.Fatalf("/me with the API key = %+v", me)
		}
		c.expectError(t, http.StatusForbidden, "forbidden", get, "/api/v1/tenants", apiKey(key))

		var rot struct {
			APIKey  string `json:"api_key"`
			Success bool   `json:"success"`
		}
		c.expect(t, http.StatusOK, &rot, post, tenantPath(tenantID, "/api-keys/rotate"), bearer(alice))
		if !strings.HasPrefix(rot.APIKey, "art_") || rot.APIKey == key || !rot.Success {
			t.Fatalf("rotate: %+v", rot)
		}
		eventually(t, 2*time.Second, "the old key stops working", func() (bool, string) {
			r := c.do(t, get, tenantPath(tenantID), apiKey(key))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		c.expectError(t, http.StatusUnauthorized, "unauthorized", get, tenantPath(tenantID), apiKey(key))
		c.expect(t, http.StatusOK, nil, get, tenantPath(tenantID), apiKey(rot.APIKey))
		key = rot.APIKey
	})

	step(t, "another user sees nothing of it", func(t *testing.T) {
		c.expectError(t, http.StatusNotFound, "not_found", get, tenantPath(tenantID), bearer(bob))
		c.expectError(t, http.StatusNotFound, "not_found", put, tenantPath(tenantID), bearer(bob), jsonBody(map[string]any{"name": "mine"}))
		c.expectError(t, http.StatusNotFound, "not_found", get, tenantPath(tenantID, "/members"), bearer(bob))
		c.expectError(t, http.StatusNotFound, "not_found", del, tenantPath(tenantID), bearer(bob))
		var l tenantList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/tenants", bearer(bob))
		if len(l.Tenants) != 0 {
			t.Fatalf("bob lists %+v", l.Tenants)
		}
		var env tenantEnvelope
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), bearer(alice))
		if env.Tenant.Name != "Acme Again" {
			t.Fatalf("bob's PUT changed the tenant: %+v", env.Tenant)
		}
	})

	step(t, "plan changes are for platform admins", func(t *testing.T) {
		c.expectError(t, http.StatusForbidden, "forbidden", put, tenantPath(tenantID, "/plan"), bearer(alice), jsonBody(map[string]any{"subscription_tier": "pro"}))
		var env tenantEnvelope
		c.expect(t, http.StatusOK, &env, put, tenantPath(tenantID, "/plan"), bearer(ops), jsonBody(map[string]any{"subscription_tier": "pro"}))
		if env.Tenant.SubscriptionTier != "pro" || limit(t, env.Tenant, "max_agents") != 10 {
			t.Fatalf("set plan: %+v", env.Tenant)
		}
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), bearer(ops)) // a platform admin may read it
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), bearer(alice))
		if env.Tenant.SubscriptionTier != "pro" {
			t.Fatalf("the owner sees tier %q", env.Tenant.SubscriptionTier)
		}
	})

	step(t, "suspension", func(t *testing.T) {
		var env tenantEnvelope
		c.expect(t, http.StatusOK, &env, put, tenantPath(tenantID, "/plan"), bearer(ops), jsonBody(map[string]any{"status": "suspended"}))
		if env.Tenant.Status != "suspended" {
			t.Fatalf("suspend: %+v", env.Tenant)
		}
		eventually(t, 5*time.Second, "the suspension reaches the gateway", func() (bool, string) {
			r := c.do(t, get, tenantPath(tenantID, "/members"), bearer(alice))
			return r.Status == http.StatusForbidden, r.String()
		})
		c.expectError(t, http.StatusForbidden, "tenant_suspended", get, tenantPath(tenantID, "/members"), bearer(alice))
		c.expectError(t, http.StatusForbidden, "tenant_suspended", put, tenantPath(tenantID), bearer(alice), jsonBody(map[string]any{"name": "x"}))
		c.expect(t, http.StatusOK, &env, get, tenantPath(tenantID), bearer(alice))
		if env.Tenant.Status != "suspended" || env.Tenant.Name != "Acme Again" {
			t.Fatalf("suspended tenant: %+v", env.Tenant)
		}
		c.expect(t, http.StatusOK, &env, put, tenantPath(tenantID, "/plan"), bearer(ops), jsonBody(map[string]any{"status": "active"}))
		eventually(t, 5*time.Second, "reactivation reaches the gateway", func() (bool, string) {
			r := c.do(t, get, tenantPath(tenantID, "/members"), bearer(alice))
			return r.Status == http.StatusOK, r.String()
		})
	})

	step(t, "bad input gets a clear 4xx and changes nothing", func(t *testing.T) {
		e := c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/tenants", bearer(alice),
			jsonBody(map[string]any{"name": "", "admin_email": "not-an-email"}))
		fields := map[string]bool{}
		for _, fe := range e.Errors {
			if fe.Message == "" {
				t.Fatalf("field error without a message: %+v", e)
			}
			fields[fe.Field] = true
		}
		if !fields["name"] || !fields["admin_email"] {
			t.Fatalf("errors[] should name name and admin_email: %+v", e)
		}
		e = c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", post, "/api/v1/tenants", bearer(alice),
			jsonBody(`{"name": 5, "admin_email": "a@example.com"}`))
		if len(e.Errors) == 0 || e.Errors[0].Field != "name" {
			t.Fatalf("wrong type: %+v", e)
		}
		c.expectError(t, http.StatusBadRequest, "invalid_json", post, "/api/v1/tenants", bearer(alice), jsonBody(`{"name": "x",`))
		c.expectError(t, http.StatusUnsupportedMediaType, "unsupported_media_type", post, "/api/v1/tenants", bearer(alice),
			jsonBody(`name=x`), header("Content-Type", "application/x-www-form-urlencoded"))
		c.expectError(t, http.StatusBadRequest, "invalid_next_token", get, "/api/v1/tenants?next_token=garbage", bearer(alice))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/tenants?limit=0", bearer(alice))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", get, "/api/v1/tenants?limit=abc", bearer(alice))
		c.expectError(t, http.StatusUnprocessableEntity, "validation_failed", put, tenantPath(tenantID), bearer(alice),
			jsonBody(map[string]any{"primary_color": "red"}))
		var l tenantList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/tenants", bearer(alice))
		if len(l.Tenants) != 1 || l.Tenants[0].Name != "Acme Again" {
			t.Fatalf("a rejected request changed something: %+v", l.Tenants)
		}
	})

	step(t, "pagination", func(t *testing.T) {
		dave := env.token(t, "-sub", "e2e-dave")
		erin := env.token(t, "-sub", "e2e-erin")
		st.dave = dave
		create := func(tok, name string) string {
			var cr createReply
			c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(tok),
				jsonBody(map[string]any{"name": name, "admin_email": "owner@example.com"}))
			return cr.TenantID
		}
		var owned []string
		for i := range 10 {
			owned = append(owned, create(dave, fmt.Sprintf("Dave %02d", i+1)))
		}
		st.daveOwnedTenant = owned[0]
		c.expectError(t, http.StatusForbidden, "forbidden", post, "/api/v1/tenants", bearer(dave),
			jsonBody(map[string]any{"name": "one too many", "admin_email": "owner@example.com"}))

		// Exactly two full pages: the second must end the list (no empty third page).
		pages := listAll(t, c, dave, 5)
		if len(pages) != 2 || len(pages[0]) != 5 || len(pages[1]) != 5 {
			t.Fatalf("10 tenants, limit 5: pages of %v", pageSizes(pages))
		}
		got := ids(pages)
		slices.Sort(got)
		want := slices.Clone(owned)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}

		for i := range 2 {
			id := create(erin, fmt.Sprintf("Erin %d", i+1))
			c.expect(t, http.StatusCreated, nil, post, tenantPath(id, "/members"), bearer(erin),
				jsonBody(map[string]any{"user_id": "e2e-dave", "role": "viewer"}))
			want = append(want, id)
		}
		pages = listAll(t, c, dave, 5)
		if len(pages) != 3 || len(pages[0]) != 5 || len(pages[1]) != 5 || len(pages[2]) != 2 {
			t.Fatalf("12 tenants, limit 5: pages of %v", pageSizes(pages))
		}
		got = ids(pages)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want each of %v once", got, want)
		}
		viewer := 0
		for _, p := range pages {
			for _, tn := range p {
				if tn.Role == "viewer" {
					viewer++
				} else if tn.Role != "owner" {
					t.Fatalf("role %q on %s", tn.Role, tn.ID)
				}
			}
		}
		if viewer != 2 {
			t.Fatalf("%d viewer entries, want 2", viewer)
		}
		st.daveTenants = want

		// A next_token is bound to its user.
		var l tenantList
		c.expect(t, http.StatusOK, &l, get, "/api/v1/tenants?limit=5", bearer(dave))
		if l.NextToken == nil {
			t.Fatal("no next_token on the first page")
		}
		c.expectError(t, http.StatusBadRequest, "invalid_next_token", get, "/api/v1/tenants?limit=5&next_token="+url.QueryEscape(*l.NextToken), bearer(bob))
	})

	step(t, "delete", func(t *testing.T) {
		c.expectError(t, http.StatusForbidden, "forbidden", del, tenantPath(tenantID), bearer(carol))
		r := c.expect(t, http.StatusNoContent, nil, del, tenantPath(tenantID), bearer(alice))
		if len(r.Body) != 0 {
			t.Fatalf("204 with a body: %s", r)
		}
		eventually(t, 5*time.Second, "the deleted tenant is gone", func() (bool, string) {
			r := c.do(t, get, tenantPath(tenantID), bearer(alice))
			return r.Status == http.StatusNotFound, r.String()
		})
		c.expectError(t, http.StatusNotFound, "not_found", get, tenantPath(tenantID), bearer(alice))
		eventually(t, 5*time.Second, "the deleted tenant's API key stops working", func() (bool, string) {
			r := c.do(t, get, tenantPath(tenantID), apiKey(key))
			return r.Status == http.StatusUnauthorized, r.String()
		})
		eventually(t, 10*time.Second, "the deleted tenant leaves the owner's list", func() (bool, string) {
			r := c.do(t, get, "/api/v1/tenants", bearer(alice))
			var l tenantList
			if r.Status != http.StatusOK || r.decode(&l) != nil || len(l.Tenants) != 0 {
				return false, r.String()
			}
			return true, ""
		})
		st.deletedTenant, st.deletedAPIKey = tenantID, key
	})

	step(t, "x-tenant-id selects, never grants", func(t *testing.T) {
		// SPEC §3, §13: on a tenant-scoped route a tenant the caller is not in is 403,
		// a malformed id 400 (GET /api/v1/me is the tenant-scoped route of this issue).
		c.expectError(t, http.StatusForbidden, "forbidden", get, "/api/v1/me", bearer(bob), tenantHeader(st.daveOwnedTenant))
		c.expectError(t, http.StatusBadRequest, "invalid_tenant_id", get, "/api/v1/me", bearer(bob), tenantHeader(strings.ToUpper(st.daveOwnedTenant)))
		var me meReply
		c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(st.dave), tenantHeader(st.daveOwnedTenant))
		if me.TenantID != st.daveOwnedTenant || me.Role != "owner" {
			t.Fatalf("/me with the caller's own tenant = %+v", me)
		}
	})
}

func pageSizes(pages [][]tenantJSON) []int {
	var n []int
	for _, p := range pages {
		n = append(n, len(p))
	}
	return n
}

// checkSurvived is run on a restarted stack: what the scenario left is still there.
func checkSurvived(t *testing.T, c *client, st story) {
	got := ids(listAll(t, c, st.dave, 5))
	slices.Sort(got)
	if !slices.Equal(got, st.daveTenants) {
		t.Fatalf("after the restart dave lists %v, want %v", got, st.daveTenants)
	}
	var env tenantEnvelope
	c.expect(t, http.StatusOK, &env, get, tenantPath(st.daveOwnedTenant), bearer(st.dave))
	if env.Tenant.Name != "Dave 01" {
		t.Fatalf("after the restart: %+v", env.Tenant)
	}
	c.expectError(t, http.StatusNotFound, "not_found", get, tenantPath(st.deletedTenant), bearer(st.alice))
	c.expectError(t, http.StatusUnauthorized, "unauthorized", get, tenantPath(st.deletedTenant), apiKey(st.deletedAPIKey))
}
