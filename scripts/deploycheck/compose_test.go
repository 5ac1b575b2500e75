package deploycheck

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
)

// root is the repository root from this package's folder.
var root = filepath.Join("..", "..")

// dummies are the variables compose requires (`${X:?set it}`), set to placeholders.
func dummies(t *testing.T) {
	t.Helper()
	t.Setenv("AUTH_JWT_SECRET", "dummy-dummy-dummy-dummy-dummy-dummy")
	for _, c := range natsperm.Components() {
		up := strings.ToUpper(c)
		t.Setenv("NATS_NKEY_"+up, "UDUMMY"+up)
		t.Setenv("NATS_SEED_"+up, "SUDUMMY"+up)
	}
}

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithOsEnv, cli.WithWorkingDirectory(root), cli.WithName("artcafe-pubsub"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// mainPackages are the BIN values the Dockerfile accepts, each a main package.
var mainPackages = map[string]string{
	"gateway":  "gateway/cmd/gateway",
	"tenant":   "services/tenant/cmd/tenant",
	"agent":    "services/agent/cmd/agent",
	"sshkey":   "services/sshkey/cmd/sshkey",
	"channel":  "services/channel/cmd/channel",
	"usage":    "services/usage/cmd/usage",
	"launcher": "scripts/launcher",
}

func isMainPackage(t *testing.T, dir string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err == nil && regexp.MustCompile(`(?m)^package main$`).Match(b) {
			return true
		}
	}
	return false
}

func TestComposeFleet(t *testing.T) {
	dummies(t)
	p := loadCompose(t)
	want := []string{"nats", "dynamodb", "gateway", "tenant", "agent", "sshkey", "channel", "usage"}
	names := p.ServiceNames()
	for _, w := range want {
		if !slices.Contains(names, w) {
			t.Errorf("no %s service (have %v)", w, names)
		}
	}
	healthy := map[string]bool{}
	for name, s := range p.Services {
		healthy[name] = s.HealthCheck != nil && !s.HealthCheck.Disable && len(s.HealthCheck.Test) > 0
	}
	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			// Built services name a BIN that the Dockerfile knows and that is a main package.
			if s.Build != nil {
				bin := s.Build.Args["BIN"]
				if bin == nil {
					t.Fatal("built without a BIN argument")
				}
				dir, ok := mainPackages[*bin]
				if !ok || !isMainPackage(t, dir) {
					t.Fatalf("BIN=%s is not a main package of the repo", *bin)
				}
				if *bin != name {
					t.Fatalf("service %s builds BIN=%s", name, *bin)
				}
				df := s.Build.Dockerfile
				if df == "" {
					df = "Dockerfile"
				}
				text, err := os.ReadFile(filepath.Join(s.Build.Context, df))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(text), dir) && !strings.Contains(string(text), "./services/${BIN}/cmd/${BIN}") {
					t.Fatalf("the Dockerfile does not build %s", dir)
				}
			}
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("port %d is published on %q, not 127.0.0.1", port.Target, port.HostIP)
				}
			}
			if !healthy[name] {
				if len(s.DependsOn) == 0 {
					t.Fatal("no healthcheck and depends on nothing")
				}
			}
			for dep, d := range s.DependsOn {
				if d.Condition != types.ServiceConditionHealthy || !healthy[dep] {
					t.Errorf("depends on %s without waiting for it to be healthy", dep)
				}
			}
			// NATS: every component authenticates with its own seed, as a file secret.
			if s.Build != nil {
				creds := s.Environment["NATS_CREDS"]
				if creds == nil || len(s.Secrets) != 1 || *creds != "/run/secrets/"+s.Secrets[0].Source || s.Secrets[0].Source != "nats_seed_"+name {
					t.Errorf("NATS_CREDS %v, secrets %+v: want its own seed secret", creds, s.Secrets)
				}
			}
		})
	}
	for _, c := range natsperm.Components() {
		sec, ok := p.Secrets["nats_seed_"+c]
		if !ok || sec.Environment != "NATS_SEED_"+strings.ToUpper(c) {
			t.Errorf("secret nats_seed_%s: %+v", c, sec)
		}
	}
}

// Secrets have no value in the file: compose refuses to start without them.
func TestComposeHasNoSecrets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, name := range []string{"AUTH_JWT_SECRET"} {
		if !regexp.MustCompile(name + `: "\$\{` + name + `:\?[^}]+\}"`).MatchString(text) {
			t.Errorf("%s is not required from the environment (${%s:?...})", name, name)
		}
	}
	for _, c := range natsperm.Components() {
		v := natsperm.NKeyEnv(c)
		if !regexp.MustCompile(v + `: "\$\{` + v + `:\?[^}]+\}"`).MatchString(text) {
			t.Errorf("%s is not required from the environment", v)
		}
	}
	// Nothing that looks like a seed, a key or a password is written in the file.
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`S[UOA][A-Z2-7]{50,}`), regexp.MustCompile(`U[A-Z2-7]{55}`),
		regexp.MustCompile(`(?i)(password|secret|token)\s*[:=]\s*["']?[A-Za-z0-9+/]{12,}`),
		regexp.MustCompile(`-----BEGIN`),
	} {
		if m := re.FindString(text); m != "" {
			t.Errorf("docker-compose.yml holds %q", m)
		}
	}

	// Without them, loading fails.
	for _, k := range []string{"AUTH_JWT_SECRET", "NATS_NKEY_GATEWAY", "NATS_SEED_GATEWAY"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithOsEnv, cli.WithWorkingDirectory(root), cli.WithName("artcafe-pubsub"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := opts.LoadProject(context.Background()); err == nil || !strings.Contains(err.Error(), "set it") {
		t.Fatalf("loading without the secrets: %v", err)
	}
}

// The Dockerfile: static, trimmed, stamped, non-root distroless, every BIN.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", ".Version=${VERSION}", ".GitSHA=${GIT_SHA}", "kit/buildinfo",
		"FROM golang:${GO_VERSION} AS build", "ARG GO_VERSION=1.26", "FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532"} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for bin, dir := range mainPackages {
		if !isMainPackage(t, dir) {
			t.Errorf("BIN=%s: %s is not a main package", bin, dir)
		}
		if !strings.Contains(text, bin) {
			t.Errorf("the Dockerfile does not know BIN=%s", bin)
		}
	}
	if regexp.MustCompile(`(?im)^\s*(ENV|ARG)\s+\S*(SECRET|PASSWORD|SEED|CREDS|TOKEN)`).MatchString(text) {
		t.Error("the Dockerfile sets a secret")
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".data", ".env", "*.nk", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}
