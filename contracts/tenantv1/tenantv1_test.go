package tenantv1_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

const tid = "3f1c2a4e-8b7d-4c6e-9a5b-1d2e3f4a5b6c"

// fields returns the field names of a 422, nil for success; anything else fails the test.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	e, ok := natsrpc.AsError(err)
	if !ok || e.Status != http.StatusUnprocessableEntity || e.Code != natsrpc.CodeValidationFailed {
		t.Fatalf("want nil or 422 validation_failed, got %v", err)
	}
	var out []string
	for _, fe := range e.Errors {
		out = append(out, fe.Field)
	}
	if len(out) == 0 {
		t.Fatal("422 without field errors")
	}
	return out
}

func TestCreateRequestValidate(t *testing.T) {
	ok := func() tenantv1.CreateRequest {
		return tenantv1.CreateRequest{Name: "Acme", AdminEmail: "ops@acme.io"}
	}
	cases := []struct {
		name string
		mod  func(r *tenantv1.CreateRequest)
		want []string
	}{
		{"minimal", func(*tenantv1.CreateRequest) {}, nil},
		{"every tier", func(r *tenantv1.CreateRequest) { r.SubscriptionTier = "enterprise"; r.TrialDays = 365 }, nil},
		{"missing name", func(r *tenantv1.CreateRequest) { r.Name = "" }, []string{"name"}},
		{"blank name", func(r *tenantv1.CreateRequest) { r.Name = "  " }, []string{"name"}},
		{"long name", func(r *tenantv1.CreateRequest) { r.Name = strings.Repeat("x", 129) }, []string{"name"}},
		{"128 characters", func(r *tenantv1.CreateRequest) { r.Name = strings.Repeat("ü", 128) }, nil},
		{"missing email", func(r *tenantv1.CreateRequest) { r.AdminEmail = "" }, []string{"admin_email"}},
		{"bad email", func(r *tenantv1.CreateRequest) { r.AdminEmail = "Ops <ops@acme.io>" }, []string{"admin_email"}},
		{"unknown tier", func(r *tenantv1.CreateRequest) { r.SubscriptionTier = "gold" }, []string{"subscription_tier"}},
		{"negative trial", func(r *tenantv1.CreateRequest) { r.TrialDays = -1 }, []string{"trial_days"}},
		{"trial too long", func(r *tenantv1.CreateRequest) { r.TrialDays = 366 }, []string{"trial_days"}},
		{"everything wrong", func(r *tenantv1.CreateRequest) {
			*r = tenantv1.CreateRequest{SubscriptionTier: "x", TrialDays: -5}
		}, []string{"name", "admin_email", "subscription_tier", "trial_days"}},
	}
	for _, c := range cases {
		r := ok()
		c.mod(&r)
		if got := fields(t, r.Validate()); !slices.Equal(got, c.want) {
			t.Errorf("%s: failing fields %v, want %v", c.name, got, c.want)
		}
	}
}

// UpdateBody is decoded from JSON, the way it arrives, so absent and null are real.
func TestUpdateBodyValidate(t *testing.T) {
	cases := []struct {
		body string
		want []string
	}{
		{`{}`, nil},
		{`{"name": "New name"}`, nil},
		{`{"name": null}`, []string{"name"}},
		{`{"name": ""}`, []string{"name"}},
		{`{"name": "` + strings.Repeat("n", 129) + `"}`, []string{"name"}},
		{`{"admin_email": null}`, []string{"admin_email"}},
		{`{"admin_email": ""}`, []string{"admin_email"}},
		{`{"admin_email": "A <a@b.co>"}`, []string{"admin_email"}},
		{`{"admin_email": "a@b.co"}`, nil},
		{`{"description": null}`, nil},
		{`{"description": ""}`, nil},
		{`{"description": "` + strings.Repeat("d", 1024) + `"}`, nil},
		{`{"description": "` + strings.Repeat("d", 1025) + `"}`, []string{"description"}},
		{`{"website": null, "logo_url": null, "primary_color": null, "secondary_color": null, "metadata": null}`, nil},
		{`{"website": "https://acme.io", "logo_url": "https://cdn.acme.io/logo.svg"}`, nil},
		{`{"website": "http://acme.io"}`, []string{"website"}},
		{`{"logo_url": "javascript:alert(1)"}`, []string{"logo_url"}},
		{`{"primary_color": "#12ab9F", "secondary_color": "#000000"}`, nil},
		{`{"primary_color": "#fff"}`, []string{"primary_color"}},
		{`{"secondary_color": "blue"}`, []string{"secondary_color"}},
		{`{"metadata": {"a": {"b": null}}}`, nil},
		{`{"name": null, "website": "http://x.io", "primary_color": "x"}`, []string{"name", "website", "primary_color"}},
	}
	for _, c := range cases {
		var b tenantv1.UpdateBody
		if err := json.Unmarshal([]byte(c.body), &b); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if got := fields(t, b.Validate()); !slices.Equal(got, c.want) {
			t.Errorf("%.60s: failing fields %v, want %v", c.body, got, c.want)
		}
	}

	// Through the request wrapper too, and with values built in Go.
	req := tenantv1.UpdateRequest{TenantID: tid, Changes: tenantv1.UpdateBody{
		Description: patch.Null[string](),
		Website:     patch.Of("http://insecure.example"),
	}}
	if got := fields(t, req.Validate()); !slices.Equal(got, []string{"website"}) {
		t.Errorf("UpdateRequest fields %v, want [website]", got)
	}
}

