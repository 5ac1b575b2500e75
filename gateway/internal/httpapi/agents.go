package httpapi

import (
	"net/http"
	"net/url"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// AgentEnvelope wraps one agent: the reply schema. Handlers relay the service's
// agentv1.AgentResponse with "success" spliced in (request.relay).
type AgentEnvelope struct {
	Agent   Raw[agentv1.Agent] `json:"agent"`
	Success bool               `json:"success"`
}

// AgentCreated is the reply of POST /agents: the service's agentv1.CreateResponse, relayed
// with "success" spliced in.
type AgentCreated struct {
	Agent   Raw[agentv1.Agent] `json:"agent"`
	Key     Raw[sshkeyv1.Key]  `json:"key,omitempty" doc:"the SSH key registered from public_key (type agent); absent without public_key"`
	Success bool               `json:"success"`
}

// AgentList is one page of the tenant's agents, ordered by id.
type AgentList struct {
	Agents    []Raw[agentv1.Agent] `json:"agents" nullable:"false"`
	NextToken *string              `json:"next_token" doc:"opaque; null on the last page"`
}

// agentPage is the service's agentv1.ListResponse with the agents relayed as they came.
type agentPage struct {
	Agents []Raw[agentv1.Agent] `json:"agents"`
	Cursor string               `json:"cursor"`
}

func errAgentNotFound() error { return natsrpc.NotFound("agent not found") }

// agentPathID is the {id} of an agent path, upper-cased; a malformed one is 404.
func agentPathID(r *request) (string, error) {
	id, ok := agentv1.NormalizeID(r.c.Params("id"))
	if !ok {
		return "", errAgentNotFound()
	}
	return id, nil
}

func (a *api) listAgents(r *request) error {
	q := agentv1.ListRequest{Status: query(r, "status"), Type: query(r, "type"), Capability: query(r, "capability")}
	// Filters first: an invalid enum is 422 whatever the token says.
	if err := validate(&q); err != nil {
		return err
	}
	b := pageBinding{scope: "t:" + r.access.TenantID, route: agentv1.Subject(agentv1.OpList),
		filters: canonicalFilters("status", q.Status, "type", q.Type, "capability", q.Capability)}
	var err error
	if q.Limit, q.Cursor, err = a.tokens.page(r.c, b); err != nil {
		return err
	}
	var out agentPage
	if err := r.call(agentv1.Subject(agentv1.OpList), &q, &out); err != nil {
		return err
	}
	if out.Agents == nil {
		out.Agents = []Raw[agentv1.Agent]{}
	}
	return r.reply(http.StatusOK, AgentList{Agents: out.Agents, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) createAgent(r *request) error {
	var body agentv1.CreateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	return r.relay(http.StatusCreated, agentv1.Subject(agentv1.OpCreate), &agentv1.CreateRequest{Agent: body})
}

func (a *api) getAgent(r *request) error {
	id, err := agentPathID(r)
	if err != nil {
		return err
	}
	return r.relay(http.StatusOK, agentv1.Subject(agentv1.OpGet), &agentv1.GetRequest{AgentID: id})
}

func (a *api) updateAgent(r *request) error {
	id, err := agentPathID(r)
	if err != nil {
		return err
	}
	var body agentv1.UpdateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	// An agent edits what it is able to do, not what it is called or which kind it is
	// (SPEC §13); the service checks it again.
	if r.principal.Kind == natsrpc.KindAgent && !body.AgentEditable() {
		return natsrpc.Forbidden("an agent may change only its description, capabilities and metadata")
	}
	return r.relay(http.StatusOK, agentv1.Subject(agentv1.OpUpdate), &agentv1.UpdateRequest{AgentID: id, Changes: body})
}

func (a *api) setAgentStatus(r *request) error {
	id, err := agentPathID(r)
	if err != nil {
		return err
	}
	var body agentv1.SetStatusBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	return r.relay(http.StatusOK, agentv1.Subject(agentv1.OpSetStatus), &agentv1.SetStatusRequest{AgentID: id, Changes: body})
}

func (a *api) deleteAgent(r *request) error {
	id, err := agentPathID(r)
	if err != nil {
		return err
	}
	if err := r.call(agentv1.Subject(agentv1.OpDelete), &agentv1.DeleteRequest{AgentID: id}, nil); err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}

func (a *api) agentStatusSummary(r *request) error {
	var out Raw[agentv1.StatusSummary]
	if err := r.call(agentv1.Subject(agentv1.OpStatusSummary), &agentv1.StatusSummaryRequest{}, &out); err != nil {
		return err
	}
	return r.reply(http.StatusOK, out)
}

// query is a query parameter's value, copied out of the request buffer.
func query(r *request, name string) string {
	return string(r.c.Context().QueryArgs().Peek(name))
}

// canonicalFilters encodes name/value pairs (empty values left out) the same way every
// time, for binding a next_token to the filters it was issued for.
func canonicalFilters(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	return v.Encode()
}
