// Package sshkeylookup answers the gateway's agent-token check ("does the SSH key this
// token was minted with still stand?") by asking the sshkey service over NATS
// (svc.sshkey.v1.lookup_credential). It implements auth.CredentialLookup.
package sshkeylookup

import (
	"context"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
)

// Client calls the sshkey service's lookup endpoint as the system.
type Client struct {
	rpc *natsrpc.Client
}

// New returns a Client on rpc.
func New(rpc *natsrpc.Client) *Client {
	return &Client{rpc: rpc}
}

// Credential is nil when keyID exists in tenantID, is active and is bound to agentID;
// a *natsrpc.Error 404 when not; 503/504 when the sshkey service is down or slow.
func (c *Client) Credential(ctx context.Context, tenantID, agentID, keyID string) error {
	// The lookup names the tenant in its body; the identity only marks the gateway as the
	// caller and keeps the request id for correlation.
	ctx = natsrpc.WithIdentity(ctx, natsrpc.Identity{
		RequestID: natsrpc.IdentityFrom(ctx).RequestID,
		Kind:      natsrpc.KindSystem,
	})
	return c.rpc.Call(ctx, sshkeyv1.Subject(sshkeyv1.OpLookupCredential),
		&sshkeyv1.LookupCredentialRequest{TenantID: tenantID, AgentID: agentID, KeyID: keyID}, &sshkeyv1.Empty{})
}