func TestSetPlanBodyValidate(t *testing.T) {
	cases := []struct {
		b    tenantv1.SetPlanBody
		want []string
	}{
		{tenantv1.SetPlanBody{}, []string{"subscription_tier"}},
		{tenantv1.SetPlanBody{SubscriptionTier: "pro"}, nil},
		{tenantv1.SetPlanBody{Status: "suspended"}, nil},
		{tenantv1.SetPlanBody{PaymentStatus: "past_due"}, nil},
		{tenantv1.SetPlanBody{SubscriptionTier: "enterprise", Status: "active", PaymentStatus: "trial"}, nil},
		{tenantv1.SetPlanBody{SubscriptionTier: "platinum"}, []string{"subscription_tier"}},
		{tenantv1.SetPlanBody{Status: "deleted"}, []string{"status"}},
		{tenantv1.SetPlanBody{PaymentStatus: "free"}, []string{"payment_status"}},
	}
	for _, c := range cases {
		if got := fields(t, c.b.Validate()); !slices.Equal(got, c.want) {
			t.Errorf("%+v: failing fields %v, want %v", c.b, got, c.want)
		}
	}
}

func TestMemberBodiesValidate(t *testing.T) {
	add := []struct {
		b    tenantv1.MemberAddBody
		want []string
	}{
		{tenantv1.MemberAddBody{UserID: "auth0|123", Role: "member"}, nil},
		{tenantv1.MemberAddBody{UserID: "u", Email: "u@x.io", Role: "owner"}, nil},
		{tenantv1.MemberAddBody{UserID: strings.Repeat("u", tenantv1.MaxUserID), Role: "viewer"}, nil},
		{tenantv1.MemberAddBody{UserID: strings.Repeat("u", tenantv1.MaxUserID+1), Role: "viewer"}, []string{"user_id"}},
		{tenantv1.MemberAddBody{Role: "admin"}, []string{"user_id"}},
		{tenantv1.MemberAddBody{UserID: " ", Role: "admin"}, []string{"user_id"}},
		{tenantv1.MemberAddBody{UserID: "u"}, []string{"role"}},
		{tenantv1.MemberAddBody{UserID: "u", Role: "superuser"}, []string{"role"}},
		{tenantv1.MemberAddBody{UserID: "u", Role: "Admin"}, []string{"role"}},
		{tenantv1.MemberAddBody{UserID: "u", Role: "member", Email: "not-an-email"}, []string{"email"}},
		{tenantv1.MemberAddBody{}, []string{"user_id", "role"}},
	}
	for _, c := range add {
		if got := fields(t, c.b.Validate()); !slices.Equal(got, c.want) {
			t.Errorf("MemberAddBody %+.40v: failing fields %v, want %v", c.b, got, c.want)
		}
	}
	upd := map[string][]string{"owner": nil, "viewer": nil, "": {"role"}, "root": {"role"}}
	for role, want := range upd {
		b := tenantv1.MemberUpdateBody{Role: role}
		if got := fields(t, b.Validate()); !slices.Equal(got, want) {
			t.Errorf("MemberUpdateBody{%q}: failing fields %v, want %v", role, got, want)
		}
	}
}

