package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	dir, err := os.MkdirTemp("", "artcafe-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the binaries failed:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// repoRoot is the folder with go.work above the test's working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// build compiles every binary the Makefile builds (same discovery: gateway/cmd/*,
// services/*/cmd/*, scripts/launcher, scripts/agent-login, cli/cmd/artcafe) into dir, without -race: these are the processes
// under test, not the test itself.
func build(dir string) error {
	root, err := repoRoot()
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
	args := append([]string{"build", "-ldflags", ldflags, "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for _, name := range []string{"launcher", "gateway", "tenant", "agent", "sshkey", "channel", "agent-login", "artcafe"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("%s was not built: %w", name, err)
		}
	}
	return nil
}
