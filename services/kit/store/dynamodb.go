package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// Attribute names of the one DynamoDB item layout.
const (
	attrPK      = "pk"  // S, partition key
	attrSK      = "sk"  // S, sort key
	attrVersion = "v"   // N
	attrCount   = "n"   // N
	attrData    = "d"   // B, absent when empty
	attrExp     = "exp" // N, expiry in ms since the epoch: what reads and conditions use
	// TTLAttribute is the attribute DynamoDB's TTL deletes expired items by (seconds
	// since the epoch, rounded up so TTL never removes a live item). The infra
	// templates enable TTL on it.
	TTLAttribute = "ttl"
)

// namesFor returns the ExpressionAttributeNames for the placeholders an expression
// uses (DynamoDB rejects unused ones). Every expression names attributes through
// placeholders, so no attribute can collide with a DynamoDB reserved word.
func namesFor(placeholders ...string) map[string]string {
	m := make(map[string]string, len(placeholders))
	for _, p := range placeholders {
		switch p {
		case "#pk":
			m[p] = attrPK
		case "#sk":
			m[p] = attrSK
		case "#v":
			m[p] = attrVersion
		case "#n":
			m[p] = attrCount
		case "#d":
			m[p] = attrData
		case "#exp":
			m[p] = attrExp
		case "#ttl":
			m[p] = TTLAttribute
		default:
			panic("store: unknown attribute placeholder " + p) // a typo in this file
		}
	}
	return m
}

// TableDefinition is the one definition of a service table: local auto-creation uses
// it, and the infra templates are checked against it.
func TableDefinition(name string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	}
}

// NewDynamoClient returns a DynamoDB client for region. With an endpoint (local use:
// dynalite, DynamoDB Local) it talks to that endpoint with static dummy credentials;
// without one it uses the AWS endpoint and the default credential chain.
func NewDynamoClient(ctx context.Context, endpoint, region string) (*dynamodb.Client, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if endpoint != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider("local", "local", "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("store: no AWS region (set AWS_REGION)")
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// EnsureTable creates the table name (TableDefinition) unless it exists, and waits
// until it is ACTIVE. It is meant for local endpoints; production tables come from the
// infra templates.
func EnsureTable(ctx context.Context, client *dynamodb.Client, name string) error {
	_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		_, err = client.CreateTable(ctx, TableDefinition(name))
		var inUse *types.ResourceInUseException
		if errors.As(err, &inUse) {
			err = nil // created meanwhile by another process
		}
	}
	if err != nil {
		return dynamoErr("ensure table "+name, err)
	}
	return waitActive(ctx, client, name)
}

func waitActive(ctx context.Context, client *dynamodb.Client, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return dynamoErr("describe table "+name, err)
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: table %s not active: %w", name, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// dynamoTable keeps one table in DynamoDB. Every write carries a condition; every read
// is strongly consistent, so a caller re-reading after a failed condition sees the
// write that beat it.
type dynamoTable struct {
	client *dynamodb.Client
	name   *string
}

// OpenDynamo returns the table tableName through client after checking that it exists
// and has the key schema of TableDefinition.
func OpenDynamo(ctx context.Context, client *dynamodb.Client, tableName string) (Table, error) {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)})
	if err != nil {
		return nil, dynamoErr("describe table "+tableName, err)
	}
	want := TableDefinition(tableName).KeySchema
	got := out.Table.KeySchema
	if len(got) != len(want) {
		return nil, fmt.Errorf("store: table %s has a key schema other than pk (HASH), sk (RANGE)", tableName)
	}
	for i := range want {
		if aws.ToString(got[i].AttributeName) != aws.ToString(want[i].AttributeName) || got[i].KeyType != want[i].KeyType {
			return nil, fmt.Errorf("store: table %s has a key schema other than pk (HASH), sk (RANGE)", tableName)
		}
	}
	return &dynamoTable{client: client, name: aws.String(tableName)}, nil
}

func (t *dynamoTable) Backend() string { return BackendDynamoDB }

// Close has nothing to release: the client belongs to the caller.
func (t *dynamoTable) Close() error { return nil }

// --- errors ---

