package httpapi

import (
	"net/http"
	"net/url"
	"time"
	"unicode"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// AdminTokenTTL is the life of the admin_token returned on tenant creation (SPEC §4.2).
const AdminTokenTTL = 30 * time.Minute

// TenantCreated is the reply of POST /tenants; api_key is shown only here.
type TenantCreated struct {
	TenantID   string               `json:"tenant_id" format:"uuid"`
	Tenant     Raw[tenantv1.Tenant] `json:"tenant"`
	APIKey     string               `json:"api_key" doc:"the tenant's API key, shown only once"`
	AdminToken string               `json:"admin_token" doc:"a user token for the creator scoped to the new tenant, valid 30 minutes"`
	Success    bool                 `json:"success"`
}

// TenantEnvelope wraps one tenant: the reply schema. Handlers relay the service's
// tenantv1.TenantResponse with "success" spliced in (request.relay).
type TenantEnvelope struct {
	Tenant  Raw[tenantv1.Tenant] `json:"tenant"`
	Success bool                 `json:"success"`
}

// TenantList is one page of the caller's tenants, each with the caller's role.
type TenantList struct {
	Tenants   []tenantv1.Tenant `json:"tenants" nullable:"false"`
	NextToken *string           `json:"next_token" doc:"opaque; null on the last page"`
}

// MemberEnvelope wraps one member: the reply schema; handlers relay the service's
// tenantv1.MemberResponse like TenantEnvelope.
type MemberEnvelope struct {
	Member  Raw[tenantv1.Member] `json:"member"`
	Success bool                 `json:"success"`
}

// MemberList is one page of a tenant's members.
type MemberList struct {
	Members   []tenantv1.Member `json:"members" nullable:"false"`
	NextToken *string           `json:"next_token" doc:"opaque; null on the last page"`
}

// APIKeyEnvelope carries a new API key, shown only once.
type APIKeyEnvelope struct {
	APIKey  string `json:"api_key"`
	Success bool   `json:"success"`
}

func (a *api) createTenant(r *request) error {
	var body tenantv1.CreateRequest
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	var out TenantCreated // the service's tenantv1.CreateResponse, plus what the gateway adds
	if err := r.call(tenantv1.Subject(tenantv1.OpCreate), &body, &out); err != nil {
		return err
	}
	token, err := a.auth.MintUserToken(r.principal.UserID, r.principal.Email, out.TenantID, nil, AdminTokenTTL)
	if err != nil {
		return err
	}
	out.AdminToken, out.Success = token, true
	return r.reply(http.StatusCreated, out)
}

func (a *api) listTenants(r *request) error {
	b := pageBinding{scope: "u:" + r.principal.UserID, route: tenantv1.OpList}
	limit, cursor, err := a.tokens.page(r.c, b)
	if err != nil {
		return err
	}
	var out tenantv1.ListResponse
	if err := r.call(tenantv1.Subject(tenantv1.OpList), &tenantv1.ListRequest{Limit: limit, Cursor: cursor}, &out); err != nil {
		return err
	}
	if out.Tenants == nil {
		out.Tenants = []tenantv1.Tenant{}
	}
	return r.reply(http.StatusOK, TenantList{Tenants: out.Tenants, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) getTenant(r *request) error {
	return r.relay(http.StatusOK, tenantv1.Subject(tenantv1.OpGet), &tenantv1.GetRequest{TenantID: r.access.TenantID})
}

func (a *api) updateTenant(r *request) error {
	var body tenantv1.UpdateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	req := &tenantv1.UpdateRequest{TenantID: r.access.TenantID, Changes: body}
	return r.relay(http.StatusOK, tenantv1.Subject(tenantv1.OpUpdate), req)
}

func (a *api) setTenantPlan(r *request) error {
	var body tenantv1.SetPlanBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	req := &tenantv1.SetPlanRequest{TenantID: r.access.TenantID, Changes: body}
	return r.relay(http.StatusOK, tenantv1.Subject(tenantv1.OpSetPlan), req)
}

func (a *api) deleteTenant(r *request) error {
	if err := r.call(tenantv1.Subject(tenantv1.OpDelete), &tenantv1.DeleteRequest{TenantID: r.access.TenantID}, nil); err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}

func (a *api) rotateAPIKey(r *request) error {
	var out tenantv1.RotateAPIKeyResponse
	if err := r.call(tenantv1.Subject(tenantv1.OpRotateAPIKey), &tenantv1.RotateAPIKeyRequest{TenantID: r.access.TenantID}, &out); err != nil {
		return err
	}
	return r.reply(http.StatusOK, APIKeyEnvelope{APIKey: out.APIKey, Success: true})
}

func (a *api) listMembers(r *request) error {
	b := pageBinding{scope: "t:" + r.access.TenantID, route: tenantv1.OpMembersList}
	limit, cursor, err := a.tokens.page(r.c, b)
	if err != nil {
		return err
	}
	var out tenantv1.MembersListResponse
	req := &tenantv1.MembersListRequest{TenantID: r.access.TenantID, Limit: limit, Cursor: cursor}
	if err := r.call(tenantv1.Subject(tenantv1.OpMembersList), req, &out); err != nil {
		return err
	}
	if out.Members == nil {
		out.Members = []tenantv1.Member{}
	}
	return r.reply(http.StatusOK, MemberList{Members: out.Members, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) addMember(r *request) error {
	var body tenantv1.MemberAddBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	req := &tenantv1.MembersAddRequest{TenantID: r.access.TenantID, Member: body}
	return r.relay(http.StatusCreated, tenantv1.Subject(tenantv1.OpMembersAdd), req)
}

func (a *api) updateMember(r *request) error {
	userID, err := memberPathID(r)
	if err != nil {
		return err
	}
	var body tenantv1.MemberUpdateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	req := &tenantv1.MembersUpdateRequest{TenantID: r.access.TenantID, UserID: userID, Changes: body}
	return r.relay(http.StatusOK, tenantv1.Subject(tenantv1.OpMembersUpdate), req)
}

func (a *api) removeMember(r *request) error {
	userID, err := memberPathID(r)
	if err != nil {
		return err
	}
	req := &tenantv1.MembersRemoveRequest{TenantID: r.access.TenantID, UserID: userID}
	if err := r.call(tenantv1.Subject(tenantv1.OpMembersRemove), req, nil); err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}

// memberPathID is the {user_id} of a members path. User ids (OIDC subs) have no fixed
// format, so they arrive percent-encoded; one that could never be stored is 404.
func memberPathID(r *request) (string, error) {
	id, err := url.PathUnescape(r.c.Params("user_id"))
	if err != nil || id == "" || len(id) > tenantv1.MaxUserID {
		return "", natsrpc.NotFound("member not found")
	}
	for _, ch := range id {
		if unicode.IsControl(ch) || ch == unicode.ReplacementChar {
			return "", natsrpc.NotFound("member not found")
		}
	}
	return id, nil
}
