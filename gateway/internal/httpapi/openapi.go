package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/danielgtaylor/huma/v2"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
)

// huma is used only as the OpenAPI 3.1 model and JSON-schema generator: requests are
// served by plain Fiber handlers from the same route table.

const (
	securityBearer = "bearerAuth"
	securityAPIKey = "apiKeyAuth"
)

const apiDescription = `Multi-tenant messaging for AI agents and the people who run them.

Authentication: a user token (` + "`Authorization: Bearer <JWT>`" + `), an agent token (same header, minted by
` + "`POST /api/v1/auth/verify`" + `), or a tenant API key (` + "`x-api-key: art_…`" + `). Sending both a token and a key is 400.
On tenant-scoped routes outside ` + "`/tenants/{id}`" + ` the tenant comes from ` + "`x-tenant-id`" + `, else the token's
` + "`tenant_id`" + ` claim, else the caller's only membership; the header selects, it never authenticates.

Every response carries ` + "`X-Request-Id`" + ` (a sane incoming one is kept). Errors are ` + "`{detail, code, request_id}`" + `
(+ ` + "`errors[{field, message}]`" + ` on 422). Request bodies are JSON (Content-Type application/json or none, else
415); unknown fields are ignored; an empty body counts as ` + "`{}`" + `. Lists take ` + "`limit`" + ` (1–100, default 50) and an
opaque ` + "`next_token`" + ` that is valid only for the same caller, list and filters.`

// loginFlow is the description of the auth tag: the agent login with a worked example.
//
//go:embed loginflow.md
var loginFlow string

// errorCodes documents which codes each error status can carry (SPEC §13).
var errorCodes = map[int]string{
	http.StatusBadRequest:            "invalid_json, invalid_next_token, invalid_tenant_id, tenant_required, ambiguous_credentials",
	http.StatusUnauthorized:          "unauthorized, token_expired, token_revoked, invalid_signature",
	http.StatusPaymentRequired:       "plan_limit_exceeded",
	http.StatusForbidden:             "forbidden, tenant_suspended",
	http.StatusNotFound:              "not_found",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "payload_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "validation_failed, private_key_rejected",
	http.StatusUpgradeRequired:       "upgrade_required",
	http.StatusTooManyRequests:       "rate_limited, message_quota_exceeded, connection_limit_exceeded",
	http.StatusInternalServerError:   "internal",
	http.StatusBadGateway:            "bad_gateway",
	http.StatusServiceUnavailable:    "service_unavailable, auth_unavailable",
	http.StatusGatewayTimeout:        "upstream_timeout",
}

