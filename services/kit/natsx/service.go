package natsx

import (
	"context"
	"fmt"
	"runtime"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
)

// ServiceInfo describes a micro service for discovery (`nats micro ls/info`).
type ServiceInfo struct {
	Name            string // the service's folder name, e.g. "tenant"
	Description     string
	ContractVersion string // the version of its contracts/<name>v1 package
}

// AddService starts a micro service on nc with the build's semver and metadata (git sha,
// contract version, Go version), so operators can tell running instances apart.
func AddService(nc *nats.Conn, info ServiceInfo) (micro.Service, error) {
	return micro.AddService(nc, micro.Config{
		Name:        info.Name,
		Version:     buildinfo.Version,
		Description: info.Description,
		Metadata: map[string]string{
			"git_sha":          buildinfo.GitSHA,
			"contract_version": info.ContractVersion,
			"go_version":       runtime.Version(),
		},
	})
}

// Endpoint is one operation of a micro service: its name in the service's group and its
// handler.
type Endpoint struct {
	Name    string
	Handler micro.Handler
}

// Handle is the endpoint op, served by fn through srv (natsrpc.Handle).
func Handle[Req, Resp any](srv *natsrpc.Server, op string, fn func(ctx context.Context, req *Req) (*Resp, error)) Endpoint {
	return Endpoint{Name: op, Handler: natsrpc.Handle(srv, op, fn)}
}

// AddEndpoints adds endpoints to ms in group (a service's svc.<name>.v1), stopping at
// the first one micro refuses.
func AddEndpoints(ms micro.Service, group string, endpoints ...Endpoint) error {
	g := ms.AddGroup(group)
	for _, e := range endpoints {
		if err := g.AddEndpoint(e.Name, e.Handler); err != nil {
			return fmt.Errorf("adding endpoint %s: %w", e.Name, err)
		}
	}
	return nil
}
