package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
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
	return testkit.RunWithBinaries(m, "cluster", build, func(dir string) { binDir = dir })
}

// build compiles the fleet's binaries and nats-server (the version scripts/go.mod pins)
// into dir, without -race: they are the processes under test.
func build(dir string) error {
	root, err := testkit.RepoRoot()
	if err != nil {
		return err
	}
	pkgs := []string{"./gateway/cmd/gateway"}
	for _, s := range services {
		pkgs = append(pkgs, "./services/"+s+"/cmd/"+s)
	}
	pkgs = append(pkgs, "./scripts/natsconf")
	if err := testkit.GoBuild(root, append([]string{"-o", dir + string(filepath.Separator)}, pkgs...)...); err != nil {
		return err
	}
	// From scripts/, whose go.mod pins the nats-server version.
	return testkit.GoBuild(filepath.Join(root, "scripts"), "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2")
}
