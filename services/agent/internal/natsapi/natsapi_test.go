package natsapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/patch"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

func TestEveryOperation(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)

	// create: defaults filled in, id upper-case, both ids, UTC times.
	created := f.create(t, ctx, agentv1.CreateBody{
		Name: "indexer", Description: "indexes things",
		Capabilities: []agentv1.Capability{{Name: "search", Version: "1.2", Parameters: map[string]any{"k": "v"}}},
		Metadata:     map[string]any{"team": "data", "n": 1.5},
	})
	a := created.Agent
	if a.ID == "" || a.AgentID != a.ID || strings.ToUpper(a.ID) != a.ID || a.TenantID != tenantA || a.Type != agentv1.TypeWorker ||
		a.Status != agentv1.StatusOffline || a.LastSeen != nil || a.CreatedAt.Location() != time.UTC || !a.CreatedAt.Equal(a.UpdatedAt) ||
		created.Key != nil {
		t.Fatalf("create: %+v", created)
	}

	// get: the raw reply has every field of the resource, null last_seen, Z times.
	msg := nats.NewMsg(agentv1.Subject(agentv1.OpGet))
	msg.Header.Set(natsrpc.HeaderTenantID, tenantA)
	msg.Header.Set(natsrpc.HeaderPrincipalKind, string(natsrpc.KindUser))
	msg.Header.Set(natsrpc.HeaderRole, natsrpc.RoleViewer)
	msg.Data = []byte(`{"agent_id":"` + a.ID + `"}`)
	reply, err := f.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]map[string]json.RawMessage
	if err := json.Unmarshal(reply.Data, &raw); err != nil {
		t.Fatalf("%v: %s", err, reply.Data)
	}
	for _, k := range []string{"id", "agent_id", "tenant_id", "name", "type", "description", "status", "capabilities", "metadata", "last_seen", "created_at", "updated_at"} {
		if _, ok := raw["agent"][k]; !ok {
			t.Errorf("get reply lacks %s: %s", k, reply.Data)
		}
	}
	if string(raw["agent"]["last_seen"]) != "null" || !strings.HasSuffix(string(raw["agent"]["created_at"]), `Z"`) {
		t.Fatalf("get reply: %s", reply.Data)
	}
	for k := range raw["agent"] {
		if strings.Contains(k, "deleting") || k == "version" {
			t.Fatalf("get reply leaks %s: %s", k, reply.Data)
		}
	}
	if got := f.get(t, apiKey(tenantA), a.ID); got.Name != "indexer" || got.Metadata["team"] != "data" || got.Capabilities[0].Parameters["k"] != "v" {
		t.Fatalf("get: %+v", got)
	}

	// list
	var list agentv1.ListResponse
	f.call(t, viewer(tenantA), agentv1.OpList, agentv1.ListRequest{}, &list)
	if len(list.Agents) != 1 || list.Agents[0].ID != a.ID || list.Cursor != "" {
		t.Fatalf("list: %+v", list)
	}

	// update: absent keeps, null clears, a value replaces wholesale.
	var upd agentv1.AgentResponse
	f.call(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{
		Name: patch.Of("indexer-2"), Type: patch.Of(agentv1.TypeSpecialist), Description: patch.Null[string](),
		Metadata: patch.Of(map[string]any{"only": true}),
	}}, &upd)
	u := upd.Agent
	if u.Name != "indexer-2" || u.Type != agentv1.TypeSpecialist || u.Description != "" || len(u.Metadata) != 1 || u.Metadata["only"] != true ||
		len(u.Capabilities) != 1 || !u.CreatedAt.Equal(a.CreatedAt) || !u.UpdatedAt.After(a.UpdatedAt) && !u.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("update: %+v", u)
	}
	upd = agentv1.AgentResponse{} // decoding into the old reply would merge the maps
	f.call(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{
		Capabilities: patch.Null[[]agentv1.Capability](), Metadata: patch.Null[map[string]any](),
	}}, &upd)
	if upd.Agent.Capabilities == nil || len(upd.Agent.Capabilities) != 0 || upd.Agent.Metadata == nil || len(upd.Agent.Metadata) != 0 {
		t.Fatalf("update with nulls: %+v", upd.Agent)
	}
	if got := f.get(t, ctx, a.ID); got.Name != "indexer-2" || got.Type != agentv1.TypeSpecialist {
		t.Fatalf("get after update: %+v", got)
	}

	// set_status
	if s := f.setStatus(t, ctx, a.ID, agentv1.StatusBusy); s.Status != agentv1.StatusBusy {
		t.Fatalf("set_status: %+v", s)
	}

	// status_summary
	if s := f.summary(t, ctx); s != (agentv1.StatusSummary{Busy: 1, Total: 1}) {
		t.Fatalf("summary: %+v", s)
	}

	// lookup (the tenant in the body, not the identity)
	var lk agentv1.LookupResponse
	f.call(t, system, agentv1.OpLookup, agentv1.LookupRequest{TenantID: tenantA, AgentID: a.ID}, &lk)
	if lk.AgentID != a.ID || lk.Status != agentv1.StatusBusy {
		t.Fatalf("lookup: %+v", lk)
	}

	// delete
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, nil)
	f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, agentv1.OpLookup, agentv1.LookupRequest{TenantID: tenantA, AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	if s := f.summary(t, ctx); s != (agentv1.StatusSummary{}) {
		t.Fatalf("summary after delete: %+v", s)
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	a := f.create(t, ctx, agentv1.CreateBody{Name: "a"}).Agent

	// 400: a body that is not JSON; a cursor this service did not produce.
	msg := nats.NewMsg(agentv1.Subject(agentv1.OpCreate))
	msg.Header.Set(natsrpc.HeaderTenantID, tenantA)
	msg.Data = []byte(`{"agent":`)
	reply, err := f.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := natsrpc.ReplyError(reply); e == nil || e.Status != http.StatusBadRequest || e.Code != natsrpc.CodeInvalidJSON {
		t.Fatalf("bad JSON: %v", e)
	}
	f.fails(t, ctx, agentv1.OpList, agentv1.ListRequest{Cursor: "not-a-cursor"}, http.StatusBadRequest, natsrpc.CodeInvalidNextToken)
	var page agentv1.ListResponse
	f.create(t, ctx, agentv1.CreateBody{Name: "b"})
	f.call(t, ctx, agentv1.OpList, agentv1.ListRequest{Limit: 1}, &page)
	// A cursor of the unfiltered list is not one of a filtered list.
	f.fails(t, ctx, agentv1.OpList, agentv1.ListRequest{Limit: 1, Status: agentv1.StatusOffline, Cursor: page.Cursor}, http.StatusBadRequest, natsrpc.CodeInvalidNextToken)

	// 402 is covered with its detail in TestConcurrentCreatesAtTheLimit.

	// 403: roles, and agents outside their own record.
	f.fails(t, viewer(tenantA), agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x"}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, viewer(tenantA), agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	noRole := with(natsrpc.Identity{TenantID: tenantA, Kind: natsrpc.KindUser, PrincipalID: "stranger", Plan: plans.Free})
	f.fails(t, noRole, agentv1.OpGet, agentv1.GetRequest{AgentID: a.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, noRole, agentv1.OpList, agentv1.ListRequest{}, http.StatusForbidden, natsrpc.CodeForbidden)

	// 404: unknown, malformed and lower-case-invalid ids.
	f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: "nope"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: "../x"}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, system, agentv1.OpLookup, agentv1.LookupRequest{TenantID: "not-a-uuid", AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)

	// 409: the agent keeps changing under the update (every conditional write loses).
	f.table.FailWith(func(op string, k store.Key) error {
		if op == "put" && strings.Contains(k.SK, "A#") {
			return store.ErrConditionFailed
		}
		return nil
	})
	f.fails(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{Name: patch.Of("z")}}, http.StatusConflict, natsrpc.CodeConflict)
	f.table.FailWith(nil)

	// 422: the contract's rules, and the domain's.
	e := f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Type: "robot"}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	if len(e.Errors) != 2 {
		t.Fatalf("field errors: %+v", e.Errors)
	}
	f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x", Capabilities: []agentv1.Capability{{Name: "a"}, {Name: "a"}}}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, agentv1.OpList, agentv1.ListRequest{Limit: 101}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, agentv1.OpList, agentv1.ListRequest{Status: "sleepy"}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, agentv1.OpSetStatus, agentv1.SetStatusRequest{AgentID: a.ID}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{Name: patch.Null[string]()}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)
	f.fails(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{Name: patch.Of("")}}, http.StatusUnprocessableEntity, natsrpc.CodeValidationFailed)

	// 500: an identity without a tenant, or with an unknown plan, is the caller's bug.
	noTenant := with(natsrpc.Identity{Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleOwner, Plan: plans.Free})
	f.fails(t, noTenant, agentv1.OpList, agentv1.ListRequest{}, http.StatusInternalServerError, natsrpc.CodeInternal)
	badPlan := with(natsrpc.Identity{TenantID: tenantA, Kind: natsrpc.KindUser, PrincipalID: "u", Role: natsrpc.RoleOwner, Plan: "platinum"})
	f.fails(t, badPlan, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x"}}, http.StatusInternalServerError, natsrpc.CodeInternal)

	// 503: the store is unavailable.
	f.table.FailWith(func(string, store.Key) error { return store.ErrUnavailable })
	f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: a.ID}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.fails(t, ctx, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "x"}}, http.StatusServiceUnavailable, natsrpc.CodeServiceUnavailable)
	f.table.FailWith(nil)

	// Nothing above changed the tenant: two agents, counted right.
	if s := f.summary(t, ctx); s.Total != 2 || s.Offline != 2 {
		t.Fatalf("summary after errors: %+v", s)
	}
}

