package deploycheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"gopkg.in/yaml.v3"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/scripts/internal/cfn"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// cfnValue decodes YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, …) as
// their long forms ({"Ref": x}, {"Fn::Sub": x}, …).
func cfnValue(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return cfnValue(n.Content[0])
	case yaml.AliasNode:
		return cfnValue(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = cfnValue(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, cfnValue(c))
		}
		v = l
	default:
		v = n.Value
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		name := strings.TrimPrefix(n.Tag, "!")
		switch name {
		case "Ref", "Condition":
			return map[string]any{name: v}
		case "GetAtt":
			if s, ok := v.(string); ok {
				parts := strings.SplitN(s, ".", 2)
				return map[string]any{"Fn::GetAtt": []any{parts[0], parts[len(parts)-1]}}
			}
		}
		return map[string]any{"Fn::" + name: v}
	}
	return v
}

func loadTemplate(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "infra", name))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("infra/%s: %v", name, err)
	}
	tmpl, ok := cfnValue(&doc).(map[string]any)
	if !ok || tmpl["Resources"] == nil {
		t.Fatalf("infra/%s: no Resources", name)
	}
	return tmpl
}

func resources(tmpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for k, v := range tmpl["Resources"].(map[string]any) {
		out[k] = v.(map[string]any)
	}
	return out
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// strings collects every string in v (to look for table names and secrets).
func allStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, allStrings(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, k)
			out = append(out, allStrings(e)...)
		}
		return out
	}
	return nil
}

// The generated templates are what the code says.
func TestGeneratedTemplatesHaveNoDrift(t *testing.T) {
	files, err := cfn.Templates()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, "infra", name))
		if err != nil || string(got) != want {
			t.Errorf("infra/%s differs from the code (%v): run `go run ./scripts/infragen`", name, err)
		}
	}
}

