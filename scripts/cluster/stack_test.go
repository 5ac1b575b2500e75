package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
	"github.com/artcafe-ai/pubsub/scripts/internal/localnats"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// services are the service binaries, each run as two replicas.
var services = []string{"tenant", "agent", "sshkey", "channel", "usage"}

const (
	nodes    = 3
	replicas = 2
	gateways = 2
)

// node is one nats-server of the cluster.
type node struct {
	name                 string
	client, route, monit int
	conf, store          string
}

func (n node) url() string        { return "tls://127.0.0.1:" + strconv.Itoa(n.client) }
func (n node) monitorURL() string { return "http://127.0.0.1:" + strconv.Itoa(n.monit) }

// stack is the fleet: NATS nodes, service replicas, gateways, under one supervisor.
type stack struct {
	t        *testing.T
	dir      string
	creds    localnats.Credentials
	pki      tlsFiles
	secret   string
	nodes    []node
	gateways []string // base URLs
	sup      *fleet.Supervisor
	out      *testkit.SyncBuffer
	procs    map[string]fleet.Process

	mu   sync.Mutex
	pids map[string]int
}

// natsURL lists every node: a component reconnects to another when its node goes.
func (s *stack) natsURL() string {
	var urls []string
	for _, n := range s.nodes {
		urls = append(urls, n.url())
	}
	return strings.Join(urls, ",")
}

// newStack plans every process (ports, configs, credentials); start runs them.
func newStack(t *testing.T, endpoint string) *stack {
	t.Helper()
	dir := t.TempDir()
	s := &stack{t: t, dir: dir, out: &testkit.SyncBuffer{}, procs: map[string]fleet.Process{}, pids: map[string]int{}}
	var err error
	if s.creds, err = localnats.EnsureCredentials(dir); err != nil {
		t.Fatal(err)
	}
	s.pki = writePKI(t, dir)
	s.secret = testkit.RandomHex(t, 32)

	// The configs come from the one generator (contracts/natsperm via scripts/natsconf);
	// each node includes the cluster config and only moves its listeners to loopback
	// ports (the cluster listener by flag: a cluster block would replace the generated
	// one, TLS and routes included).
	confDir := filepath.Join(dir, "nats")
	if out, err := exec.Command(filepath.Join(binDir, "natsconf"), "write", "-dir", confDir).CombinedOutput(); err != nil {
		t.Fatalf("natsconf write: %v: %s", err, out)
	}
	ports := testkit.FreePorts(t, nodes*3+gateways*2+len(services)*replicas)
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	for i := range nodes {
		n := node{name: "nats-" + strconv.Itoa(i+1), client: next(), route: next(), monit: next(),
			store: filepath.Join(dir, "js-"+strconv.Itoa(i+1))}
		n.conf = filepath.Join(confDir, n.name+".conf")
		conf := fmt.Sprintf("include ./nats-cluster.conf\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\n", n.client, n.monit)
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.nodes = append(s.nodes, n)
	}
	nodeEnv := []string{"NATS_SERVER_TLS_CERT=" + s.pki.Cert, "NATS_SERVER_TLS_KEY=" + s.pki.Key, "NATS_SERVER_TLS_CA=" + s.pki.CA}
	for i, n := range s.nodes {
		nodeEnv = append(nodeEnv, "NATS_ROUTE_"+strconv.Itoa(i+1)+"=nats-route://127.0.0.1:"+strconv.Itoa(n.route))
	}
	for c, pub := range s.creds.Public {
		nodeEnv = append(nodeEnv, natsperm.NKeyEnv(c)+"="+pub)
	}
	for _, n := range s.nodes {
		s.procs[n.name] = fleet.Process{Name: n.name, Path: filepath.Join(binDir, "nats-server"), Stage: 0,
			Args: []string{"-c", n.conf, "--cluster", "nats://127.0.0.1:" + strconv.Itoa(n.route)},
			Env:  testkit.Environ(append([]string{"NATS_SERVER_NAME=" + n.name, "NATS_JS_STORE_DIR=" + n.store}, nodeEnv...)...)}
	}

	common := func(component string) []string {
		return []string{"NATS_URL=" + s.natsURL(), "NATS_CREDS=" + s.creds.SeedFile(component), "NATS_TLS_CA=" + s.pki.CA,
			"NATS_JS_REPLICAS=3", "LOG_FORMAT=console", "LOG_LEVEL=info", "NO_COLOR=1", "DATA_DIR=" + filepath.Join(dir, "data")}
	}
	prefix := "cluster-" + testkit.RandomHex(t, 4) + "-"
	for _, svc := range services {
		for r := 1; r <= replicas; r++ {
			name := svc + "-" + strconv.Itoa(r)
			s.procs[name] = fleet.Process{Name: name, Path: filepath.Join(binDir, svc), Stage: 1,
				Env: testkit.Environ(append(common(svc), "STORE=dynamodb", "DYNAMODB_ENDPOINT="+endpoint, "DYNAMODB_TABLE_PREFIX="+prefix,
					"AWS_REGION=us-east-1", "METRICS_ADDR=127.0.0.1:"+strconv.Itoa(next()))...)}
		}
	}
	for g := 1; g <= gateways; g++ {
		name := "gateway-" + strconv.Itoa(g)
		addr := "127.0.0.1:" + strconv.Itoa(next())
		s.gateways = append(s.gateways, "http://"+addr)
		s.procs[name] = fleet.Process{Name: name, Path: filepath.Join(binDir, "gateway"), Stage: 2,
			Env: testkit.Environ(append(common(natsperm.Gateway), "HTTP_ADDR="+addr, "AUTH_JWT_SECRET="+s.secret,
				"METRICS_ADDR=127.0.0.1:"+strconv.Itoa(next()))...)}
	}
	var names []string
	for name := range s.procs {
		names = append(names, name)
	}
	s.sup = fleet.New(fleet.NewOutput(s.out, false, names...), 15*time.Second)
	t.Cleanup(func() {
		s.sup.Stop(context.Background())
		if t.Failed() {
			t.Logf("process output (tail):\n%s", testkit.Tail(s.out.String(), 60000))
		}
	})
	return s
}