// dynamoErr classifies an SDK error: a failed condition is ErrConditionFailed,
// throttling and transport failures are ErrUnavailable (with the cause kept), and a
// cancelled or expired context stays a context error.
func dynamoErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		condFailed *types.ConditionalCheckFailedException
		conn       interface{ ConnectionError() bool }
		netErr     net.Error
		apiErr     smithy.APIError
	)
	switch {
	case errors.As(err, &condFailed):
		return ErrConditionFailed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("store: %s: %w", op, err)
	case errors.As(err, &conn) && conn.ConnectionError(), errors.As(err, &netErr):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	case errors.As(err, &apiErr) && unavailableCode(apiErr.ErrorCode()):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// unavailableCode tells whether a DynamoDB error code means "try again later".
func unavailableCode(code string) bool {
	switch code {
	case "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException",
		"Throttling", "InternalServerError", "ServiceUnavailable", "ReplicatedWriteConflictException":
		return true
	}
	return false
}

// --- item encoding ---

func keyAttrs(k Key) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: k.PK},
		attrSK: &types.AttributeValueMemberS{Value: k.SK},
	}
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// ttlSeconds rounds an expiry in ms up to whole seconds for DynamoDB's TTL.
func ttlSeconds(expMs int64) int64 { return (expMs + 999) / 1000 }

func decodeDynamo(av map[string]types.AttributeValue) (Item, error) {
	var it Item
	s := func(name string) (string, error) {
		v, ok := av[name].(*types.AttributeValueMemberS)
		if !ok {
			return "", fmt.Errorf("store: item without string attribute %q", name)
		}
		return v.Value, nil
	}
	n := func(name string) (int64, error) {
		v, ok := av[name].(*types.AttributeValueMemberN)
		if !ok {
			return 0, nil
		}
		i, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("store: attribute %q: %w", name, err)
		}
		return i, nil
	}
	var err error
	if it.PK, err = s(attrPK); err != nil {
		return Item{}, err
	}
	if it.SK, err = s(attrSK); err != nil {
		return Item{}, err
	}
	if it.Version, err = n(attrVersion); err != nil {
		return Item{}, err
	}
	if it.Count, err = n(attrCount); err != nil {
		return Item{}, err
	}
	exp, err := n(attrExp)
	if err != nil {
		return Item{}, err
	}
	it.ExpiresAt = expTime(exp)
	if d, ok := av[attrData].(*types.AttributeValueMemberB); ok && len(d.Value) > 0 {
		it.Data = d.Value
	}
	return it, nil
}

// liveCond is the condition "a live item has this key".
const liveCond = "attribute_exists(#pk) AND (attribute_not_exists(#exp) OR #exp > :now)"

// absentCond is the condition "no live item has this key" (IfAbsent may overwrite an
// expired item).
const absentCond = "attribute_not_exists(#pk) OR #exp <= :now"

// --- reads ---

func (t *dynamoTable) Get(ctx context.Context, key Key) (Item, error) {
	if err := checkKey(key); err != nil {
		return Item{}, err
	}
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: t.name, Key: keyAttrs(key), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Item{}, dynamoErr("get", err)
	}
	if out.Item == nil {
		return Item{}, ErrNotFound
	}
	it, err := decodeDynamo(out.Item)
	if err != nil {
		return Item{}, err
	}
	if expired(expMillis(it.ExpiresAt), nowMillis()) {
		return Item{}, ErrNotFound
	}
	return it, nil
}

func (t *dynamoTable) BatchGet(ctx context.Context, keys []Key) ([]Item, error) {
	if err := checkBatchGet(keys); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return []Item{}, nil
	}
	// DynamoDB rejects duplicate keys in one request; ask once, answer in key order.
	found := make(map[Key]Item, len(keys))
	var request []map[string]types.AttributeValue
	seen := make(map[Key]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			request = append(request, keyAttrs(k))
		}
	}
	now := nowMillis()
	delay := 20 * time.Millisecond
	for stalls := 0; len(request) > 0; {
		out, err := t.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
			RequestItems: map[string]types.KeysAndAttributes{
				*t.name: {Keys: request, ConsistentRead: aws.Bool(true)},
			},
		})
		if err != nil {
			return nil, dynamoErr("batch get", err)
		}
		for _, av := range out.Responses[*t.name] {
			it, err := decodeDynamo(av)
			if err != nil {
				return nil, err
			}
			if !expired(expMillis(it.ExpiresAt), now) {
				found[it.Key] = it
			}
		}
		request = out.UnprocessedKeys[*t.name].Keys
		if len(request) == 0 || len(out.Responses[*t.name]) > 0 {
			continue // done, or a large response that DynamoDB split: ask for the rest now
		}
		// Nothing answered and keys left: the table is throttling; back off a little.
		if stalls++; stalls == 5 {
			return nil, fmt.Errorf("%w: batch get: %d keys still unprocessed", ErrUnavailable, len(request))
		}
		select {
		case <-ctx.Done():
			return nil, ctxErr(ctx)
		case <-time.After(delay):
		}
		delay *= 2
	}
	items := make([]Item, 0, len(keys))
	for _, k := range keys {
		if it, ok := found[k]; ok {
			items = append(items, it)
		}
	}
	return items, nil
}

