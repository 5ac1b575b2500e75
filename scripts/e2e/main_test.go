package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// Stamped into the binaries the test builds, so the micro discovery check can tell the
// Makefile's -ldflags wiring works.
const (
	buildVersion = "0.1.0-e2e"
	buildGitSHA  = "e2e0000"
	buildinfoPkg = "github.com/artcafe-ai/pubsub/services/kit/buildinfo"
)

// binDir holds the binaries built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	return testkit.RunWithBinaries(m, "e2e", build, func(dir string) { binDir = dir })
}

// build compiles every binary the Makefile builds (same discovery: gateway/cmd/*,
// services/*/cmd/*, scripts/launcher, scripts/agent-login, cli/cmd/artcafe) into dir, without -race: these are the processes
// under test, not the test itself.
func build(dir string) error {
	root, err := testkit.RepoRoot()
	if err != nil {
		return err
	}
	var pkgs []string
	for _, pattern := range []string{"gateway/cmd/*", "services/*/cmd/*"} {
		matches, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.IsDir() {
				rel, _ := filepath.Rel(root, m)
				pkgs = append(pkgs, "./"+rel)
			}
		}
	}
	pkgs = append(pkgs, "./scripts/launcher", "./scripts/agent-login", "./cli/cmd/artcafe")
	ldflags := fmt.Sprintf("-X %s.Version=%s -X %s.GitSHA=%s", buildinfoPkg, buildVersion, buildinfoPkg, buildGitSHA)
	if err := testkit.GoBuild(root, append([]string{"-ldflags", ldflags, "-o", dir + string(filepath.Separator)}, pkgs...)...); err != nil {
		return err
	}
	for _, name := range []string{"launcher", "gateway", "tenant", "agent", "sshkey", "channel", "agent-login", "artcafe"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s was not built: %w", name, err)
		}
	}
	return nil
}
