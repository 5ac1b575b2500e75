// Package deploycheck holds the static checks of the deployment files (docker-compose.yml,
// the Dockerfile, the CloudFormation templates under infra/): no Docker engine and no AWS
// account is needed, so they run with every `make test`.
package deploycheck
