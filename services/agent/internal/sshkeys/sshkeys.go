// Package sshkeys is the agent service's client of the sshkey service (contract
// sshkeyv1): checking and registering an agent's public key, and deleting an agent's
// keys. Calls carry the caller's identity (same context), so the sshkey service works in
// the caller's tenant with the caller's plan.
package sshkeys

import (
	"context"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

// Client implements agent.Keys over NATS.
type Client struct {
	rpc *natsrpc.Client
}

var _ agent.Keys = (*Client)(nil)

// New returns the client on rpc.
func New(rpc *natsrpc.Client) *Client { return &Client{rpc: rpc} }

// CheckPublicKey implements agent.Keys.
func (c *Client) CheckPublicKey(ctx context.Context, publicKey string) error {
	return c.rpc.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCheckPublicKey), sshkeyv1.CheckPublicKeyRequest{PublicKey: publicKey}, nil)
}

// CreateForAgent implements agent.Keys.
func (c *Client) CreateForAgent(ctx context.Context, agentID, name, publicKey string) (*sshkeyv1.Key, error) {
	var out sshkeyv1.KeyResponse
	err := c.rpc.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpCreateForAgent), sshkeyv1.CreateForAgentRequest{
		AgentID: agentID,
		Key:     sshkeyv1.CreateBody{Name: name, PublicKey: publicKey, KeyType: sshkeyv1.TypeAgent, AgentID: agentID},
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out.Key, nil
}

// DeleteForAgent implements agent.Keys.
func (c *Client) DeleteForAgent(ctx context.Context, agentID string) error {
	return c.rpc.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpDeleteForAgent), sshkeyv1.DeleteForAgentRequest{AgentID: agentID}, nil)
}
