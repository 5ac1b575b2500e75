package httpapi

import (
	"net/http"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// KeyEnvelope wraps one SSH key: the reply schema. Handlers relay the service's
// sshkeyv1.KeyResponse with "success" spliced in (request.relay).
type KeyEnvelope struct {
	Key     Raw[sshkeyv1.Key] `json:"key"`
	Success bool              `json:"success"`
}

// KeyList is one page of the tenant's SSH keys, ordered by id.
type KeyList struct {
	Keys      []Raw[sshkeyv1.Key] `json:"keys" nullable:"false"`
	NextToken *string             `json:"next_token" doc:"opaque; null on the last page"`
}

// keyPage is the service's sshkeyv1.ListResponse with the keys relayed as they came.
type keyPage struct {
	Keys   []Raw[sshkeyv1.Key] `json:"keys"`
	Cursor string              `json:"cursor"`
}

// keyPathID is the {id} of an SSH-key path, upper-cased; a malformed one is 404.
func keyPathID(r *request) (string, error) {
	id, ok := sshkeyv1.NormalizeID(r.c.Params("id"))
	if !ok {
		return "", natsrpc.NotFound("ssh key not found")
	}
	return id, nil
}

// upperID upper-cases an id that is a ULID in some case and leaves anything else for the
// contract's validation to name.
func upperID(id string) string {
	if n, ok := sshkeyv1.NormalizeID(id); ok {
		return n
	}
	return id
}

func (a *api) listKeys(r *request) error {
	q := sshkeyv1.ListRequest{AgentID: upperID(query(r, "agent_id")), KeyType: query(r, "key_type")}
	if err := validate(&q); err != nil {
		return err
	}
	b := pageBinding{scope: "t:" + r.access.TenantID, route: sshkeyv1.Subject(sshkeyv1.OpList),
		filters: canonicalFilters("agent_id", q.AgentID, "key_type", q.KeyType)}
	var err error
	if q.Limit, q.Cursor, err = a.tokens.page(r.c, b); err != nil {
		return err
	}
	var out keyPage
	if err := r.call(sshkeyv1.Subject(sshkeyv1.OpList), &q, &out); err != nil {
		return err
	}
	if out.Keys == nil {
		out.Keys = []Raw[sshkeyv1.Key]{}
	}
	return r.reply(http.StatusOK, KeyList{Keys: out.Keys, NextToken: a.tokens.wrap(b, out.Cursor)})
}

func (a *api) createKey(r *request) error {
	var body sshkeyv1.CreateBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	body.AgentID = upperID(body.AgentID)
	return r.relay(http.StatusCreated, sshkeyv1.Subject(sshkeyv1.OpCreate), &sshkeyv1.CreateRequest{Key: body})
}

func (a *api) getKey(r *request) error {
	id, err := keyPathID(r)
	if err != nil {
		return err
	}
	return r.relay(http.StatusOK, sshkeyv1.Subject(sshkeyv1.OpGet), &sshkeyv1.GetRequest{KeyID: id})
}

func (a *api) revokeKey(r *request) error {
	id, err := keyPathID(r)
	if err != nil {
		return err
	}
	var body sshkeyv1.RevokeBody
	if err := decodeBody(r.c, &body); err != nil {
		return err
	}
	return r.relay(http.StatusOK, sshkeyv1.Subject(sshkeyv1.OpRevoke), &sshkeyv1.RevokeRequest{KeyID: id, Changes: body})
}

func (a *api) deleteKey(r *request) error {
	id, err := keyPathID(r)
	if err != nil {
		return err
	}
	if err := r.call(sshkeyv1.Subject(sshkeyv1.OpDelete), &sshkeyv1.DeleteRequest{KeyID: id}, nil); err != nil {
		return err
	}
	return r.c.SendStatus(http.StatusNoContent)
}
