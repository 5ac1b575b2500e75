// Package testtable opens a fresh ssh-keys table for a test: the embedded store in a
// temporary directory, or a new DynamoDB table when DYNAMODB_ENDPOINT is set (the
// DynamoDB leg of `make test`, against dynalite), so the same tests run on both.
package testtable

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// New returns an empty table closed when the test ends.
func New(t testing.TB) store.Table {
	t.Helper()
	cfg := config.Store{
		DataDir:          t.TempDir(),
		DynamoDBEndpoint: os.Getenv("DYNAMODB_ENDPOINT"),
		AWSRegion:        "us-east-1",
		TablePrefix:      "test-" + randomHex(6) + "-", // a table per test
	}
	if cfg.DynamoDBEndpoint != "" {
		cfg.Backend = store.BackendDynamoDB
	}
	table, err := store.Open(context.Background(), cfg, "ssh-keys")
	if err != nil {
		t.Fatalf("opening the test table: %v", err)
	}
	t.Cleanup(func() { _ = table.Close() })
	return table
}

// Backend names the backend the tests run on.
func Backend() string {
	if os.Getenv("DYNAMODB_ENDPOINT") != "" {
		return store.BackendDynamoDB
	}
	return store.BackendEmbedded
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
