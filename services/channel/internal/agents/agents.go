// Package agents asks the agent service about agents, through its contract
// (contracts/agentv1 lookup), for the channel domain.
package agents

import (
	"context"
	"fmt"
	"net/http"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
)

// Client implements channel.Agents with agentv1 lookups.
type Client struct {
	c *natsrpc.Client
}

var _ channel.Agents = (*Client)(nil)

// New returns a client calling through c.
func New(c *natsrpc.Client) *Client { return &Client{c: c} }

// Lookup implements channel.Agents. The tenant travels in the body (a lookup); the
// caller's identity still travels in ctx, so the request id follows the call.
func (a *Client) Lookup(ctx context.Context, tenantID, agentID string) error {
	err := a.c.Call(ctx, agentv1.Subject(agentv1.OpLookup), agentv1.LookupRequest{TenantID: tenantID, AgentID: agentID}, nil)
	if err == nil {
		return nil
	}
	e, ok := natsrpc.AsError(err)
	switch {
	case ok && e.Status == http.StatusNotFound:
		return fmt.Errorf("%w: agent %s (%w)", channel.ErrNotFound, agentID, err)
	case ok && (e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout):
		return fmt.Errorf("%w: agent lookup (%w)", channel.ErrUnavailable, err)
	}
	return fmt.Errorf("agent lookup: %w", err)
}
