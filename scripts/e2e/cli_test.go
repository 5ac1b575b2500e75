package e2e

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// cliResult is one run of bin/artcafe.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\n--- stdout:\n" + testkit.Tail(r.stdout, 6000) + "\n--- stderr:\n" + testkit.Tail(r.stderr, 3000)
}

// cliEnv is the environment of the CLI: the test's, without any ARTCAFE_* of the person
// running it, plus extra.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARTCAFE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// artcafe runs bin/artcafe with args and stdin; it must finish within a minute.
func artcafe(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "artcafe"), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("artcafe %v: still running after a minute\n%s\n%s", args, out.String(), errb.String())
	}
	r := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("artcafe %v: %v", args, err)
	}
	return r
}

// ok runs the CLI and requires exit 0.
func cliOK(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	r := artcafe(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("artcafe %v: want exit 0, got %s", args, r)
	}
	return r
}

func decodeCLI(t *testing.T, r cliResult, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("--json output is not the expected JSON: %v\n%s", err, r)
	}
}

// smokeReport is `artcafe smoke --json`.
type smokeReport struct {
	OK       bool        `json:"ok"`
	TenantID string      `json:"tenant_id"`
	Steps    []smokeStep `json:"steps"`
}

type smokeStep struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Error  *struct {
		Status    int    `json:"status"`
		Code      string `json:"code"`
		Detail    string `json:"detail"`
		RequestID string `json:"request_id"`
	} `json:"error"`
	Message string `json:"message"`
}

// checkSmoke requires every step of a smoke report to pass (the clean-up steps may be
// skipped), the usage and billing reads included.
func checkSmoke(t *testing.T, rep smokeReport, r cliResult) {
	t.Helper()
	if len(rep.Steps) < 18 {
		t.Fatalf("smoke ran %d steps:\n%s", len(rep.Steps), r)
	}
	for _, s := range rep.Steps {
		switch {
		case s.Status == "passed":
		case s.Status == "skipped" && strings.HasPrefix(s.Name, "clean up"):
		default:
			t.Fatalf("smoke step %q: %s (error %+v %s)\n%s", s.Name, s.Status, s.Error, s.Message, r)
		}
	}
	for _, name := range []string{"read usage", "read billing"} {
		if !slices.ContainsFunc(rep.Steps, func(s smokeStep) bool { return s.Name == name && s.Status == "passed" }) {
			t.Fatalf("smoke has no passed step %q:\n%s", name, r)
		}
	}
}

