package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binDir holds the binaries TestMain built: the gateway, the services and nats-server.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv("DYNAMODB_ENDPOINT") == "" {
		fmt.Fprintln(os.Stderr, "cluster: DYNAMODB_ENDPOINT is not set; run it as `make test-cluster` (under scripts/dynalite/with-dynalite.sh)")
		return m.Run() // the test skips itself
	}
	dir, err := os.MkdirTemp("", "artcafe-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "cluster: building the binaries failed:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

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

// build compiles the fleet's binaries and nats-server (the version scripts/go.mod pins)
// into dir, without -race: they are the processes under test.
func build(dir string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	pkgs := []string{"./gateway/cmd/gateway"}
	for _, s := range services {
		pkgs = append(pkgs, "./services/"+s+"/cmd/"+s)
	}
	pkgs = append(pkgs, "./scripts/natsconf")
	for _, args := range [][]string{
		append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...),
		{"build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if args[len(args)-1] == "github.com/nats-io/nats-server/v2" {
			cmd.Dir = filepath.Join(root, "scripts")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}
