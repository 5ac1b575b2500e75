package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

func TestOpenEmbedded(t *testing.T) {
	for _, backend := range []string{"embedded", "", " Embedded "} {
		t.Run(fmt.Sprintf("%q", backend), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data", "nested")
			cfg := config.Store{Backend: backend, DataDir: dir, TablePrefix: "artcafe-"}
			tbl, err := store.Open(t.Context(), cfg, "agents")
			if err != nil {
				t.Fatal(err)
			}
			defer tbl.Close()
			if got := store.Backend(tbl); got != store.BackendEmbedded {
				t.Fatalf("Backend = %q", got)
			}
			if _, err := os.Stat(filepath.Join(dir, "agents.db")); err != nil {
				t.Fatalf("store file: %v", err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("data dir mode %v, %v", fi.Mode(), err)
			}
			if backend != "embedded" {
				return
			}
			// The same table again in this process is refused, as in another process.
			if _, err := store.Open(t.Context(), cfg, "agents"); err == nil {
				t.Fatal("second Open of the same table: no error")
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		cfg   config.Store
		table string
		want  string
	}{
		{"unknown backend", config.Store{Backend: "postgres", DataDir: dir}, "agents", `unknown backend "postgres"`},
		{"no data dir", config.Store{Backend: "embedded"}, "agents", "DATA_DIR"},
		{"empty table", config.Store{DataDir: dir}, "", "invalid table name"},
		{"path in table", config.Store{DataDir: dir}, "../agents", "invalid table name"},
		{"slash in table", config.Store{DataDir: dir}, "a/b", "invalid table name"},
		{"dot table", config.Store{DataDir: dir}, "..", "invalid table name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := store.Open(t.Context(), tc.cfg, tc.table)
			if err == nil {
				tbl.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestOpenDynamoDB(t *testing.T) {
	endpoint := dynamoEndpoint(t)
	prefix := fmt.Sprintf("opentest-%d-", time.Now().UnixNano())
	// An endpoint implies DynamoDB, whatever STORE says.
	for _, backend := range []string{"dynamodb", "embedded"} {
		cfg := config.Store{Backend: backend, DataDir: t.TempDir(), DynamoDBEndpoint: endpoint, AWSRegion: "us-east-1", TablePrefix: prefix}
		tbl, err := store.Open(t.Context(), cfg, "agents")
		if err != nil {
			t.Fatal(err)
		}
		defer tbl.Close()
		if got := store.Backend(tbl); got != store.BackendDynamoDB {
			t.Fatalf("STORE=%s with an endpoint: Backend = %q", backend, got)
		}
		if entries, _ := os.ReadDir(cfg.DataDir); len(entries) != 0 {
			t.Fatalf("DynamoDB backend wrote to the data dir: %v", entries)
		}
	}
	client := dynamoClient(t)
	name := aws.String(prefix + "agents")
	t.Cleanup(func() { client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: name}) })
	out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: name})
	if err != nil {
		t.Fatalf("table %sagents: %v", prefix, err)
	}
	if aws.ToString(out.Table.TableName) != prefix+"agents" {
		t.Fatalf("table name %q", aws.ToString(out.Table.TableName))
	}
}

func TestNewDynamoClient(t *testing.T) {
	c, err := store.NewDynamoClient(t.Context(), "http://127.0.0.1:1", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options()
	if aws.ToString(o.BaseEndpoint) != "http://127.0.0.1:1" || o.Region != "eu-west-1" {
		t.Fatalf("endpoint %q region %q", aws.ToString(o.BaseEndpoint), o.Region)
	}
	creds, err := o.Credentials.Retrieve(t.Context())
	if err != nil || creds.AccessKeyID != "local" {
		t.Fatalf("local endpoint credentials: %+v, %v", creds, err)
	}
	// Without an endpoint: the AWS endpoint (none set) and the default credential chain.
	c, err = store.NewDynamoClient(t.Context(), "", "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Options(); o.BaseEndpoint != nil || o.Region != "eu-west-1" {
		t.Fatalf("endpoint %v region %q", o.BaseEndpoint, o.Region)
	}
}
