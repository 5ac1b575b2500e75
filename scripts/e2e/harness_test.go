package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/scripts/internal/localnats"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// stackEnv is one stack's settings: every one of them differs between stacks.
type stackEnv struct {
	DataDir     string
	HTTPAddr    string
	NATSURL     string
	MetricsBase int
	// Dynamo selects the DynamoDB backend at Endpoint with a table prefix of this run.
	Dynamo      bool
	Endpoint    string
	TablePrefix string
	// Secret, when set, is passed as AUTH_JWT_SECRET; otherwise the launcher generates one.
	Secret string
}

func newStackEnv(t *testing.T) stackEnv {
	return stackEnv{
		DataDir:     filepath.Join(t.TempDir(), "data"),
		HTTPAddr:    "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		NATSURL:     "nats://127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)),
		MetricsBase: testkit.FreePortRange(t, 6),
	}
}

func (s stackEnv) baseURL() string { return "http://" + s.HTTPAddr }

// environ is the environment of the launcher (or of one process) for this stack.
func (s stackEnv) environ(extra ...string) []string {
	// The caller's values of the variables set here never leak into a leg (the embedded
	// leg must not see the DYNAMODB_ENDPOINT that with-dynalite.sh exports).
	env := testkit.Environ(
		"HTTP_ADDR="+s.HTTPAddr,
		"NATS_URL="+s.NATSURL,
		"DATA_DIR="+s.DataDir,
		"METRICS_ADDR=127.0.0.1:"+strconv.Itoa(s.MetricsBase),
		"NO_COLOR=1",
	)
	if s.Dynamo {
		env = append(env, "STORE=dynamodb", "DYNAMODB_ENDPOINT="+s.Endpoint, "DYNAMODB_TABLE_PREFIX="+s.TablePrefix,
			"AWS_REGION=us-east-1")
	}
	if s.Secret != "" {
		env = append(env, "AUTH_JWT_SECRET="+s.Secret)
	}
	return append(env, extra...)
}

// creds is the NATS_CREDS setting of component in this stack: the seed the launcher
// (`launcher run` or `launcher nats`) serves NATS with, made now if it does not exist yet.
func (s stackEnv) creds(t *testing.T, component string) string {
	t.Helper()
	if !slices.Contains(natsperm.Components(), component) {
		return "NATS_CREDS=" // NATS itself
	}
	c, err := localnats.EnsureCredentials(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	return "NATS_CREDS=" + c.SeedFile(component)
}

// natsConnect connects to the stack's NATS as component (its seed and inbox prefix).
func (s stackEnv) natsConnect(t *testing.T, component string) *nats.Conn {
	t.Helper()
	c, err := localnats.EnsureCredentials(s.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := nats.NkeyOptionFromSeed(c.SeedFile(component))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.NATSURL, seed, nats.CustomInboxPrefix(natsperm.InboxPrefix(component)))
	if err != nil {
		t.Fatalf("connect to NATS as %s: %v", component, err)
	}
	return nc
}

// token runs `launcher token args...` for this stack.
func (s stackEnv) token(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "launcher"), append([]string{"token"}, args...)...)
	cmd.Env = s.environ()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("launcher token %v: %v: %s", args, err, stderr.String())
	}
	tok := strings.TrimSpace(string(out))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("launcher token printed %q, not a JWT", tok)
	}
	return tok
}

