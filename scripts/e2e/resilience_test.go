package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// TestResilience kills the tenant service and then NATS under a running gateway and
// checks both come back without restarting the gateway (SPEC §11). The launcher stops
// the whole stack when a child dies, so here NATS (`launcher nats`), the tenant service
// and the gateway are started one by one with the environment the launcher would give
// them. Embedded store only.
func TestResilience(t *testing.T) {
	env := newStackEnv(t)
	env.Secret = testkit.RandomHex(t, 32)
	out := &testkit.SyncBuffer{}
	sup := fleet.New(fleet.NewOutput(out, false, "nats", "tenant", "gateway"), 15*time.Second)
	t.Cleanup(func() {
		sup.Stop(context.Background())
		if t.Failed() {
			t.Logf("process output:\n%s", testkit.Tail(out.String(), 40000))
		}
	})
	proc := func(name, bin string, args []string, stage int, extra ...string) fleet.Process {
		extra = append(extra, env.creds(t, name))
		return fleet.Process{Name: name, Path: filepath.Join(binDir, bin), Args: args, Env: env.environ(extra...), Stage: stage}
	}
	startNATS := func() int {
		pid, err := sup.Start(proc("nats", "launcher", []string{"nats"}, 0))
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	tenantProc := proc("tenant", "tenant", nil, 1, "METRICS_ADDR=127.0.0.1:"+strconv.Itoa(env.MetricsBase+1))
	startTenant := func() int {
		pid, err := sup.Start(tenantProc)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}

	natsPid := startNATS()
	tenantPid := startTenant()
	gatewayPid, err := sup.Start(proc("gateway", "gateway", nil, 2))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(env.baseURL())
	quick := newClient(env.baseURL())
	quick.http.Timeout = time.Second
	waitHealthy(t, c, 60*time.Second, "tenant")

	alice := env.token(t, "-sub", "e2e-alice")
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(alice),
		jsonBody(map[string]any{"name": "Sturdy", "admin_email": "alice@example.com"}))
	id := cr.TenantID
	c.expect(t, http.StatusOK, nil, get, tenantPath(id), bearer(alice))

	gatewayAlive := func(t *testing.T) {
		t.Helper()
		if err := syscall.Kill(gatewayPid, 0); err != nil {
			t.Fatalf("the gateway (pid %d) is gone: %v", gatewayPid, err)
		}
		select {
		case ex := <-sup.Failed():
			if ex.Name == "gateway" {
				t.Fatalf("the gateway exited: %s", ex)
			}
		default:
		}
	}

	step(t, "tenant service killed → 503, then recovery", func(t *testing.T) {
		if err := syscall.Kill(tenantPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Wait until the process is gone; a request routed to it just before may still
		// time out (504), hence the short client timeout while polling for the 503.
		select {
		case ex := <-sup.Failed():
			if ex.Name != "tenant" {
				t.Fatalf("unexpected exit: %s", ex)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the killed tenant service was not reported")
		}
		eventually(t, 5*time.Second, "tenant routes answer 503", func() (bool, string) {
			r, err := quick.try(get, tenantPath(id), bearer(alice))
			if err != nil {
				return false, err.Error()
			}
			return r.Status == http.StatusServiceUnavailable, r.String()
		})
		checkError(t, c.do(t, get, tenantPath(id), bearer(alice)), http.StatusServiceUnavailable, "service_unavailable")
		tenantPid = startTenant()
		eventually(t, 30*time.Second, "tenant routes recover", func() (bool, string) {
			r := c.do(t, get, tenantPath(id), bearer(alice))
			return r.Status == http.StatusOK, r.String()
		})
		gatewayAlive(t)
	})

	step(t, "NATS killed → 503, then recovery on the same port and store", func(t *testing.T) {
		if err := syscall.Kill(natsPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case ex := <-sup.Failed():
			if ex.Name != "nats" {
				t.Fatalf("unexpected exit: %s", ex)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the killed NATS was not reported")
		}
		eventually(t, 10*time.Second, "/health reports the lost NATS connection", func() (bool, string) {
			r, err := quick.try(get, "/health")
			if err != nil {
				return false, err.Error()
			}
			return r.Status == http.StatusServiceUnavailable, r.String()
		})
		// While NATS is away a call is refused (503) or runs out of time (504), never
		// anything else.
		r := c.do(t, get, tenantPath(id), bearer(alice))
		if r.Status != http.StatusServiceUnavailable && r.Status != http.StatusGatewayTimeout {
			t.Fatalf("with NATS down, want 503 or 504: %s", r)
		}
		natsPid = startNATS()
		waitHealthy(t, c, 30*time.Second, "tenant")
		eventually(t, 30*time.Second, "tenant routes recover after NATS returns", func() (bool, string) {
			r := c.do(t, get, tenantPath(id), bearer(alice))
			return r.Status == http.StatusOK, r.String()
		})
		gatewayAlive(t)
		// JetStream came back with its data: a delete (whose event is the commit) works.
		c.expect(t, http.StatusNoContent, nil, del, tenantPath(id), bearer(alice))
		eventually(t, 5*time.Second, "the tenant is deleted", func() (bool, string) {
			r := c.do(t, get, tenantPath(id), bearer(alice))
			return r.Status == http.StatusNotFound, r.String()
		})
	})

	step(t, "clean stop", func(t *testing.T) {
		live := []int{natsPid, tenantPid, gatewayPid}
		for _, ex := range sup.Stop(context.Background()) {
			if slices.Contains(live, ex.Pid) && !ex.Clean() {
				t.Errorf("did not stop cleanly on SIGTERM: %s", ex)
			}
		}
		if _, err := os.Stat(filepath.Join(env.DataDir, "tenants.db")); err != nil {
			t.Fatalf("no embedded store file: %v", err)
		}
	})
}