// TestCLI drives bin/artcafe as a process against the fleet started by the launcher
// (embedded stores): smoke passing and failing, the everyday commands' --json output,
// publish from stdin, subscribe with since_seq stopped by SIGINT, login --export.
func TestCLI(t *testing.T) {
	env := newStackEnv(t)
	l := startLauncher(t, env)
	tok := l.bannerToken(t)
	apiURL := env.baseURL() + "/api/v1"
	base := cliEnv("ARTCAFE_API=" + apiURL)
	user := cliEnv("ARTCAFE_API="+apiURL, "ARTCAFE_TOKEN="+tok)

	step(t, "smoke passes", func(t *testing.T) {
		r := artcafe(t, base, "", "smoke", "--api-endpoint", apiURL, "--token", tok)
		for _, want := range []string{"✓ create tenant", "✓ log the agent in with its key", "✓ message arrives on the agent's socket",
			"✓ read it back from history", "✓ delete the SSH key", "✓ clean up: delete the tenant"} {
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("smoke output lacks %q:\n%s", want, r)
			}
		}
		rj := artcafe(t, user, "", "smoke", "--json")
		var rep smokeReport
		decodeCLI(t, rj, &rep)
		checkSmoke(t, rep, rj)
		if r.code != 0 || rj.code != 0 || !rep.OK {
			t.Fatalf("every step passed, yet exit %d / %d, ok %v:\n%s", r.code, rj.code, rep.OK, r)
		}
		if !strings.Contains(r.stdout, "✓ all passed") {
			t.Fatalf("no final ✓ line:\n%s", r)
		}
	})

	step(t, "smoke with a wrong token fails at its first step", func(t *testing.T) {
		r := artcafe(t, base, "", "smoke", "--token", "not-a-token")
		if r.code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		for _, want := range []string{"✗ create tenant", "code:       unauthorized (HTTP 401)", "request_id: ", "- register agent with a capability", "✗ FAILED"} {
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("output lacks %q:\n%s", want, r)
			}
		}
	})

	step(t, "smoke in a tenant the caller cannot see fails with the API's detail", func(t *testing.T) {
		other := env.token(t, "-sub", "someone-else")
		var created struct {
			TenantID string `json:"tenant_id"`
		}
		decodeCLI(t, cliOK(t, cliEnv("ARTCAFE_API="+apiURL, "ARTCAFE_TOKEN="+other), "",
			"tenants", "create", "--name", "not yours", "--admin-email", "else@example.com", "--json"), &created)
		r := artcafe(t, user, "", "smoke", "--tenant-id", created.TenantID)
		if r.code != 1 || !strings.Contains(r.stdout, "✗ get tenant") || !strings.Contains(r.stdout, "code:       not_found (HTTP 404)") ||
			!strings.Contains(r.stdout, "request_id: ") {
			t.Fatalf("want exit 1 with ✗ get tenant and not_found: %s", r)
		}
		rj := artcafe(t, user, "", "smoke", "--tenant-id", created.TenantID, "--json")
		var rep smokeReport
		decodeCLI(t, rj, &rep)
		if rj.code != 1 || rep.OK || rep.Steps[0].Status != "failed" || rep.Steps[0].Error == nil ||
			rep.Steps[0].Error.Code != "not_found" || rep.Steps[0].Error.Detail == "" || rep.Steps[0].Error.RequestID == "" {
			t.Fatalf("want the first step failed with not_found: %s", rj)
		}
	})

	var tenant string
	step(t, "tenants create --json", func(t *testing.T) {
		var out struct {
			TenantID string `json:"tenant_id"`
			APIKey   string `json:"api_key"`
		}
		decodeCLI(t, cliOK(t, user, "", "tenants", "create", "--name", "cli", "--admin-email", "cli@example.com", "--json"), &out)
		if out.TenantID == "" || !strings.HasPrefix(out.APIKey, "art_") {
			t.Fatalf("create reply %+v", out)
		}
		tenant = out.TenantID
	})
	if tenant == "" {
		t.Fatal("no tenant: the rest needs one")
	}
	inTenant := append(slices.Clone(user), "ARTCAFE_TENANT="+tenant)

	var agentID, channelID string
	step(t, "agents create and list --json", func(t *testing.T) {
		var created struct {
			Agent struct {
				ID string `json:"id"`
			} `json:"agent"`
		}
		decodeCLI(t, cliOK(t, inTenant, "", "agents", "create", "--name", "cli-agent", "--capability", "echo", "--json"), &created)
		agentID = created.Agent.ID
		var list struct {
			Agents []struct {
				ID           string `json:"id"`
				Name         string `json:"name"`
				Capabilities []struct {
					Name string `json:"name"`
				} `json:"capabilities"`
			} `json:"agents"`
			NextToken *string `json:"next_token"`
		}
		decodeCLI(t, cliOK(t, inTenant, "", "agents", "list", "--json"), &list)
		if len(list.Agents) != 1 || list.Agents[0].ID != agentID || list.Agents[0].Name != "cli-agent" ||
			len(list.Agents[0].Capabilities) != 1 || list.Agents[0].Capabilities[0].Name != "echo" {
			t.Fatalf("agents list --json: %+v", list)
		}
		human := cliOK(t, inTenant, "", "agents", "list")
		if !strings.Contains(human.stdout, "NAME") || !strings.Contains(human.stdout, "cli-agent") || !strings.Contains(human.stdout, "just now") {
			t.Fatalf("agents list table:\n%s", human)
		}
	})

	step(t, "an API error exits 1 with detail, code and request_id", func(t *testing.T) {
		r := artcafe(t, inTenant, "", "agents", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
		if r.code != 1 || !strings.Contains(r.stderr, "Error: ") || !strings.Contains(r.stderr, "not_found (HTTP 404)") ||
			!strings.Contains(r.stderr, "request_id: ") {
			t.Fatalf("want exit 1 with the API's error: %s", r)
		}
		rj := artcafe(t, inTenant, "", "agents", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--json")
		var e struct {
			Error struct {
				Status    int    `json:"status"`
				Code      string `json:"code"`
				Detail    string `json:"detail"`
				RequestID string `json:"request_id"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(rj.stderr), &e); err != nil || rj.code != 1 || e.Error.Code != "not_found" ||
			e.Error.Status != 404 || e.Error.Detail == "" || e.Error.RequestID == "" {
			t.Fatalf("--json error: %v %s", err, rj)
		}
		if u := artcafe(t, inTenant, "", "agents", "create"); u.code != 2 || !strings.Contains(u.stderr, "--name is required") {
			t.Fatalf("a missing flag: want exit 2: %s", u)
		}
	})

	step(t, "channels create and list --json", func(t *testing.T) {
		var created struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		decodeCLI(t, cliOK(t, inTenant, "", "channels", "create", "--name", "cli-channel", "--json"), &created)
		channelID = created.Channel.ID
		var list struct {
			Channels []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"channels"`
		}
		decodeCLI(t, cliOK(t, inTenant, "", "channels", "list", "--json"), &list)
		if len(list.Channels) != 1 || list.Channels[0].ID != channelID || list.Channels[0].Name != "cli-channel" {
			t.Fatalf("channels list --json: %+v", list)
		}
	})
	if agentID == "" || channelID == "" {
		t.Fatal("no agent or channel: the rest needs them")
	}

	type published struct {
		MessageID string `json:"message_id"`
		Seq       uint64 `json:"seq"`
	}
	var pubs []published
	step(t, "publish from stdin and from an argument; history --json", func(t *testing.T) {
		var p1, p2 published
		decodeCLI(t, cliOK(t, inTenant, `{"n": 1, "text": "from stdin"}`+"\n", "publish", channelID, "-", "--json"), &p1)
		decodeCLI(t, cliOK(t, inTenant, "", "publish", channelID, `{"n": 2}`, "--idempotency-key", "k-2", "--json"), &p2)
		var again published
		decodeCLI(t, cliOK(t, inTenant, "", "publish", channelID, `{"n": 2}`, "--idempotency-key", "k-2", "--json"), &again)
		if p1.MessageID == "" || p2.Seq <= p1.Seq || again != p2 {
			t.Fatalf("publishes %+v %+v, replay %+v", p1, p2, again)
		}
		pubs = []published{p1, p2}
		var hist struct {
			Messages []struct {
				MessageID string          `json:"message_id"`
				Seq       uint64          `json:"seq"`
				Data      json.RawMessage `json:"data"`
				Sender    struct {
					Type string `json:"type"`
					ID   string `json:"id"`
				} `json:"sender"`
			} `json:"messages"`
		}
		decodeCLI(t, cliOK(t, inTenant, "", "history", channelID, "--json"), &hist)
		if len(hist.Messages) != 2 || hist.Messages[0].MessageID != p1.MessageID || hist.Messages[1].Seq != p2.Seq ||
			string(hist.Messages[0].Data) != `{"n": 1, "text": "from stdin"}` || hist.Messages[0].Sender.ID != "local-user" {
			t.Fatalf("history --json: %+v", hist)
		}
		if bad := artcafe(t, inTenant, "not json", "publish", channelID, "-"); bad.code != 2 {
			t.Fatalf("invalid JSON on stdin: want exit 2: %s", bad)
		}
	})

	step(t, "subscribe --since-seq replays, streams live, and stops on SIGINT with exit 0", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(binDir, "artcafe"), "subscribe", channelID, "--since-seq", "0")
		cmd.Env = inTenant
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr := &testkit.SyncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
			done <- cmd.Wait()
		}()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		type line struct {
			MessageID string          `json:"message_id"`
			Seq       uint64          `json:"seq"`
			ChannelID string          `json:"channel_id"`
			Data      json.RawMessage `json:"data"`
		}
		next := func() line {
			t.Helper()
			select {
			case s, ok := <-lines:
				if !ok {
					t.Fatalf("subscribe ended early; stderr:\n%s", stderr.String())
				}
				var l line
				if err := json.Unmarshal([]byte(s), &l); err != nil {
					t.Fatalf("subscribe printed a line that is not JSON: %q", s)
				}
				return l
			case <-time.After(15 * time.Second):
				t.Fatalf("no message line within 15 s; stderr:\n%s", stderr.String())
			}
			return line{}
		}
		for _, p := range pubs {
			if l := next(); l.MessageID != p.MessageID || l.Seq != p.Seq || l.ChannelID != channelID {
				t.Fatalf("replayed %+v, want %+v", l, p)
			}
		}
		var live published
		decodeCLI(t, cliOK(t, inTenant, `{"n": 3}`, "publish", channelID, "-", "--json"), &live)
		// One line per message: the data is compacted (it may have had line breaks).
		if l := next(); l.MessageID != live.MessageID || string(l.Data) != `{"n":3}` {
			t.Fatalf("live %+v, want %+v", l, live)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("subscribe after SIGINT: %v (want exit 0); stderr:\n%s", err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("subscribe still running 15 s after SIGINT; stderr:\n%s", stderr.String())
		}
		if !strings.Contains(stderr.String(), "subscribed to "+channelID) {
			t.Fatalf("stderr:\n%s", stderr.String())
		}
	})

	step(t, "keys add, login --export gives a usable shell line", func(t *testing.T) {
		dir := t.TempDir()
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "cli test")
		if err != nil {
			t.Fatal(err)
		}
		keyPath := filepath.Join(dir, "agent_ed25519")
		if err := os.WriteFile(keyPath, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		spub, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		var key struct {
			Key struct {
				ID      string `json:"id"`
				AgentID string `json:"agent_id"`
			} `json:"key"`
		}
		decodeCLI(t, cliOK(t, inTenant, string(ssh.MarshalAuthorizedKey(spub)), "keys", "add", "-", "--agent", agentID, "--name", "cli-key", "--json"), &key)
		if key.Key.ID == "" || key.Key.AgentID != agentID {
			t.Fatalf("keys add: %+v", key)
		}
		r := cliOK(t, inTenant, "", "login", "--key", keyPath, "--agent", agentID, "--export")
		if !strings.HasPrefix(r.stdout, "export ARTCAFE_TOKEN='") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("login --export printed %q", r.stdout)
		}
		// The line works in a shell: the next command acts as the agent.
		sh := exec.Command("sh", "-c", `eval "$("$CLI" login --key "$KEY" --agent "$AGENT" --export)" && "$CLI" whoami --json`)
		sh.Env = append(slices.Clone(inTenant), "CLI="+filepath.Join(binDir, "artcafe"), "KEY="+keyPath, "AGENT="+agentID)
		var errb bytes.Buffer
		sh.Stderr = &errb
		out, err := sh.Output()
		if err != nil {
			t.Fatalf("eval login --export; whoami: %v\n%s\n%s", err, out, errb.String())
		}
		var me struct {
			Kind     string `json:"kind"`
			AgentID  string `json:"agent_id"`
			TenantID string `json:"tenant_id"`
		}
		if err := json.Unmarshal(out, &me); err != nil || me.Kind != "agent" || me.AgentID != agentID || me.TenantID != tenant {
			t.Fatalf("whoami after eval: %v %s", err, out)
		}
	})

	step(t, "tenants delete", func(t *testing.T) {
		cliOK(t, user, "", "tenants", "delete", tenant)
		if r := artcafe(t, user, "", "tenants", "get", tenant); r.code != 1 || !strings.Contains(r.stderr, "not_found") {
			t.Fatalf("get after delete: %s", r)
		}
	})
}
