package store_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

// dynamoEndpoint returns DYNAMODB_ENDPOINT or skips: the DynamoDB tests need dynalite
// (scripts/dynalite/with-dynalite.sh runs them with it; `make test` does).
func dynamoEndpoint(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("DYNAMODB_ENDPOINT")
	if ep == "" {
		t.Skip("DYNAMODB_ENDPOINT is not set: DynamoDB adapter tests skipped " +
			"(run them with scripts/dynalite/with-dynalite.sh sh -c 'cd services/kit && go test ./store/...')")
	}
	return ep
}

func dynamoClient(t *testing.T) *dynamodb.Client {
	t.Helper()
	c, err := store.NewDynamoClient(t.Context(), dynamoEndpoint(t), "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newDynamoTable creates a table of its own for one test and drops it afterwards.
func newDynamoTable(t *testing.T, client *dynamodb.Client) (store.Table, string) {
	t.Helper()
	name := "storetest-" + rand.Text()
	if err := store.EnsureTable(t.Context(), client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		if err != nil {
			t.Errorf("drop table %s: %v", name, err)
		}
	})
	tbl, err := store.OpenDynamo(t.Context(), client, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	return tbl, name
}

func TestDynamoConformance(t *testing.T) {
	client := dynamoClient(t)
	storetest.Run(t, func(t *testing.T) store.Table {
		tbl, _ := newDynamoTable(t, client)
		return tbl
	})
}

func TestDynamoEnsureTableIsIdempotent(t *testing.T) {
	client := dynamoClient(t)
	tbl, name := newDynamoTable(t, client)
	k := store.Key{PK: "p", SK: "s"}
	if _, err := tbl.Put(t.Context(), store.Item{Key: k, Data: []byte("kept")}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := store.EnsureTable(t.Context(), client, name); err != nil {
			t.Fatalf("EnsureTable on an existing table: %v", err)
		}
	}
	if it, err := tbl.Get(t.Context(), k); err != nil || string(it.Data) != "kept" {
		t.Fatalf("after EnsureTable: %v, %v", it, err)
	}
	out, err := client.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Table.TableStatus != types.TableStatusActive {
		t.Fatalf("status %s", out.Table.TableStatus)
	}
}

func TestDynamoOpenChecksTheTable(t *testing.T) {
	client := dynamoClient(t)
	ctx := t.Context()
	_, err := store.OpenDynamo(ctx, client, fmt.Sprintf("missing-%d", time.Now().UnixNano()))
	if err == nil {
		t.Fatal("OpenDynamo of a missing table: no error")
	}
	// A table with another key schema is refused rather than misused.
	name := fmt.Sprintf("otherschema-%d", time.Now().UnixNano())
	def := store.TableDefinition(name)
	def.AttributeDefinitions = def.AttributeDefinitions[:1]
	def.KeySchema = def.KeySchema[:1]
	if _, err := client.CreateTable(ctx, def); err != nil {
		t.Fatal(err)
	}
	defer client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	if _, err := store.OpenDynamo(ctx, client, name); err == nil {
		t.Fatal("OpenDynamo of a hash-only table: no error")
	}
}

// The TTL attribute is written in seconds, rounded up, beside the exact expiry.
func TestDynamoWritesTTL(t *testing.T) {
	client := dynamoClient(t)
	tbl, name := newDynamoTable(t, client)
	exp := time.UnixMilli(time.Now().Add(time.Hour).UnixMilli()/1000*1000 + 1)
	k := store.Key{PK: "p", SK: "s"}
	if _, err := tbl.Put(t.Context(), store.Item{Key: k, ExpiresAt: exp}, store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	raw := func() map[string]types.AttributeValue {
		t.Helper()
		out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
			TableName: aws.String(name),
			Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "p"}, "sk": &types.AttributeValueMemberS{Value: "s"},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.Item
	}
	item := raw()
	ttl, _ := item[store.TTLAttribute].(*types.AttributeValueMemberN)
	if ttl == nil || ttl.Value != fmt.Sprint(exp.Unix()+1) {
		t.Fatalf("ttl = %v, want %d", item[store.TTLAttribute], exp.Unix()+1)
	}
	expAttr, _ := item["exp"].(*types.AttributeValueMemberN)
	if expAttr == nil || expAttr.Value != fmt.Sprint(exp.UnixMilli()) {
		t.Fatalf("exp = %v, want %d", item["exp"], exp.UnixMilli())
	}
	// An update without expiry removes both.
	if _, err := tbl.Put(t.Context(), store.Item{Key: k}, store.IfExists()); err != nil {
		t.Fatal(err)
	}
	item = raw()
	if _, ok := item[store.TTLAttribute]; ok {
		t.Errorf("ttl left after an update without expiry: %v", item)
	}
	if _, ok := item["exp"]; ok {
		t.Errorf("exp left after an update without expiry: %v", item)
	}
}

// These run without dynalite.

func TestTableDefinition(t *testing.T) {
	def := store.TableDefinition("artcafe-agents")
	if aws.ToString(def.TableName) != "artcafe-agents" {
		t.Errorf("name %q", aws.ToString(def.TableName))
	}
	if def.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode %q", def.BillingMode)
	}
	if def.ProvisionedThroughput != nil || len(def.GlobalSecondaryIndexes) != 0 || len(def.LocalSecondaryIndexes) != 0 {
		t.Error("unexpected throughput or indexes")
	}
	attrs := map[string]types.ScalarAttributeType{}
	for _, a := range def.AttributeDefinitions {
		attrs[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if len(attrs) != 2 || attrs["pk"] != types.ScalarAttributeTypeS || attrs["sk"] != types.ScalarAttributeTypeS {
		t.Errorf("attributes %v", attrs)
	}
	if len(def.KeySchema) != 2 ||
		aws.ToString(def.KeySchema[0].AttributeName) != "pk" || def.KeySchema[0].KeyType != types.KeyTypeHash ||
		aws.ToString(def.KeySchema[1].AttributeName) != "sk" || def.KeySchema[1].KeyType != types.KeyTypeRange {
		t.Errorf("key schema %+v", def.KeySchema)
	}
	if store.TTLAttribute != "ttl" {
		t.Errorf("TTL attribute %q", store.TTLAttribute)
	}
	// Each call is a fresh value: a caller changing one does not change the next.
	def.KeySchema[0].AttributeName = aws.String("changed")
	if aws.ToString(store.TableDefinition("x").KeySchema[0].AttributeName) != "pk" {
		t.Error("TableDefinition shares state between calls")
	}
}

// An endpoint nobody listens on is ErrUnavailable, with the cause kept.
func TestDynamoUnreachableIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	client := dynamodb.New(dynamodb.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		RetryMaxAttempts: 1,
	})
	_, err = store.OpenDynamo(t.Context(), client, "anything")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("cause lost: %v", err)
	}
	// A cancelled context stays a context error, not "unavailable".
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = store.OpenDynamo(ctx, client, "anything")
	if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

// The SDK's error types map onto the store's sentinels.
func TestDynamoErrorMapping(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	cases := []struct {
		name        string
		err         error
		want        error
		unavailable bool
	}{
		{"condition", &types.ConditionalCheckFailedException{}, store.ErrConditionFailed, false},
		{"throughput", &types.ProvisionedThroughputExceededException{}, nil, true},
		{"request limit", &types.RequestLimitExceeded{}, nil, true},
		{"throttling", &types.ThrottlingException{}, nil, true},
		{"generic throttling", &smithy.GenericAPIError{Code: "ThrottlingException"}, nil, true},
		{"internal", &types.InternalServerError{}, nil, true},
		{"send", &smithyhttp.RequestSendError{Err: refused}, nil, true},
		{"net", refused, nil, true},
		{"cancelled", fmt.Errorf("operation error: %w", context.Canceled), context.Canceled, false},
		{"deadline", fmt.Errorf("operation error: %w", context.DeadlineExceeded), context.DeadlineExceeded, false},
		{"missing table", &types.ResourceNotFoundException{}, nil, false},
		{"validation", &smithy.GenericAPIError{Code: "ValidationException"}, nil, false},
	}
	for _, tc := range cases {
		got := store.ClassifyDynamoErr("op", tc.err)
		if got == nil {
			t.Errorf("%s: nil", tc.name)
			continue
		}
		if tc.want != nil && !errors.Is(got, tc.want) {
			t.Errorf("%s: %v is not %v", tc.name, got, tc.want)
		}
		if errors.Is(got, store.ErrUnavailable) != tc.unavailable {
			t.Errorf("%s: %v: unavailable = %v, want %v", tc.name, got, !tc.unavailable, tc.unavailable)
		}
		if !errors.Is(got, tc.err) && tc.want != store.ErrConditionFailed {
			t.Errorf("%s: cause lost in %v", tc.name, got)
		}
	}
	if store.ClassifyDynamoErr("op", nil) != nil {
		t.Error("nil error mapped to an error")
	}
}
