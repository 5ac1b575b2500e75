# ArtCafe PubSub: build, run and test entry points. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VERSION ?= 0.1.0
GIT_SHA ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILDINFO := github.com/artcafe-ai/pubsub/services/kit/buildinfo
LDFLAGS := -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).GitSHA=$(GIT_SHA)

# Discovered, so a new service or module is picked up without editing this file.
# Modules: every folder with a go.mod (they must also be listed in go.work).
MODULES := $(sort $(patsubst ./%/go.mod,%,$(shell find . -name go.mod -not -path '*/node_modules/*' -not -path './.git/*')))
# Binaries: every main package under gateway/cmd and services/*/cmd, plus the launcher, the
# agent login example and the artcafe CLI.
CMDS := $(sort $(patsubst %/,%,$(wildcard gateway/cmd/*/) $(wildcard services/*/cmd/*/))) scripts/launcher scripts/agent-login cli/cmd/artcafe
PKGS := $(addprefix ./,$(addsuffix /...,$(MODULES)))
# Suites that also run against DynamoDB: the store adapters and every service module.
DYNAMO_PKGS := ./services/kit/store/... $(addprefix ./,$(addsuffix /...,$(filter-out services/kit,$(filter services/%,$(MODULES)))))
GO_FILES = $(shell find $(MODULES) -name '*.go' -not -path '*/node_modules/*')

# 2 cores: two test binaries at a time; -count=1 so results are never cached.
TEST_FLAGS ?= -count=1 -p 2
WITH_DYNALITE := scripts/dynalite/with-dynalite.sh
# Fuzz targets (func Fuzz*) are discovered in these packages; each runs FUZZ_TIME.
FUZZ_PKGS ?= ./services/sshkey/...
FUZZ_TIME ?= 10s

.PHONY: help build run token test test-unit test-fuzz test-dynamodb test-e2e test-cluster lint bench bench-go clean docker generate

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

build: ## build every binary into bin/ (VERSION and GIT_SHA stamped in)
	@mkdir -p bin
	go build -ldflags "$(LDFLAGS)" -o bin/ $(addprefix ./,$(CMDS))

run: build ## build, then run the stack (embedded NATS, services, gateway); Ctrl-C stops it
	bin/launcher run

token: ## print a user token for local-user (ROLE=platform_admin, SUB=someone-else)
	@mkdir -p bin
	@go build -o bin/launcher ./scripts/launcher
	@bin/launcher token $(if $(ROLE),-role $(ROLE)) $(if $(SUB),-sub $(SUB))

test: lint test-unit test-fuzz test-dynamodb test-e2e test-cluster ## everything: lint, -race tests, fuzzing, DynamoDB legs, end-to-end, the scale-out run
	@echo "make test: all passed"

test-unit: ## unit and integration tests of every module with -race (end-to-end excluded)
	go test -race $(TEST_FLAGS) $$(go list $(PKGS) | grep -v -e '/scripts/e2e$$' -e '/scripts/cluster$$')

test-fuzz: ## each fuzz target of FUZZ_PKGS (the sshkey service) for FUZZ_TIME (10s), after its seed corpus
	@list="$$(go test -list '^Fuzz' $(FUZZ_PKGS) 2>&1)" || { echo "$$list"; exit 1; }; \
	targets="$$(awk '/^Fuzz/ {n[++c] = $$1; next} /^(ok|\?)/ {for (i = 1; i <= c; i++) print $$2 " " n[i]; c = 0}' <<<"$$list")"; \
	if [[ -z "$$targets" ]]; then echo "test-fuzz: no fuzz targets in $(FUZZ_PKGS)"; exit 1; fi; \
	while read -r pkg target; do \
		echo "go test -run '^$$' -fuzz '^$$target\$$' -fuzztime $(FUZZ_TIME) $$pkg"; \
		go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZ_TIME) "$$pkg"; \
	done <<<"$$targets"

test-dynamodb: ## the store and service suites against DynamoDB (dynalite), with -race
	$(WITH_DYNALITE) go test -race $(TEST_FLAGS) $(DYNAMO_PKGS)

test-e2e: ## end-to-end: the real binaries through the launcher, embedded and DynamoDB legs, the console in headless Chromium (no -race)
	@chrome="$$(scripts/chromium/ensure.sh)"; echo "chromium: $$chrome"; \
	CHROME_BIN="$$chrome" $(WITH_DYNALITE) go test $(TEST_FLAGS) -timeout 30m -v ./scripts/e2e/...

test-cluster: ## scale-out run: 3 NATS nodes (JetStream R3), 2 replicas of every service on dynalite, 2 gateways; SIGKILLs under load (no -race)
	$(WITH_DYNALITE) go test -count=1 -timeout 20m -v ./scripts/cluster/...

lint: ## gofmt must list nothing; go vet on every module
	@out="$$(gofmt -l $(GO_FILES))"; if [[ -n "$$out" ]]; then echo "gofmt -l lists:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do echo "go vet ./$$m/..."; (cd "$$m" && go vet ./...); done

bench: ## start a fleet, load it with wrk and natsload: gateway vs direct NATS vs the stack's reference
	scripts/bench/bench.sh

bench-go: ## Go benchmarks of every module
	go test -run '^$$' -bench . -benchmem $(PKGS)

# Images: one per binary from the one Dockerfile (BIN selects it).
DOCKER_BINS := gateway tenant agent sshkey channel usage launcher

docker: ## build one image per binary, artcafe-pubsub/<bin>:VERSION (needs a Docker engine)
	@for b in $(DOCKER_BINS); do \
		echo "docker build --build-arg BIN=$$b -t artcafe-pubsub/$$b:$(VERSION) ."; \
		docker build --build-arg BIN=$$b --build-arg VERSION=$(VERSION) --build-arg GIT_SHA=$(GIT_SHA) \
			-t artcafe-pubsub/$$b:$(VERSION) . || exit 1; \
	done

generate: ## regenerate infra/nats/*.conf (NATS permissions) and infra/{dynamodb,services}.yaml from the code
	go run ./scripts/natsconf write
	go run ./scripts/infragen

clean: ## remove bin/ (local data in .data is kept; rm -rf .data to start over)
	rm -rf bin