// Another tenant's agent is 404 for every operation, whoever asks.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	f := start(t)
	a := f.create(t, user(tenantA), agentv1.CreateBody{Name: "mine"}).Agent
	for name, ctx := range map[string]context.Context{"user": user(tenantB), "api key": apiKey(tenantB), "agent token": agentToken(tenantB, a.ID)} {
		t.Run(name, func(t *testing.T) {
			f.fails(t, ctx, agentv1.OpGet, agentv1.GetRequest{AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
			f.fails(t, ctx, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: a.ID, Changes: agentv1.UpdateBody{Description: patch.Of("x")}}, http.StatusNotFound, natsrpc.CodeNotFound)
			if name != "agent token" { // agents may not call these at all (403), whatever the id
				f.fails(t, ctx, agentv1.OpSetStatus, agentv1.SetStatusRequest{AgentID: a.ID, Changes: agentv1.SetStatusBody{Status: agentv1.StatusBusy}}, http.StatusNotFound, natsrpc.CodeNotFound)
				f.fails(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
				var list agentv1.ListResponse
				f.call(t, ctx, agentv1.OpList, agentv1.ListRequest{}, &list)
				if len(list.Agents) != 0 {
					t.Fatalf("list shows another tenant's agents: %+v", list)
				}
				if s := f.summary(t, ctx); s.Total != 0 {
					t.Fatalf("summary counts another tenant's agents: %+v", s)
				}
			}
		})
	}
	f.fails(t, system, agentv1.OpLookup, agentv1.LookupRequest{TenantID: tenantB, AgentID: a.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	if got := f.get(t, user(tenantA), a.ID); got.Name != "mine" || got.Status != agentv1.StatusOffline {
		t.Fatalf("the agent changed: %+v", got)
	}
}

// An agent acts on its own record only: read it, and edit description, capabilities
// and metadata; everything else is 403 on its own id and 404 on any other.
func TestAgentSelf(t *testing.T) {
	t.Parallel()
	f := start(t)
	me := f.create(t, user(tenantA), agentv1.CreateBody{Name: "me"}).Agent
	other := f.create(t, user(tenantA), agentv1.CreateBody{Name: "other"}).Agent
	self := agentToken(tenantA, me.ID)

	if got := f.get(t, self, me.ID); got.ID != me.ID {
		t.Fatalf("own get: %+v", got)
	}
	var upd agentv1.AgentResponse
	f.call(t, self, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: me.ID, Changes: agentv1.UpdateBody{
		Description: patch.Of("I index"), Capabilities: patch.Of([]agentv1.Capability{{Name: "index"}}), Metadata: patch.Of(map[string]any{"v": "2"}),
	}}, &upd)
	if upd.Agent.Description != "I index" || len(upd.Agent.Capabilities) != 1 || upd.Agent.Metadata["v"] != "2" {
		t.Fatalf("own update: %+v", upd.Agent)
	}
	f.fails(t, self, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: me.ID, Changes: agentv1.UpdateBody{Name: patch.Of("boss")}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: me.ID, Changes: agentv1.UpdateBody{Type: patch.Of(agentv1.TypeSystem)}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpSetStatus, agentv1.SetStatusRequest{AgentID: me.ID, Changes: agentv1.SetStatusBody{Status: agentv1.StatusBusy}}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: me.ID}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpList, agentv1.ListRequest{}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpStatusSummary, agentv1.StatusSummaryRequest{}, http.StatusForbidden, natsrpc.CodeForbidden)
	f.fails(t, self, agentv1.OpCreate, agentv1.CreateRequest{Agent: agentv1.CreateBody{Name: "child"}}, http.StatusForbidden, natsrpc.CodeForbidden)

	// Another agent of the same tenant does not exist for it.
	f.fails(t, self, agentv1.OpGet, agentv1.GetRequest{AgentID: other.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, self, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: other.ID, Changes: agentv1.UpdateBody{Description: patch.Of("x")}}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, self, agentv1.OpUpdate, agentv1.UpdateRequest{AgentID: other.ID, Changes: agentv1.UpdateBody{Name: patch.Of("x")}}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, self, agentv1.OpSetStatus, agentv1.SetStatusRequest{AgentID: other.ID, Changes: agentv1.SetStatusBody{Status: agentv1.StatusBusy}}, http.StatusNotFound, natsrpc.CodeNotFound)
	f.fails(t, self, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: other.ID}, http.StatusNotFound, natsrpc.CodeNotFound)
	if got := f.get(t, user(tenantA), other.ID); got.Name != "other" || got.Description != "" {
		t.Fatalf("the other agent changed: %+v", got)
	}
}