func (s *stack) start(name string) {
	s.t.Helper()
	pid, err := s.sup.Start(s.procs[name])
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.pids[name] = pid
	s.mu.Unlock()
}

// kill ends name with SIGKILL.
func (s *stack) kill(name string) {
	s.t.Helper()
	s.mu.Lock()
	pid := s.pids[name]
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill %s (pid %d): %v", name, pid, err)
	}
}

// alive requires every planned process to run.
func (s *stack) alive() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.pids {
		if err := syscall.Kill(pid, 0); err != nil {
			s.t.Fatalf("%s (pid %d) is gone: %v", name, pid, err)
		}
	}
}

// ops connects as the anonymous ops user (micro discovery only), over TLS.
func (s *stack) ops() *nats.Conn {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL(), nats.RootCAs(s.pki.CA), nats.Name("cluster-test-ops"),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		s.t.Fatalf("ops connection: %v", err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// instances counts the micro instances of service answering $SRV.INFO.<service>.
func instances(nc *nats.Conn, service string) (int, error) {
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return 0, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$SRV.INFO."+service, inbox, nil); err != nil {
		return 0, err
	}
	ids := map[string]bool{}
	deadline := time.After(750 * time.Millisecond)
	for {
		select {
		case m := <-ch:
			var info struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Data, &info) == nil && info.ID != "" {
				ids[info.ID] = true
			}
		case <-deadline:
			return len(ids), nil
		}
	}
}

// jsz reads a node's JetStream report with every stream's config and cluster view.
func jsz(n node) (*server.JSInfo, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(n.monitorURL() + "/jsz?accounts=true&streams=true&config=true")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /jsz: %s", n.name, resp.Status)
	}
	var info server.JSInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, err
	}
	return &info, nil
}

// healthz reports whether a node is healthy, JetStream included (current with the meta
// leader and its streams).
func healthz(n node) (bool, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(n.monitorURL() + "/healthz")
	if err != nil {
		return false, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK, b.String()
}

// streamsView is every stream of the cluster as its leader reports it.
func (s *stack) streamsView() (map[string]server.StreamDetail, error) {
	leaders := map[string]server.StreamDetail{}
	for _, n := range s.nodes {
		info, err := jsz(n)
		if err != nil {
			return nil, err
		}
		for _, acc := range info.AccountDetails {
			for _, sd := range acc.Streams {
				if sd.Cluster != nil && sd.Cluster.Leader == n.name {
					leaders[sd.Name] = sd
				}
			}
		}
	}
	return leaders, nil
}

// replicasCurrent reports whether every stream has a leader and all its replicas are
// current and online.
func replicasCurrent(view map[string]server.StreamDetail, want []string) (bool, string) {
	for _, name := range want {
		sd, ok := view[name]
		if !ok {
			return false, "no leader reports stream " + name
		}
		if len(sd.Cluster.Replicas) != nodes-1 {
			return false, fmt.Sprintf("%s: %d peers besides the leader", name, len(sd.Cluster.Replicas))
		}
		for _, p := range sd.Cluster.Replicas {
			if !p.Current || p.Offline {
				return false, fmt.Sprintf("%s: peer %s current %v offline %v lag %d", name, p.Name, p.Current, p.Offline, p.Lag)
			}
		}
	}
	return true, ""
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	testkit.Eventually(t, timeout, 100*time.Millisecond, what, cond)
}