// buildOpenAPI renders the document of routes. It runs once at start-up; huma reports
// unsupported schema shapes by panicking, which is turned into an error here.
func buildOpenAPI(routes []route, version string) (doc []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("openapi: %v", p)
		}
	}()
	reg := huma.NewMapRegistry("#/components/schemas/", schemaName)
	for i := range routes {
		for _, proto := range []any{routes[i].body, routes[i].resp} {
			if proto != nil {
				registerPatchAliases(reg, reflect.TypeOf(proto), map[reflect.Type]bool{})
			}
		}
	}
	o := &huma.OpenAPI{
		OpenAPI: "3.1.0",
		Info: &huma.Info{
			Title:       "ArtCafe PubSub API",
			Version:     version,
			Description: apiDescription + "\n\n" + rateLimitDescription,
		},
		Components: &huma.Components{
			Schemas: reg,
			SecuritySchemes: map[string]*huma.SecurityScheme{
				securityBearer: {Type: "http", Scheme: "bearer", BearerFormat: "JWT",
					Description: "A user token (HS256 or from the OIDC provider) or an agent token."},
				securityAPIKey: {Type: "apiKey", In: "header", Name: "x-api-key",
					Description: "The tenant's API key; acts as an admin of its tenant."},
			},
		},
		Tags: []*huma.Tag{
			{Name: tagSystem, Description: "Service information, health, identity and these docs."},
			{Name: tagTenants, Description: "Tenants, their members and API key."},
			{Name: tagAgents, Description: "The tenant's agents: registration, filters, status, deletion. An agent token may read and edit its own record."},
			{Name: tagSSHKeys, Description: "The tenant's SSH public keys. Keys of type `agent` bound to an agent let that agent log in (see `auth`)."},
			{Name: tagAuth, Description: loginFlow},
			{Name: tagChannels, Description: "The tenant's channels and which agents belong to them (subscriptions with a role). In a `private` channel an agent needs a subscription: any role to subscribe, `publisher` or `admin` to publish."},
			{Name: tagRealtime, Description: realtimeDescription},
			{Name: tagUsage, Description: "Usage per UTC day, billing and the plans (SPEC §4.7)."},
			{Name: tagMessages, Description: "Publishing and history. A message is `{message_id, seq, channel_id, tenant_id, timestamp, sender{type, id}, data}` on every path (REST history, WebSocket); `data` is the published JSON object, byte for byte."},
		},
	}
	errSchema := reg.Schema(reflect.TypeFor[ErrorBody](), true, "ErrorBody")
	for i := range routes {
		o.AddOperation(operation(reg, &routes[i], errSchema))
	}
	allowAdditionalProperties(reg)
	return json.Marshal(o)
}

func operation(reg huma.Registry, rt *route, errSchema *huma.Schema) *huma.Operation {
	op := &huma.Operation{
		Method:      rt.method,
		Path:        rt.path,
		OperationID: rt.op,
		Summary:     rt.summary,
		Description: rt.desc,
		Tags:        []string{rt.tag},
		Responses:   map[string]*huma.Response{},
	}
	for _, name := range pathParams(rt.path) {
		op.Parameters = append(op.Parameters, pathParam(rt, name))
	}
	if rt.tenantHeader {
		op.Parameters = append(op.Parameters, &huma.Param{
			Name: "x-tenant-id", In: "header",
			Description: "The tenant (lower-case UUID) when the body has no tenant_id; both present and different is 422.",
			Schema:      &huma.Schema{Type: huma.TypeString, Format: "uuid"},
		})
	}
	if rt.policy.scope == scopeHeader || rt.policy.scope == scopeOptional {
		op.Parameters = append(op.Parameters, &huma.Param{
			Name: "x-tenant-id", In: "header",
			Description: "The tenant to act in (lower-case UUID). Selects among the caller's tenants; never authenticates.",
			Schema:      &huma.Schema{Type: huma.TypeString, Format: "uuid"},
		})
	}
	if rt.list {
		one, hundred := 1.0, 100.0
		op.Parameters = append(op.Parameters,
			&huma.Param{Name: "limit", In: "query", Description: "Page size, 1–100 (default 50).",
				Schema: &huma.Schema{Type: huma.TypeInteger, Minimum: &one, Maximum: &hundred, Default: defaultLimit}},
			&huma.Param{Name: "next_token", In: "query", Description: "The next_token of the previous page.",
				Schema: &huma.Schema{Type: huma.TypeString}},
		)
	}
	for _, q := range rt.query {
		schema := &huma.Schema{Type: huma.TypeString}
		for _, v := range q.enum {
			schema.Enum = append(schema.Enum, v)
		}
		op.Parameters = append(op.Parameters, &huma.Param{Name: q.name, In: "query", Description: q.desc, Schema: schema})
	}
	for _, h := range rt.headers {
		op.Parameters = append(op.Parameters, &huma.Param{Name: h.name, In: "header", Description: h.desc,
			Schema: &huma.Schema{Type: huma.TypeString}})
	}
	if rt.body != nil {
		op.RequestBody = &huma.RequestBody{
			Description: "JSON; unknown fields are ignored.",
			Content: map[string]*huma.MediaType{
				"application/json": {Schema: reg.Schema(reflect.TypeOf(rt.body), true, rt.op+"Body")},
			},
		}
	}

	success := &huma.Response{Description: http.StatusText(rt.status)}
	switch {
	case rt.media != "":
		success.Content = map[string]*huma.MediaType{rt.media: {}}
	case rt.resp != nil:
		success.Content = map[string]*huma.MediaType{
			"application/json": {Schema: reg.Schema(reflect.TypeOf(rt.resp), true, rt.op+"Response")},
		}
	}
	if tenantScoped(rt) {
		success.Headers = rateLimitHeaders()
	}
	op.Responses[strconv.Itoa(rt.status)] = success
	if rt.also != 0 {
		op.Responses[strconv.Itoa(rt.also)] = &huma.Response{Description: http.StatusText(rt.also), Content: success.Content}
	}

	for _, status := range errorStatuses(rt) {
		resp := &huma.Response{
			Description: http.StatusText(status) + " (" + errorCodes[status] + ")",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: errSchema}},
		}
		switch status {
		case http.StatusUnauthorized:
			resp.Headers = map[string]*huma.Param{"WWW-Authenticate": {Schema: &huma.Schema{Type: huma.TypeString}}}
		case http.StatusTooManyRequests:
			resp.Headers = map[string]*huma.Param{"Retry-After": {
				Description: "Seconds to wait before trying again.", Schema: &huma.Schema{Type: huma.TypeInteger}}}
			if tenantScoped(rt) {
				maps.Copy(resp.Headers, rateLimitHeaders())
			}
		}
		op.Responses[strconv.Itoa(status)] = resp
	}

	switch {
	case rt.policy.public:
		op.Security = []map[string][]string{} // explicitly none
	case rt.policy.kinds&apiKeys != 0:
		op.Security = []map[string][]string{{securityBearer: {}}, {securityAPIKey: {}}}
	default:
		op.Security = []map[string][]string{{securityBearer: {}}}
	}
	return op
}

