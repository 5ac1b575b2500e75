// Package channels is the agent service's client of the channel service (contract
// channelv1): removing a deleted agent's subscription records. Calls carry the caller's
// identity (same context), so the channel service works in the caller's tenant.
package channels

import (
	"context"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

// Client implements agent.Channels over NATS.
type Client struct {
	rpc *natsrpc.Client
}

var _ agent.Channels = (*Client)(nil)

// New returns the client on rpc.
func New(rpc *natsrpc.Client) *Client { return &Client{rpc: rpc} }

// RemoveAgent implements agent.Channels.
func (c *Client) RemoveAgent(ctx context.Context, agentID string) error {
	return c.rpc.Call(ctx, channelv1.Subject(channelv1.OpAgentRemoved), channelv1.AgentRemovedRequest{AgentID: agentID}, nil)
}
