package natsx

import (
	"runtime"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

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