// Every table a service opens is declared with the keys, billing and TTL of
// store.TableDefinition / store.TTLAttribute.
func TestDynamoDBTables(t *testing.T) {
	tmpl := loadTemplate(t, "dynamodb.yaml")
	byName := map[string]map[string]any{}
	for _, r := range resources(tmpl) {
		if r["Type"] != "AWS::DynamoDB::Table" {
			continue
		}
		p := props(r)
		sub, _ := p["TableName"].(map[string]any)["Fn::Sub"].(string)
		byName[strings.TrimPrefix(sub, "${TablePrefix}")] = p
	}
	if len(byName) != len(store.ServiceTables()) {
		t.Errorf("%d tables declared, the services have %d", len(byName), len(store.ServiceTables()))
	}
	for svc, table := range store.ServiceTables() {
		p, ok := byName[table]
		if !ok {
			t.Errorf("%s: table ${TablePrefix}%s is not declared", svc, table)
			continue
		}
		def := store.TableDefinition(table)
		var attrs, keys []string
		for _, a := range p["AttributeDefinitions"].([]any) {
			m := a.(map[string]any)
			attrs = append(attrs, m["AttributeName"].(string)+":"+m["AttributeType"].(string))
		}
		for _, k := range p["KeySchema"].([]any) {
			m := k.(map[string]any)
			keys = append(keys, m["AttributeName"].(string)+":"+m["KeyType"].(string))
		}
		var wantAttrs, wantKeys []string
		for _, a := range def.AttributeDefinitions {
			wantAttrs = append(wantAttrs, aws.ToString(a.AttributeName)+":"+string(a.AttributeType))
		}
		for _, k := range def.KeySchema {
			wantKeys = append(wantKeys, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
		}
		if !slices.Equal(attrs, wantAttrs) || !slices.Equal(keys, wantKeys) {
			t.Errorf("%s: attributes %v keys %v, want %v %v", table, attrs, keys, wantAttrs, wantKeys)
		}
		if p["BillingMode"] != string(def.BillingMode) {
			t.Errorf("%s: billing %v, want %v", table, p["BillingMode"], def.BillingMode)
		}
		ttl, _ := p["TimeToLiveSpecification"].(map[string]any)
		if ttl["AttributeName"] != store.TTLAttribute || ttl["Enabled"] != "true" {
			t.Errorf("%s: TTL %v, want %q enabled", table, ttl, store.TTLAttribute)
		}
	}
}

// Each task role may touch its own table and nothing else; the gateway none.
func TestTaskRolesTouchOnlyTheirTable(t *testing.T) {
	res := resources(loadTemplate(t, "services.yaml"))
	tables := store.ServiceTables()
	tableRef := regexp.MustCompile(`:table/\$\{TablePrefix\}([A-Za-z0-9_.-]+)(/index/\*)?$`)
	for _, c := range append([]string{"gateway"}, natsperm.Components()[1:]...) {
		logical := map[string]string{"gateway": "Gateway", "tenant": "Tenant", "agent": "Agent", "sshkey": "SSHKey", "channel": "Channel", "usage": "Usage"}[c]
		role, ok := res[logical+"TaskRole"]
		if !ok {
			t.Errorf("%s: no task role", c)
			continue
		}
		var dynamo []string
		for _, s := range allStrings(props(role)["Policies"]) {
			if strings.Contains(s, "dynamodb") || strings.Contains(s, "*") && !strings.Contains(s, "/index/*") {
				dynamo = append(dynamo, s)
			}
		}
		if c == "gateway" {
			if len(dynamo) > 0 {
				t.Errorf("the gateway's task role reaches DynamoDB: %v", dynamo)
			}
			continue
		}
		var own int
		for _, s := range dynamo {
			if strings.HasPrefix(s, "dynamodb:") {
				if strings.Contains(s, "*") || s == "dynamodb:Scan" || strings.Contains(s, "Table") && s != "dynamodb:DescribeTable" {
					t.Errorf("%s: action %s", c, s)
				}
				continue
			}
			m := tableRef.FindStringSubmatch(s)
			if m == nil || m[1] != tables[c] {
				t.Errorf("%s: resource %q is not its own table %s", c, s, tables[c])
				continue
			}
			own++
		}
		if own == 0 {
			t.Errorf("%s: its task role cannot reach its table", c)
		}
		// Its service uses that role and its own NATS seed.
		td := props(res[logical+"TaskDefinition"])
		if got := allStrings(td["TaskRoleArn"]); !slices.Contains(got, logical+"TaskRole") {
			t.Errorf("%s: task definition role %v", c, got)
		}
		if !slices.ContainsFunc(allStrings(td["ContainerDefinitions"]), func(s string) bool { return strings.HasSuffix(s, "/nats/seed/"+c) }) {
			t.Errorf("%s: NATS_CREDS is not its own seed", c)
		}
	}
}

// Only the gateway is public, over TLS; no template carries a secret default.
func TestTemplatesExposeOnlyTheGatewayAndHoldNoSecret(t *testing.T) {
	svc := resources(loadTemplate(t, "services.yaml"))
	var listeners []string
	for name, r := range svc {
		if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener" {
			p := props(r)
			if p["Protocol"] == "HTTPS" {
				listeners = append(listeners, name)
				if !strings.HasPrefix(p["SslPolicy"].(string), "ELBSecurityPolicy-TLS13") {
					t.Errorf("%s: SSL policy %v", name, p["SslPolicy"])
				}
			} else if !strings.Contains(strings.Join(allStrings(p["DefaultActions"]), " "), "redirect") {
				t.Errorf("%s: a plain listener that does not redirect to HTTPS", name)
			}
		}
		if r["Type"] == "AWS::ECS::Service" {
			lbs := props(r)["LoadBalancers"]
			if lbs != nil && name != "GatewayService" {
				t.Errorf("%s is behind the load balancer", name)
			}
			if s := allStrings(props(r)["NetworkConfiguration"]); !slices.Contains(s, "DISABLED") {
				t.Errorf("%s: tasks get public IPs", name)
			}
		}
	}
	if len(listeners) != 1 {
		t.Errorf("HTTPS listeners: %v", listeners)
	}
	net := resources(loadTemplate(t, "network.yaml"))
	for name, r := range net {
		if r["Type"] != "AWS::EC2::SecurityGroup" {
			continue
		}
		for _, rule := range allStrings(props(r)["SecurityGroupIngress"]) {
			if rule == "0.0.0.0/0" && name != "LoadBalancerSG" {
				t.Errorf("%s is open to the internet", name)
			}
		}
	}

	secretish := regexp.MustCompile(`(?i)(secret|password|seed|token|privatekey|nkey)`)
	for _, name := range []string{"network.yaml", "dynamodb.yaml", "nats-cluster.yaml", "services.yaml"} {
		tmpl := loadTemplate(t, name)
		params, _ := tmpl["Parameters"].(map[string]any)
		for pname, p := range params {
			def, has := p.(map[string]any)["Default"]
			if has && secretish.MatchString(pname) && !strings.HasSuffix(pname, "Prefix") && def != "" {
				t.Errorf("%s: parameter %s has a default", name, pname)
			}
		}
		raw, _ := os.ReadFile(filepath.Join(root, "infra", name))
		for _, re := range []*regexp.Regexp{regexp.MustCompile(`S[UOA][A-Z2-7]{50,}`), regexp.MustCompile(`-----BEGIN`),
			regexp.MustCompile(`AKIA[0-9A-Z]{16}`)} {
			if m := re.Find(raw); m != nil {
				t.Errorf("%s holds %q", name, m)
			}
		}
	}
	if !slices.Contains(allStrings(svc["JwtSecret"]), "GenerateSecretString") {
		t.Error("the JWT secret is not generated by Secrets Manager")
	}
}

// The cascade consumer a service's NATS user may use is the one kit/cascade creates.
func TestCascadeConsumerName(t *testing.T) {
	for _, c := range natsperm.Components()[1:] {
		if natsperm.CascadeConsumer(c) != cascade.ConsumerName(c) {
			t.Errorf("%s: natsperm %q, cascade %q", c, natsperm.CascadeConsumer(c), cascade.ConsumerName(c))
		}
	}
}