// launcher is a running `launcher run`.
type launcher struct {
	env  stackEnv
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// startLauncher starts `launcher run` for env and waits for its banner (the gateway's
// /health answers and lists the tenant service).
func startLauncher(t *testing.T, env stackEnv) *launcher {
	t.Helper()
	l := &launcher{env: env, out: &testkit.SyncBuffer{}, done: make(chan struct{})}
	l.cmd = exec.Command(filepath.Join(binDir, "launcher"), "run", "-stop-timeout", "15s")
	l.cmd.Env = env.environ()
	l.cmd.Stdout, l.cmd.Stderr = l.out, l.out
	l.cmd.SysProcAttr = childAttr()
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			_ = l.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-l.done:
			case <-time.After(30 * time.Second):
				_ = l.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("launcher output:\n%s", testkit.Tail(l.out.String(), 40000))
		}
	})
	deadline := time.After(90 * time.Second)
	for !strings.Contains(l.out.String(), "ArtCafe PubSub is running") {
		select {
		case <-l.done:
			t.Fatalf("launcher exited before the stack was ready (%v):\n%s", l.err, testkit.Tail(l.out.String(), 20000))
		case <-deadline:
			t.Fatalf("no banner within 90 s:\n%s", testkit.Tail(l.out.String(), 20000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if strings.Contains(l.out.String(), "did not report a healthy stack") {
		t.Fatalf("the launcher printed its banner without a healthy stack:\n%s", testkit.Tail(l.out.String(), 20000))
	}
	return l
}

var bannerToken = regexp.MustCompile(`(?m)TOKEN=(\S+)$`)

// bannerToken is the user token the banner printed.
func (l *launcher) bannerToken(t *testing.T) string {
	t.Helper()
	m := bannerToken.FindAllStringSubmatch(l.out.String(), -1)
	if len(m) == 0 {
		t.Fatalf("no TOKEN= line in the banner:\n%s", testkit.Tail(l.out.String(), 5000))
	}
	return m[len(m)-1][1]
}

// stop sends SIGTERM and requires a clean exit (code 0: every child stopped on SIGTERM).
func (l *launcher) stop(t *testing.T) {
	t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal launcher: %v", err)
	}
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("launcher still running 60 s after SIGTERM:\n%s", testkit.Tail(l.out.String(), 20000))
	}
	if l.err != nil {
		var ee *exec.ExitError
		if errors.As(l.err, &ee) {
			t.Fatalf("launcher exited with %v after SIGTERM (want 0):\n%s", ee, testkit.Tail(l.out.String(), 20000))
		}
		t.Fatal(l.err)
	}
	if !strings.Contains(l.out.String(), "all stopped") {
		t.Fatalf("launcher exited 0 without its final line:\n%s", testkit.Tail(l.out.String(), 5000))
	}
}

// eventually polls cond every 50 ms until it holds or timeout passes; the last reason
// is reported.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.Eventually(t, timeout, 50*time.Millisecond, what, cond)
}

// waitHealthy waits for /health 200 with at least one instance of each named service.
func waitHealthy(t *testing.T, c *client, timeout time.Duration, services ...string) {
	t.Helper()
	eventually(t, timeout, "gateway healthy", func() (bool, string) {
		r, err := c.try(http.MethodGet, "/health")
		if err != nil {
			return false, err.Error()
		}
		if r.Status != http.StatusOK {
			return false, fmt.Sprintf("status %d: %s", r.Status, r.Body)
		}
		var h struct {
			Services map[string]int `json:"services"`
		}
		if err := r.decode(&h); err != nil {
			return false, err.Error()
		}
		for _, s := range services {
			if h.Services[s] < 1 {
				return false, fmt.Sprintf("no %s instance yet: %s", s, r.Body)
			}
		}
		return true, ""
	})
}

// setPlan puts tenant on plan tier with a platform-admin token (PUT /tenants/{id}/plan).
// Tests that make many calls or publish many messages use "enterprise", which has no
// rate or quota in the way; tests about limits stay on the plan they test.
func (s stackEnv) setPlan(t *testing.T, c *client, tenant, tier string) {
	t.Helper()
	ops := s.token(t, "-sub", "e2e-plan-ops", "-role", "platform_admin")
	var te tenantEnvelope
	c.expect(t, http.StatusOK, &te, http.MethodPut, "/api/v1/tenants/"+tenant+"/plan", bearer(ops),
		jsonBody(map[string]any{"subscription_tier": tier}))
	if te.Tenant.SubscriptionTier != tier {
		t.Fatalf("plan of %s: %q, want %q", tenant, te.Tenant.SubscriptionTier, tier)
	}
}

// awaitRateLimit waits until the gateway applies a plan change (it caches the tenant for
// up to 5 s): a tenant-scoped call by auth carries RateLimit-Limit: want ("" for a plan
// without a per-minute limit, which sends no such header).
func awaitRateLimit(t *testing.T, c *client, auth []any, want string) {
	t.Helper()
	eventually(t, 15*time.Second, "the plan applies (RateLimit-Limit "+want+")", func() (bool, string) {
		r := c.expect(t, http.StatusOK, nil, http.MethodGet, "/api/v1/channels?limit=1", auth...)
		got := r.Header.Get("RateLimit-Limit")
		return got == want, "RateLimit-Limit " + got
	})
}