// tenantScoped: the route's responses carry the tenant's RateLimit-* headers.
func tenantScoped(rt *route) bool {
	p := rt.policy
	return !p.public && (p.scope == scopeHeader || p.scope == scopePath || p.scope == scopeOptional)
}

// rateLimitHeaders document the per-minute limit's response headers.
func rateLimitHeaders() map[string]*huma.Param {
	integer := func(d string) *huma.Param {
		return &huma.Param{Description: d, Schema: &huma.Schema{Type: huma.TypeInteger}}
	}
	return map[string]*huma.Param{
		headerRateLimit:     integer("The plan's API calls per minute (absent on plans without a limit)."),
		headerRateRemaining: integer("Calls left in this minute across every gateway (an estimate)."),
		headerRateReset:     integer("Seconds until the minute ends."),
	}
}

// errorStatuses are the error statuses a route can answer, from what it declares.
func errorStatuses(rt *route) []int {
	set := map[int]bool{http.StatusInternalServerError: true}
	p := rt.policy
	if !p.public {
		for _, s := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
			set[s] = true
		}
		if p.kinds != anyKind || p.minRole != "" || p.platformOnly || p.requiresTenant() {
			set[http.StatusForbidden] = true
		}
		if p.scope == scopeHeader || p.scope == scopePath || p.scope == scopeOptional {
			set[http.StatusTooManyRequests] = true // the per-minute limit of the tenant
		}
	}
	if len(pathParams(rt.path)) > 0 {
		set[http.StatusNotFound] = true
	}
	if rt.body != nil {
		for _, s := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge,
			http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity} {
			set[s] = true
		}
	}
	if rt.list || len(rt.query) > 0 {
		set[http.StatusBadRequest], set[http.StatusUnprocessableEntity] = true, true
	}
	for _, s := range rt.errs {
		set[s] = true
	}
	if rt.also != 0 {
		delete(set, rt.also)
	}
	out := make([]int, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func pathParam(rt *route, name string) *huma.Param {
	p := &huma.Param{Name: name, In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString}}
	switch {
	case name == "id" && rt.tag == tagAgents:
		p.Description = "Agent id (ULID, any case). A malformed id is 404."
	case name == "id" && rt.tag == tagSSHKeys:
		p.Description = "SSH key id (ULID, any case). A malformed id is 404."
	case name == "id" && (rt.tag == tagChannels || rt.tag == tagMessages):
		p.Description = "Channel id (ULID, any case). A malformed id is 404."
	case name == "agent_id":
		p.Description = "Agent id (ULID, any case). A malformed id is 404."
	case name == "id":
		p.Description = "Tenant id (lower-case UUID). A malformed id is 404."
		p.Schema.Format = "uuid"
	case name == "user_id":
		max := 256
		p.Description = "The member's user id (the token's sub), percent-encoded."
		p.Schema.MaxLength = &max
	case name == "file":
		p.Description = "Asset file name."
	}
	return p
}

