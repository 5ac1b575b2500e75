# syntax=docker/dockerfile:1
# One image per binary (SPEC §10): `docker build --build-arg BIN=<name> .` with BIN one of
# gateway tenant agent sshkey channel usage launcher (`make docker` builds them all).
# Static (CGO off), non-root (distroless nonroot, uid 65532), no shell, no secret: every
# secret comes from the environment at run time. /probe is the healthcheck helper.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
ARG BIN
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The workspace (go.work) ties the modules together as it does for `make build`.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    case "${BIN:-}" in \
      gateway) pkg=./gateway/cmd/gateway ;; \
      launcher) pkg=./scripts/launcher ;; \
      tenant|agent|sshkey|channel|usage) pkg=./services/${BIN}/cmd/${BIN} ;; \
      *) echo "BIN must be one of gateway tenant agent sshkey channel usage launcher (got '${BIN:-}')" >&2; exit 1 ;; \
    esac; \
    bi=github.com/artcafe-ai/pubsub/services/kit/buildinfo; \
    go build -trimpath -ldflags "-s -w -X ${bi}.Version=${VERSION} -X ${bi}.GitSHA=${GIT_SHA}" -o /out/app "$pkg"; \
    go build -trimpath -ldflags "-s -w" -o /out/probe ./scripts/probe

FROM gcr.io/distroless/static-debian12:nonroot
ARG BIN
ARG VERSION=0.1.0
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="artcafe-${BIN}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.source="https://github.com/artcafe-ai/pubsub"
COPY --from=build /out/app /app
COPY --from=build /out/probe /probe
# Metrics listen on all interfaces inside the container (never published by compose);
# the gateway's HTTP port is the only one meant to be reachable.
ENV LOG_FORMAT=json METRICS_ADDR=0.0.0.0:9090
USER 65532:65532
ENTRYPOINT ["/app"]