func (t *dynamoTable) Query(ctx context.Context, pk string, opts QueryOptions) (Page, error) {
	q, err := newQuery(pk, opts)
	if err != nil {
		return Page{}, err
	}
	now := nowMillis()
	return readPage(q, now, t.scan(ctx, q, now))
}

// scan yields the live items of q after its cursor, reading as few DynamoDB pages as
// it can: it asks for one more item than the page needs, and for more when the
// previous read found expired items (filtered out on the server, but still read).
func (t *dynamoTable) scan(ctx context.Context, q query, now int64) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		in := &dynamodb.QueryInput{
			TableName:                 t.name,
			ConsistentRead:            aws.Bool(true),
			ScanIndexForward:          aws.Bool(!q.reverse),
			KeyConditionExpression:    aws.String("#pk = :pk"),
			FilterExpression:          aws.String("attribute_not_exists(#exp) OR #exp > :now"),
			ExpressionAttributeNames:  namesFor("#pk", "#exp"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: q.pk}, ":now": num(now)},
		}
		if q.prefix != "" {
			in.KeyConditionExpression = aws.String("#pk = :pk AND begins_with(#sk, :prefix)")
			in.ExpressionAttributeNames = namesFor("#pk", "#sk", "#exp")
			in.ExpressionAttributeValues[":prefix"] = &types.AttributeValueMemberS{Value: q.prefix}
		}
		if q.hasAfter {
			in.ExclusiveStartKey = keyAttrs(Key{PK: q.pk, SK: q.after})
		}
		yielded, skipped := 0, 0
		for {
			in.Limit = aws.Int32(int32(min(maxLimit, max(1, q.limit+1-yielded+skipped))))
			out, err := t.client.Query(ctx, in)
			if err != nil {
				yield(Item{}, dynamoErr("query", err))
				return
			}
			skipped += int(out.ScannedCount - out.Count)
			for _, av := range out.Items {
				it, err := decodeDynamo(av)
				if !yield(it, err) || err != nil {
					return
				}
				yielded++
			}
			if out.LastEvaluatedKey == nil {
				return
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
}

// --- writes ---

// expUpdate returns the SET and REMOVE parts that store an expiry (ms) or clear it.
func expUpdate(expMs int64, values map[string]types.AttributeValue) (set, remove []string) {
	if expMs == 0 {
		return nil, []string{"#exp", "#ttl"}
	}
	values[":exp"], values[":ttl"] = num(expMs), num(ttlSeconds(expMs))
	return []string{"#exp = :exp", "#ttl = :ttl"}, nil
}

func updateExpr(set, remove []string) string {
	s := ""
	if len(set) > 0 {
		s = "SET " + strings.Join(set, ", ")
	}
	if len(remove) > 0 {
		if s != "" {
			s += " "
		}
		s += "REMOVE " + strings.Join(remove, ", ")
	}
	return s
}

func (t *dynamoTable) Put(ctx context.Context, item Item, cond Cond) (int64, error) {
	if err := checkPut(item, cond); err != nil {
		return 0, err
	}
	expMs := expMillis(item.ExpiresAt)
	if cond.IsAbsent() {
		if err := t.create(ctx, item.Key, 0, item.Data, expMs); err != nil {
			return 0, dynamoErr("put", err)
		}
		return 1, nil
	}
	// An update in place keeps the count (PutItem would drop it).
	values := map[string]types.AttributeValue{":now": num(nowMillis()), ":one": num(1)}
	set, remove := expUpdate(expMs, values)
	set = append(set, "#v = #v + :one")
	if len(item.Data) > 0 {
		values[":d"] = &types.AttributeValueMemberB{Value: item.Data}
		set = append(set, "#d = :d")
	} else {
		remove = append(remove, "#d")
	}
	in := &dynamodb.UpdateItemInput{
		TableName: t.name, Key: keyAttrs(item.Key),
		UpdateExpression:          aws.String(updateExpr(set, remove)),
		ConditionExpression:       aws.String(liveCond),
		ExpressionAttributeNames:  namesFor("#pk", "#v", "#d", "#exp", "#ttl"),
		ExpressionAttributeValues: values,
	}
	if v, ok := cond.Version(); ok {
		// The new version is known: no need to have the item sent back.
		in.ConditionExpression = aws.String(liveCond + " AND #v = :v")
		values[":v"] = num(v)
		if _, err := t.client.UpdateItem(ctx, in); err != nil {
			return 0, dynamoErr("put", err)
		}
		return v + 1, nil
	}
	// IfExists: only the write knows the new version. UPDATED_NEW also returns the
	// data just written; DynamoDB cannot return less.
	in.ReturnValues = types.ReturnValueUpdatedNew
	out, err := t.client.UpdateItem(ctx, in)
	if err != nil {
		return 0, dynamoErr("put", err)
	}
	return returnedNumber(out.Attributes, attrVersion)
}

func returnedNumber(av map[string]types.AttributeValue, name string) (int64, error) {
	v, ok := av[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("store: DynamoDB returned no %q", name)
	}
	n, err := strconv.ParseInt(v.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: attribute %q: %w", name, err)
	}
	return n, nil
}

func (t *dynamoTable) Delete(ctx context.Context, key Key, cond Cond) error {
	if err := checkDelete(key, cond); err != nil {
		return err
	}
	values := map[string]types.AttributeValue{":now": num(nowMillis())}
	condition, names := liveCond, namesFor("#pk", "#exp")
	if v, ok := cond.Version(); ok {
		condition += " AND #v = :v"
		values[":v"] = num(v)
		names["#v"] = attrVersion
	}
	_, err := t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: t.name, Key: keyAttrs(key),
		ConditionExpression:       aws.String(condition),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	return dynamoErr("delete", err)
}

// addAttempts bounds how often Add goes round when the item keeps appearing and
// expiring under it; each round means another writer made progress.
const addAttempts = 8

// Add cannot learn from a failed condition why it failed (dynalite has no
// ReturnValuesOnConditionCheckFailure), so it tries the common case first (a live item
// within bounds), and on failure reads the item to tell "out of bounds" from "absent
// or expired", in which case it creates the item from 0 with its own condition.
func (t *dynamoTable) Add(ctx context.Context, key Key, delta int64, opts AddOptions) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	lo, hi, loBounded, hiBounded, ok := addRange(delta, opts)
	if !ok {
		return 0, ErrConditionFailed
	}
	for range addAttempts {
		n, err := t.addLive(ctx, key, delta, lo, hi, loBounded, hiBounded)
		if !errors.Is(err, ErrConditionFailed) {
			return n, err
		}
		cur, err := t.Get(ctx, key)
		switch {
		case err == nil:
			if cur.Count < lo || cur.Count > hi {
				return 0, ErrConditionFailed
			}
			continue // changed since the update: go round
		case !errors.Is(err, ErrNotFound):
			return 0, err
		case 0 < lo || 0 > hi:
			return 0, ErrConditionFailed // a new item could not hold delta either
		}
		n, err = t.addCreate(ctx, key, delta, opts.ExpiresAt)
		if !errors.Is(err, ErrConditionFailed) {
			return n, err
		}
		// Another writer created the item first: add to it.
	}
	return 0, fmt.Errorf("%w: add: item keeps changing under contention", ErrUnavailable)
}