// A tenant id that is not a lower-case UUID is a 404 (SPEC §13: a malformed path id is
// 404), checked before anything else in the request.
func TestMalformedTenantIDIsNotFound(t *testing.T) {
	bad := []string{"", "acme", "3F1C2A4E-8B7D-4C6E-9A5B-1D2E3F4A5B6C", tid + " ", "../" + tid, "tenant.*", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}
	validChanges := tenantv1.UpdateBody{Name: patch.Of("ok")}
	for _, id := range bad {
		reqs := map[string]natsrpc.Validator{
			"get":            &tenantv1.GetRequest{TenantID: id},
			"update":         &tenantv1.UpdateRequest{TenantID: id, Changes: validChanges},
			"update+invalid": &tenantv1.UpdateRequest{TenantID: id, Changes: tenantv1.UpdateBody{Name: patch.Null[string]()}},
			"set_plan":       &tenantv1.SetPlanRequest{TenantID: id, Changes: tenantv1.SetPlanBody{Status: "active"}},
			"delete":         &tenantv1.DeleteRequest{TenantID: id},
			"rotate":         &tenantv1.RotateAPIKeyRequest{TenantID: id},
			"members_list":   &tenantv1.MembersListRequest{TenantID: id},
			"members_add":    &tenantv1.MembersAddRequest{TenantID: id, Member: tenantv1.MemberAddBody{UserID: "u", Role: "member"}},
			"members_update": &tenantv1.MembersUpdateRequest{TenantID: id, UserID: "u", Changes: tenantv1.MemberUpdateBody{Role: "admin"}},
			"members_remove": &tenantv1.MembersRemoveRequest{TenantID: id, UserID: "u"},
			"lookup":         &tenantv1.LookupMembershipRequest{TenantID: id, UserID: "u"},
		}
		for name, r := range reqs {
			e, ok := natsrpc.AsError(r.Validate())
			if !ok || e.Status != http.StatusNotFound || e.Code != natsrpc.CodeNotFound {
				t.Errorf("%s with tenant id %q: got %v, want 404 not_found", name, id, r.Validate())
			}
		}
	}

	// The same requests with a good id pass, or fail only on their own fields.
	good := map[string]natsrpc.Validator{
		"get":            &tenantv1.GetRequest{TenantID: tid},
		"update":         &tenantv1.UpdateRequest{TenantID: tid, Changes: validChanges},
		"set_plan":       &tenantv1.SetPlanRequest{TenantID: tid, Changes: tenantv1.SetPlanBody{Status: "active"}},
		"delete":         &tenantv1.DeleteRequest{TenantID: tid},
		"rotate":         &tenantv1.RotateAPIKeyRequest{TenantID: tid},
		"members_list":   &tenantv1.MembersListRequest{TenantID: tid, Limit: 100},
		"members_add":    &tenantv1.MembersAddRequest{TenantID: tid, Member: tenantv1.MemberAddBody{UserID: "u", Role: "member"}},
		"members_update": &tenantv1.MembersUpdateRequest{TenantID: tid, UserID: "u", Changes: tenantv1.MemberUpdateBody{Role: "admin"}},
		"members_remove": &tenantv1.MembersRemoveRequest{TenantID: tid, UserID: "u"},
		"lookup":         &tenantv1.LookupMembershipRequest{TenantID: tid, UserID: "u"},
	}
	for name, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%s with a good tenant id: %v", name, err)
		}
	}
	if got := fields(t, (&tenantv1.MembersListRequest{TenantID: tid, Limit: 101}).Validate()); !slices.Equal(got, []string{"limit"}) {
		t.Errorf("members_list limit 101: %v", got)
	}
	if got := fields(t, (&tenantv1.ListRequest{Limit: -1}).Validate()); !slices.Equal(got, []string{"limit"}) {
		t.Errorf("list limit -1: %v", got)
	}
}

// The 404 for a malformed id must not be one shared value a caller could change.
func TestNotFoundIsNotShared(t *testing.T) {
	e1, _ := natsrpc.AsError((&tenantv1.GetRequest{TenantID: "x"}).Validate())
	e1.Detail = "changed by a careless caller"
	e2, _ := natsrpc.AsError((&tenantv1.GetRequest{TenantID: "y"}).Validate())
	if e2.Detail == e1.Detail {
		t.Errorf("mutating one returned error changed the next: %q", e2.Detail)
	}
}

func TestSubjects(t *testing.T) {
	if got := tenantv1.Subject(tenantv1.OpCreate); got != "svc.tenant.v1.create" {
		t.Errorf("Subject(create) = %q", got)
	}
	if !strings.HasPrefix(tenantv1.Subject(tenantv1.OpLookupAPIKey), tenantv1.Group+".") {
		t.Error("lookups must live in the service group")
	}
	if strings.HasPrefix(tenantv1.SubjectTenantDeleted, "tenant.") || strings.HasPrefix(tenantv1.SubjectTenantChanged, "tenant.") {
		t.Error("internal events must live outside tenant.>")
	}
	if !strings.HasPrefix(tenantv1.SubjectTenantDeleted, "platform.") {
		t.Error("the deletion cascade must be on the durable platform stream (platform.>)")
	}
	if tenantv1.DeletedMsgID(tid) != "tenant-deleted-"+tid {
		t.Errorf("DeletedMsgID = %q", tenantv1.DeletedMsgID(tid))
	}
}