func TestStatusSummary(t *testing.T) {
	t.Parallel()
	f := start(t)
	ctx := user(tenantA)
	agents := f.createMany(t, ctx, 6, func(int) agentv1.CreateBody { return agentv1.CreateBody{Name: "a"} })
	if s := f.summary(t, ctx); s != (agentv1.StatusSummary{Offline: 6, Total: 6}) {
		t.Fatalf("after creates: %+v", s)
	}
	f.setStatus(t, ctx, agents[0].ID, agentv1.StatusOnline)
	f.setStatus(t, ctx, agents[1].ID, agentv1.StatusOnline)
	f.setStatus(t, ctx, agents[2].ID, agentv1.StatusBusy)
	f.setStatus(t, ctx, agents[3].ID, agentv1.StatusError)
	f.setStatus(t, ctx, agents[3].ID, agentv1.StatusIdle)
	f.setStatus(t, ctx, agents[3].ID, agentv1.StatusIdle) // no change: counts stay
	if s := f.summary(t, ctx); s != (agentv1.StatusSummary{Online: 2, Busy: 1, Idle: 1, Offline: 2, Total: 6}) {
		t.Fatalf("after status changes: %+v", s)
	}
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: agents[0].ID}, nil)
	f.call(t, ctx, agentv1.OpDelete, agentv1.DeleteRequest{AgentID: agents[5].ID}, nil)
	if s := f.summary(t, viewer(tenantA)); s != (agentv1.StatusSummary{Online: 1, Busy: 1, Idle: 1, Offline: 1, Total: 4}) {
		t.Fatalf("after deletes: %+v", s)
	}
}

func TestMicroDiscovery(t *testing.T) {
	t.Parallel()
	f := start(t)
	reply, err := f.nc.Request("$SRV.INFO."+agentv1.Service, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != agentv1.Service || info.Version != buildinfo.Version {
		t.Fatalf("info: name %q version %q", info.Name, info.Version)
	}
	if info.Metadata["contract_version"] != agentv1.Version || info.Metadata["git_sha"] != buildinfo.GitSHA || info.Metadata["go_version"] == "" {
		t.Fatalf("metadata: %v", info.Metadata)
	}
	subjects := map[string]bool{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = true
	}
	ops := []string{agentv1.OpCreate, agentv1.OpList, agentv1.OpGet, agentv1.OpUpdate, agentv1.OpSetStatus,
		agentv1.OpDelete, agentv1.OpStatusSummary, agentv1.OpLookup}
	for _, op := range ops {
		if !subjects[agentv1.Subject(op)] {
			t.Errorf("endpoint %s not listed", agentv1.Subject(op))
		}
	}
	if len(info.Endpoints) != len(ops) {
		t.Errorf("%d endpoints listed, want %d", len(info.Endpoints), len(ops))
	}
}