// addLive adds delta to a live item whose count is within [lo, hi].
func (t *dynamoTable) addLive(ctx context.Context, key Key, delta, lo, hi int64, loBounded, hiBounded bool) (int64, error) {
	values := map[string]types.AttributeValue{":now": num(nowMillis()), ":delta": num(delta)}
	condition := liveCond
	if loBounded {
		condition += " AND #n >= :lo"
		values[":lo"] = num(lo)
	}
	if hiBounded {
		condition += " AND #n <= :hi"
		values[":hi"] = num(hi)
	}
	out, err := t.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: t.name, Key: keyAttrs(key),
		UpdateExpression:          aws.String("SET #n = #n + :delta"),
		ConditionExpression:       aws.String(condition),
		ExpressionAttributeNames:  namesFor("#pk", "#n", "#exp"),
		ExpressionAttributeValues: values,
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, dynamoErr("add", err)
	}
	return returnedNumber(out.Attributes, attrCount)
}

// addCreate writes a new item holding delta where no live item is.
func (t *dynamoTable) addCreate(ctx context.Context, key Key, delta int64, expiresAt time.Time) (int64, error) {
	if err := t.create(ctx, key, delta, nil, expMillis(expiresAt)); err != nil {
		return 0, dynamoErr("add", err)
	}
	return delta, nil
}

// create writes a new item at version 1 where no live item is. It replaces whatever
// expired item was there, count included (PutItem replaces the whole item).
func (t *dynamoTable) create(ctx context.Context, key Key, count int64, data []byte, expMs int64) error {
	av := keyAttrs(key)
	av[attrVersion], av[attrCount] = num(1), num(count)
	if len(data) > 0 {
		av[attrData] = &types.AttributeValueMemberB{Value: data}
	}
	if expMs != 0 {
		av[attrExp], av[TTLAttribute] = num(expMs), num(ttlSeconds(expMs))
	}
	_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: t.name, Item: av,
		ConditionExpression:       aws.String(absentCond),
		ExpressionAttributeNames:  namesFor("#pk", "#exp"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(nowMillis())},
	})
	return err
}
