package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// The embedded-store leg: the whole story through `launcher run`, then a restart on the
// same data dir.
func TestEmbeddedStack(t *testing.T) {
	env := newStackEnv(t)
	runLeg(t, env, func(t *testing.T) {
		for _, f := range []string{"tenants.db", "agents.db", "ssh-keys.db", "channels.db"} {
			if _, err := os.Stat(filepath.Join(env.DataDir, f)); err != nil {
				t.Fatalf("embedded leg: no %s in DATA_DIR: %v", f, err)
			}
		}
	})
}

// The DynamoDB leg: the same story with STORE=dynamodb against dynalite.
func TestDynamoDBStack(t *testing.T) {
	endpoint := os.Getenv("DYNAMODB_ENDPOINT")
	if endpoint == "" {
		t.Skip("DYNAMODB_ENDPOINT is not set: the DynamoDB leg runs under scripts/dynalite/with-dynalite.sh (make test-e2e)")
	}
	env := newStackEnv(t)
	env.Dynamo, env.Endpoint = true, endpoint
	env.TablePrefix = "e2e-" + testkit.RandomHex(t, 4) + "-"
	runLeg(t, env, func(t *testing.T) {
		tables := dynamoTables(t, endpoint)
		for _, table := range []string{"tenants", "agents", "ssh-keys", "channels"} {
			if _, err := os.Stat(filepath.Join(env.DataDir, table+".db")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("DynamoDB leg: %s.db exists in DATA_DIR (err %v): the embedded store ran", table, err)
			}
			if !slices.Contains(tables, env.TablePrefix+table) {
				t.Fatalf("DynamoDB leg: no table %s%s in dynalite (tables: %v)", env.TablePrefix, table, tables)
			}
		}
	})
}

func runLeg(t *testing.T, env stackEnv, assertBackend func(t *testing.T)) {
	l := startLauncher(t, env)
	c := newClient(env.baseURL())
	var st story
	step(t, "launcher", func(t *testing.T) { checkLauncher(t, l, c) })
	step(t, "micro discovery", func(t *testing.T) { checkMicroInfo(t, env.NATSURL) })
	step(t, "metrics", func(t *testing.T) { checkMetrics(t, env, c, l.bannerToken(t)) })
	// The checks after the scenario do not need it to have passed; the restart check
	// needs the story to have reached its end (the deletion).
	t.Run("scenario", func(t *testing.T) { runScenario(t, env, c, &st) })
	t.Run("agents", func(t *testing.T) { runAgents(t, env, c, &st.agents) })
	t.Run("messaging", func(t *testing.T) { runMessaging(t, env, c) })
	t.Run("console", func(t *testing.T) { runConsole(t, env, c) })
	t.Run("service metrics", func(t *testing.T) { checkServiceMetrics(t, env) })
	step(t, "stop", func(t *testing.T) { l.stop(t) })
	step(t, "backend", assertBackend)
	step(t, "secret never printed", func(t *testing.T) {
		secret, err := os.ReadFile(filepath.Join(env.DataDir, "jwt-secret"))
		if err != nil {
			t.Fatalf("the launcher kept no secret in DATA_DIR: %v", err)
		}
		s := strings.TrimSpace(string(secret))
		if len(s) < 32 {
			t.Fatalf("secret of %d bytes", len(s))
		}
		if strings.Contains(l.out.String(), s) {
			t.Fatal("the JWT secret appears in the stack's output")
		}
	})
	step(t, "private keys and login responses never printed", func(t *testing.T) {
		neverLogged(t, l.out.String(), st.agents.secrets)
	})
	if st.deletedTenant == "" || !st.agents.done {
		t.Fatal("a scenario stopped early: the restart check is skipped")
	}
	step(t, "data survives a restart", func(t *testing.T) {
		l2 := startLauncher(t, env)
		checkSurvived(t, c, st)
		checkAgentsSurvived(t, c, st.agents)
		l2.stop(t)
		neverLogged(t, l2.out.String(), st.agents.secrets)
	})
}

// checkLauncher: the banner's URLs and token work, and every child is labelled.
func checkLauncher(t *testing.T, l *launcher, c *client) {
	out := l.out.String()
	for _, want := range []string{
		"API:     " + l.env.baseURL() + "/api/v1",
		"Docs:    " + l.env.baseURL() + "/docs",
		"Console: " + l.env.baseURL() + "/console",
		"tenant   | started ",
		"agent    | started ",
		"sshkey   | started ",
		"channel  | started ",
		"gateway  | started ",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("launcher output lacks %q:\n%s", want, testkit.Tail(out, 5000))
		}
	}
	if !regexp.MustCompile(`(?m)^tenant   \| .+`).MatchString(strings.ReplaceAll(out, "tenant   | started", "")) {
		t.Fatalf("no labelled output from the tenant service:\n%s", testkit.Tail(out, 5000))
	}
	var me meReply
	c.expect(t, http.StatusOK, &me, get, "/api/v1/me", bearer(l.bannerToken(t)))
	if me.Kind != "user" || me.UserID != "local-user" {
		t.Fatalf("banner token: /me = %+v", me)
	}
	r := c.expect(t, http.StatusOK, nil, get, "/docs")
	if !strings.Contains(strings.ToLower(string(r.Body)), "<html") {
		t.Fatalf("/docs is not a page: %s", r)
	}
	var h struct {
		Status        string         `json:"status"`
		NATSConnected bool           `json:"nats_connected"`
		Services      map[string]int `json:"services"`
	}
	c.expect(t, http.StatusOK, &h, get, "/health")
	if !h.NATSConnected || h.Services["tenant"] < 1 || h.Services["agent"] < 1 || h.Services["sshkey"] < 1 || h.Services["channel"] < 1 || h.Services["usage"] < 1 {
		t.Fatalf("/health = %+v", h)
	}
	for _, name := range []string{"tenant", "agent", "sshkey", "channel", "usage"} {
		if _, ok := h.Services[name]; !ok {
			t.Fatalf("/health does not list %s: %+v", name, h)
		}
	}
}

