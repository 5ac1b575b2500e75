// Package agentlookup asks the agent service whether an agent exists in a tenant, through
// its contract (agentv1 lookup), for the services that bind things to agents: channel
// subscriptions and SSH keys.
package agentlookup

import (
	"context"
	"fmt"
	"net/http"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
)

// Client looks agents up through a natsrpc client.
type Client struct {
	c                     *natsrpc.Client
	notFound, unavailable error
}

// New returns a client calling through c. Its errors wrap the caller's domain errors: a
// missing agent notFound, an agent service that does not answer unavailable.
func New(c *natsrpc.Client, notFound, unavailable error) *Client {
	return &Client{c: c, notFound: notFound, unavailable: unavailable}
}

// Lookup returns nil when agentID is an agent of tenantID. The tenant travels in the body
// (a lookup); the caller's identity still travels in ctx, so the request id follows the
// call.
func (a *Client) Lookup(ctx context.Context, tenantID, agentID string) error {
	err := a.c.Call(ctx, agentv1.Subject(agentv1.OpLookup), agentv1.LookupRequest{TenantID: tenantID, AgentID: agentID}, nil)
	if err == nil {
		return nil
	}
	e, ok := natsrpc.AsError(err)
	switch {
	case ok && e.Status == http.StatusNotFound:
		return fmt.Errorf("%w: agent %s (%w)", a.notFound, agentID, err)
	case ok && (e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout):
		return fmt.Errorf("%w: agent lookup (%w)", a.unavailable, err)
	}
	return fmt.Errorf("agent lookup: %w", err)
}
