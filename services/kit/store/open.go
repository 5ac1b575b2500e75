package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/artcafe-ai/pubsub/services/kit/config"
)

// Backend names, as Backend reports them and STORE accepts them.
const (
	BackendEmbedded = "embedded"
	BackendDynamoDB = "dynamodb"
)

// Backend names the backend behind t ("embedded" or "dynamodb"; "" when t does not
// say), so a caller can log it and tests can assert which one ran.
func Backend(t Table) string {
	if b, ok := t.(interface{ Backend() string }); ok {
		return b.Backend()
	}
	return ""
}

// validTableName keeps table names valid for both backends: a file name under
// DATA_DIR and (with the prefix) a DynamoDB table name.
func validTableName(name string) bool {
	if name == "" || len(name) > 200 || name[0] == '.' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Open opens a service's table as cfg says (SPEC §2): DynamoDB when cfg.Backend is
// "dynamodb" or an endpoint is set, named TablePrefix+table and created if missing only
// when an endpoint is set (local use); otherwise the embedded store, in the file
// <DataDir>/<table>.db. Backend tells which one was opened.
func Open(ctx context.Context, cfg config.Store, table string, opts ...BoltOption) (Table, error) {
	if !validTableName(table) {
		return nil, fmt.Errorf("store: invalid table name %q", table)
	}
	backend := strings.ToLower(strings.TrimSpace(cfg.Backend))
	switch {
	case backend == BackendDynamoDB || cfg.DynamoDBEndpoint != "":
		client, err := NewDynamoClient(ctx, cfg.DynamoDBEndpoint, cfg.AWSRegion)
		if err != nil {
			return nil, err
		}
		name := cfg.TablePrefix + table
		if cfg.DynamoDBEndpoint != "" {
			if err := EnsureTable(ctx, client, name); err != nil {
				return nil, err
			}
		}
		return OpenDynamo(ctx, client, name)
	case backend == BackendEmbedded || backend == "":
		if cfg.DataDir == "" {
			return nil, fmt.Errorf("store: no data directory for the embedded store (set DATA_DIR)")
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("store: data directory: %w", err)
		}
		return OpenBolt(filepath.Join(cfg.DataDir, table+".db"), table, opts...)
	default:
		return nil, fmt.Errorf("store: unknown backend %q (STORE must be %q or %q)", cfg.Backend, BackendEmbedded, BackendDynamoDB)
	}
}