var semver = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// checkMicroInfo: `nats micro info <service>` against the fleet's NATS shows the build of
// every service.
func checkMicroInfo(t *testing.T, natsURL string) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, svc := range []struct{ name, version, subject string }{
		{tenantv1.Service, tenantv1.Version, tenantv1.Subject(tenantv1.OpCreate)},
		{agentv1.Service, agentv1.Version, agentv1.Subject(agentv1.OpGet)},
		{sshkeyv1.Service, sshkeyv1.Version, sshkeyv1.Subject(sshkeyv1.OpVerify)},
		{channelv1.Service, channelv1.Version, channelv1.Subject(channelv1.OpLookup)},
		{usagev1.Service, usagev1.Version, usagev1.Subject(usagev1.OpMetrics)},
	} {
		msg, err := nc.Request("$SRV.INFO."+svc.name, nil, 5*time.Second)
		if err != nil {
			t.Fatalf("$SRV.INFO.%s: %v", svc.name, err)
		}
		var info micro.Info
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			t.Fatalf("$SRV.INFO.%s reply %q: %v", svc.name, msg.Data, err)
		}
		if info.Name != svc.name || !semver.MatchString(info.Version) || info.Version != buildVersion {
			t.Fatalf("info name %q version %q (want %s, the stamped %q)", info.Name, info.Version, svc.name, buildVersion)
		}
		if info.Metadata["git_sha"] != buildGitSHA || info.Metadata["contract_version"] != svc.version {
			t.Fatalf("%s info metadata %v", svc.name, info.Metadata)
		}
		var subjects []string
		for _, ep := range info.Endpoints {
			subjects = append(subjects, ep.Subject)
		}
		if !slices.Contains(subjects, svc.subject) {
			t.Fatalf("%s endpoints %v lack %s", svc.name, subjects, svc.subject)
		}
	}
}

// checkMetrics: the gateway's metrics at METRICS_ADDR, the tenant service's at +1
// (its place in the launcher's list), none on the public port.
func checkMetrics(t *testing.T, env stackEnv, c *client, tok string) {
	// One call that reaches the tenant service, so its RPC metrics have a sample.
	c.expect(t, http.StatusOK, nil, get, "/api/v1/tenants", bearer(tok))
	scrape := func(port int) string {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
		if err != nil {
			t.Fatalf("metrics on port %d: %v", port, err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("metrics on port %d: %d", port, resp.StatusCode)
		}
		return string(b)
	}
	if gw := scrape(env.MetricsBase); !strings.Contains(gw, "artcafe_http_requests_total") {
		t.Fatalf("gateway metrics lack artcafe_http_requests_total:\n%s", testkit.Tail(gw, 3000))
	}
	if tn := scrape(env.MetricsBase + 1); !strings.Contains(tn, "artcafe_rpc_request") {
		t.Fatalf("tenant metrics lack artcafe_rpc_request*:\n%s", testkit.Tail(tn, 3000))
	}
	if r := c.do(t, get, "/metrics"); r.Status == http.StatusOK {
		t.Fatalf("metrics on the public port: %s", r)
	}
}

// checkServiceMetrics: the agent, sshkey and channel services serve their metrics at the
// launcher's ports for them (+2, +3, +4: their places in its list), with samples of the
// scenario's calls.
func checkServiceMetrics(t *testing.T, env stackEnv) {
	for _, m := range []struct {
		name   string
		offset int
	}{{"agent", 2}, {"sshkey", 3}, {"channel", 4}} {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(env.MetricsBase+m.offset) + "/metrics")
		if err != nil {
			t.Fatalf("%s metrics: %v", m.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "artcafe_rpc_request") {
			t.Fatalf("%s metrics (%d) lack artcafe_rpc_request*:\n%s", m.name, resp.StatusCode, testkit.Tail(string(b), 3000))
		}
	}
}

// dynamoTables lists dynalite's tables with a raw ListTables call (dynalite checks that a
// signature is present, not that it is right).
func dynamoTables(t *testing.T, endpoint string) []string {
	var names []string
	start := ""
	for range 100 {
		body := "{}"
		if start != "" {
			body = fmt.Sprintf(`{"ExclusiveStartTableName": %q}`, start)
		}
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			TableNames             []string `json:"TableNames"`
			LastEvaluatedTableName string   `json:"LastEvaluatedTableName"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("ListTables: %d %v", resp.StatusCode, err)
		}
		names = append(names, out.TableNames...)
		if out.LastEvaluatedTableName == "" {
			return names
		}
		start = out.LastEvaluatedTableName
	}
	return names
}
