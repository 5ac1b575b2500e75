// Package tenantlookup answers the authenticator's questions about memberships, API
// keys and tenants' standing by asking the tenant service over NATS
// (svc.tenant.v1.lookup_*). It implements auth.Lookups.
package tenantlookup

import (
	"context"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
)

// Client calls the tenant service's lookup endpoints as the system. Errors are
// *natsrpc.Error: 404 when there is no such membership, key or tenant, 503/504 when the
// tenant service is down or slow.
type Client struct {
	rpc *natsrpc.Client
}

// New returns a Client on rpc.
func New(rpc *natsrpc.Client) *Client {
	return &Client{rpc: rpc}
}

// system marks the call as the gateway's own, keeping the request id for correlation.
func system(ctx context.Context) context.Context {
	return natsrpc.WithIdentity(ctx, natsrpc.Identity{
		RequestID: natsrpc.IdentityFrom(ctx).RequestID,
		Kind:      natsrpc.KindSystem,
	})
}

// Membership returns userID's role in tenantID and the tenant's status.
func (c *Client) Membership(ctx context.Context, tenantID, userID string) (tenantv1.Membership, error) {
	var out tenantv1.Membership
	err := c.rpc.Call(system(ctx), tenantv1.Subject(tenantv1.OpLookupMembership),
		&tenantv1.LookupMembershipRequest{TenantID: tenantID, UserID: userID}, &out)
	return out, err
}

// UserTenants lists up to limit of userID's memberships.
func (c *Client) UserTenants(ctx context.Context, userID string, limit int) (tenantv1.LookupUserTenantsResponse, error) {
	var out tenantv1.LookupUserTenantsResponse
	err := c.rpc.Call(system(ctx), tenantv1.Subject(tenantv1.OpLookupUserTenants),
		&tenantv1.LookupUserTenantsRequest{UserID: userID, Limit: limit}, &out)
	return out, err
}

// APIKey finds the tenant of the API key whose SHA-256 (hex) is keyHash.
func (c *Client) APIKey(ctx context.Context, keyHash string) (tenantv1.LookupAPIKeyResponse, error) {
	var out tenantv1.LookupAPIKeyResponse
	err := c.rpc.Call(system(ctx), tenantv1.Subject(tenantv1.OpLookupAPIKey),
		&tenantv1.LookupAPIKeyRequest{KeyHash: keyHash}, &out)
	return out, err
}

// Tenant returns a live tenant's status and tier.
func (c *Client) Tenant(ctx context.Context, tenantID string) (tenantv1.TenantStanding, error) {
	var out tenantv1.TenantStanding
	err := c.rpc.Call(system(ctx), tenantv1.Subject(tenantv1.OpLookupTenant),
		&tenantv1.LookupTenantRequest{TenantID: tenantID}, &out)
	return out, err
}