// schemaName qualifies types of the versioned service contracts with their service
// (tenantv1.CreateRequest → TenantCreateRequest) so later services' types of the same
// name do not collide; other types keep huma's default name.
func schemaName(t reflect.Type, hint string) string {
	name := huma.DefaultSchemaNamer(t, hint)
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	pkg := t.PkgPath()
	pkg = pkg[strings.LastIndex(pkg, "/")+1:]
	if !strings.HasPrefix(t.PkgPath(), "github.com/artcafe-ai/pubsub/contracts/") || !strings.HasSuffix(pkg, "v1") {
		return name
	}
	svc := []rune(strings.TrimSuffix(pkg, "v1"))
	if len(svc) == 0 {
		return name
	}
	svc[0] = unicode.ToUpper(svc[0])
	if strings.HasPrefix(name, string(svc)) {
		return name
	}
	return string(svc) + name
}

// registerPatchAliases finds every patch.Field[T] reachable from t and documents it as
// T: on the wire a patch field is just the value, or null where the field is nullable.
func registerPatchAliases(reg huma.Registry, t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	if isPatchField(t) {
		v, _ := t.FieldByName("Value")
		alias := v.Type
		if inline, ok := inlineObjects[v.Type]; ok {
			alias = inline
		}
		reg.RegisterTypeAlias(t, alias)
		registerPatchAliases(reg, v.Type, seen)
		return
	}
	for i := range t.NumField() {
		registerPatchAliases(reg, t.Field(i).Type, seen)
	}
}

// inlineObjects are the struct types that nullable patch fields carry. huma refuses
// nullable on a $ref to an object, so such a field is documented with an inline copy of
// the object's schema instead.
var inlineObjects = map[reflect.Type]reflect.Type{
	reflect.TypeFor[channelv1.History](): reflect.TypeFor[inlineSchema[channelv1.History]](),
}

// inlineSchema documents a T inline (not as a $ref), so that it may be nullable.
type inlineSchema[T any] struct{}

// Schema returns a copy of T's schema: the field's nullability must not reach the shared one.
func (inlineSchema[T]) Schema(reg huma.Registry) *huma.Schema {
	s := *reg.Schema(reflect.TypeFor[T](), false, "")
	s.AdditionalProperties = nil // unknown fields are ignored, as everywhere (allowAdditionalProperties)
	return &s
}

func isPatchField(t reflect.Type) bool {
	return t.PkgPath() == "github.com/artcafe-ai/pubsub/contracts/patch" && strings.HasPrefix(t.Name(), "Field[")
}

// allowAdditionalProperties opens every object schema: the API ignores unknown fields
// (SPEC §4.1), and clients should accept fields added to replies later.
func allowAdditionalProperties(reg huma.Registry) {
	for _, s := range reg.Map() {
		if b, ok := s.AdditionalProperties.(bool); ok && !b {
			s.AdditionalProperties = nil
		}
	}
}
