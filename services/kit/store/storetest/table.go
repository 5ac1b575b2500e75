package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// NewTable returns an empty table named table, closed when the test ends: the embedded
// store in a temporary directory, or a new DynamoDB table when DYNAMODB_ENDPOINT is set
// (the DynamoDB leg of `make test`, against dynalite), so the same tests run on both.
func NewTable(t testing.TB, table string) store.Table {
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
	tbl, err := store.Open(context.Background(), cfg, table)
	if err != nil {
		t.Fatalf("opening the test table: %v", err)
	}
	t.Cleanup(func() { _ = tbl.Close() })
	return tbl
}

// Backend names the backend NewTable opens tables on.
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
