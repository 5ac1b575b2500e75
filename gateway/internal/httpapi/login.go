package httpapi

import (
	"net/http"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// AgentTokenTTL is the life of an agent token minted by /auth/verify (SPEC §4.4).
const AgentTokenTTL = time.Hour

// AgentLogin is the reply of a successful POST /auth/verify.
type AgentLogin struct {
	Valid     bool      `json:"valid" doc:"always true (a failed attempt is 401)"`
	Token     string    `json:"token" doc:"the agent token: send it as Authorization: Bearer <token>"`
	ExpiresAt time.Time `json:"expires_at" doc:"one hour after the login"`
	TenantID  string    `json:"tenant_id" format:"uuid"`
	AgentID   string    `json:"agent_id"`
	KeyID     string    `json:"key_id" doc:"the SSH key that answered the challenge"`
}

// The login routes are public: they read no credentials at all, so a stale or bad
// Authorization or x-api-key header sent along (an agent re-logging in with its expired
// token still configured) neither fails nor changes the request. Their bodies are never
// logged (the access log records no body anywhere).

func (a *api) loginChallenge(r *request) error {
	var body sshkeyv1.ChallengeBody
	if err := decodeJSON(r.c, &body); err != nil {
		return err
	}
	if err := loginTenant(r, &body.TenantID); err != nil {
		return err
	}
	if err := validate(&body); err != nil {
		return err
	}
	body.KeyID, body.AgentID = upperID(body.KeyID), upperID(body.AgentID)
	var out Raw[sshkeyv1.Challenge]
	if err := r.call(sshkeyv1.Subject(sshkeyv1.OpChallenge), &sshkeyv1.ChallengeRequest{Login: body}, &out); err != nil {
		return err
	}
	return r.reply(http.StatusOK, out)
}

func (a *api) loginVerify(r *request) error {
	var body sshkeyv1.VerifyBody
	if err := decodeJSON(r.c, &body); err != nil {
		return err
	}
	if err := loginTenant(r, &body.TenantID); err != nil {
		return err
	}
	if err := validate(&body); err != nil {
		return err
	}
	body.KeyID, body.AgentID = upperID(body.KeyID), upperID(body.AgentID)
	var v sshkeyv1.Verified
	if err := r.call(sshkeyv1.Subject(sshkeyv1.OpVerify), &sshkeyv1.VerifyRequest{Login: body}, &v); err != nil {
		return err
	}
	// Never mint for anyone but who the request named: a reply that disagrees is a bug
	// upstream, and refusing costs one login.
	if v.TenantID != body.TenantID || !validation.IsULID(v.AgentID) || !validation.IsULID(v.KeyID) ||
		(body.KeyID != "" && v.KeyID != body.KeyID) || (body.AgentID != "" && v.AgentID != body.AgentID) {
		a.log.Error().Str("request_id", natsrpc.IdentityFrom(r.ctx).RequestID).
			Msg("login: the sshkey service verified someone the request did not name; no token minted")
		return natsrpc.NewError(http.StatusBadGateway, natsrpc.CodeBadGateway, "the login could not be completed")
	}
	// A suspended or deleted tenant's agents cannot log in; they hear what every other
	// failed attempt hears.
	st, err := a.auth.TenantStanding(r.ctx, v.TenantID)
	if err != nil {
		return err
	}
	if !st.Found || st.Status != tenantv1.StatusActive {
		return sshkeyv1.InvalidSignature()
	}
	token, exp, err := a.auth.MintAgentToken(v.TenantID, v.AgentID, v.KeyID, AgentTokenTTL)
	if err != nil {
		return err
	}
	return r.reply(http.StatusOK, AgentLogin{Valid: true, Token: token, ExpiresAt: exp.UTC(),
		TenantID: v.TenantID, AgentID: v.AgentID, KeyID: v.KeyID})
}

// loginTenant completes the body's tenant_id from x-tenant-id: the header fills a missing
// field; both present and different is 422; a malformed header is 400 like everywhere.
func loginTenant(r *request, field *string) error {
	h := r.c.Get(headerTenantID)
	if h == "" {
		return nil
	}
	if !validation.IsUUID(h) {
		return natsrpc.BadRequest(natsrpc.CodeInvalidTenantID, "x-tenant-id must be one lower-case UUID")
	}
	switch *field {
	case "":
		*field = string([]byte(h)) // a copy: the header's memory is reused after the request
	case h:
	default:
		return natsrpc.Invalid(natsrpc.FieldError{Field: "tenant_id", Message: "differs from the x-tenant-id header"})
	}
	return nil
}
