package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
)

// TestChannelServiceRestart kills the channel service with SIGKILL while a publisher keeps
// publishing over REST and a WebSocket session watches, restarts it, and checks that every
// acknowledged message is in history exactly once and in order, and reached the session.
// The launcher stops the whole stack when a child dies, so NATS, the services and the
// gateway are started one by one with the environment the launcher would give them; on
// both store backends (DynamoDB when DYNAMODB_ENDPOINT is set).
func TestChannelServiceRestart(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { channelRestart(t, newStackEnv(t)) })
	t.Run("dynamodb", func(t *testing.T) {
		endpoint := os.Getenv("DYNAMODB_ENDPOINT")
		if endpoint == "" {
			t.Skip("DYNAMODB_ENDPOINT is not set: the DynamoDB leg runs under scripts/dynalite/with-dynalite.sh (make test-e2e)")
		}
		env := newStackEnv(t)
		env.Dynamo, env.Endpoint, env.TablePrefix = true, endpoint, "e2e-"+randomHex(t, 4)+"-"
		channelRestart(t, env)
	})
}

func channelRestart(t *testing.T, env stackEnv) {
	env.Secret = randomHex(t, 32)
	out := &syncBuffer{}
	sup := fleet.New(fleet.NewOutput(out, false, "nats", "tenant", "agent", "channel", "gateway"), 15*time.Second)
	t.Cleanup(func() {
		sup.Stop(context.Background())
		if t.Failed() {
			t.Logf("process output:\n%s", tail(out.String(), 40000))
		}
	})
	start := func(name, bin string, args []string, stage, metricsOffset int) int {
		t.Helper()
		pid, err := sup.Start(fleet.Process{Name: name, Path: filepath.Join(binDir, bin), Args: args, Stage: stage,
			Env: env.environ("METRICS_ADDR=127.0.0.1:" + strconv.Itoa(env.MetricsBase+metricsOffset))})
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	start("nats", "launcher", []string{"nats"}, 0, 5)
	start("tenant", "tenant", nil, 1, 1)
	start("agent", "agent", nil, 1, 2)
	channelPid := start("channel", "channel", nil, 1, 4)
	start("gateway", "gateway", nil, 2, 0)
	c := newClient(env.baseURL())
	waitHealthy(t, c, 60*time.Second, "tenant", "agent", "channel")

	alice := env.token(t, "-sub", "e2e-restart")
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(alice),
		jsonBody(map[string]any{"name": "Restart", "admin_email": "restart@example.com"}))
	tenant := cr.TenantID
	var ce channelEnvelope
	c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", as(alice, tenant, jsonBody(map[string]any{"name": "steady"}))...)
	channel := ce.Channel.ID
	watcher := dialWS(t, t, env.baseURL(), "watcher", wsAuth{token: alice, tenant: tenant})
	watcher.subscribe(t, channel)
	mark := watcher.mark()

	// The publisher: one message at a time, so acknowledged order is seq order.
	type ack struct {
		i   int
		seq uint64
	}
	var (
		mu       sync.Mutex
		acks     []ack
		failures = map[int]int{} // status → count
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pc := newClient(env.baseURL())
	pc.http.Timeout = 5 * time.Second
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := pc.try(post, channelPath(channel, "/messages"), as(alice, tenant, jsonBody(fmt.Sprintf(`{"i":%d}`, i)))...)
			mu.Lock()
			switch {
			case err != nil:
				failures[-1]++
			case r.Status == http.StatusOK:
				var p publishedJSON
				if json.Unmarshal(r.Body, &p) == nil && p.Seq > 0 {
					acks = append(acks, ack{i, p.Seq})
				} else {
					failures[-2]++
				}
			default:
				failures[r.Status]++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	acked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acks)
	}
	waitAcks := func(what string, n int) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() (bool, string) { return acked() >= n, fmt.Sprintf("%d acknowledged", acked()) })
	}

	waitAcks("publishing before the kill", 50)
	if err := syscall.Kill(channelPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-sup.Failed():
		if ex.Name != "channel" {
			t.Fatalf("unexpected exit: %s", ex)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the killed channel service was not reported")
	}
	beforeKill := acked()
	// Publishing needs only the gateway's channel cache and JetStream, so it goes on for a
	// while; once the cache entry is older than 5 s a lookup fails (503) until the service
	// is back. Both are fine: only acknowledged messages count. Down for 6 s: both states.
	time.Sleep(6 * time.Second)
	start("channel", "channel", nil, 1, 4)
	eventually(t, 30*time.Second, "history readable after the restart", func() (bool, string) {
		r := c.do(t, get, channelPath(channel, "/messages?limit=1"), as(alice, tenant)...)
		return r.Status == http.StatusOK, r.String()
	})
	waitAcks("publishing after the restart", acked()+50)
	close(stop)
	wg.Wait()

	mu.Lock()
	got := slices.Clone(acks)
	fails := fmt.Sprint(failures)
	mu.Unlock()
	t.Logf("%d acknowledged (%d before the kill), failures by status %s", len(got), beforeKill, fails)

	h := history(t, c, channel, 100, as(alice, tenant)...)
	seqOf := map[int][]uint64{} // i → seqs in history
	var seqs []uint64
	for _, m := range h {
		var d struct {
			I *int `json:"i"`
		}
		if err := json.Unmarshal(m.Data, &d); err != nil || d.I == nil {
			t.Fatalf("history message %s", m.Data)
		}
		seqOf[*d.I] = append(seqOf[*d.I], m.Seq)
		seqs = append(seqs, m.Seq)
	}
	if !slices.IsSorted(seqs) {
		t.Fatalf("history is not oldest first: %v", seqs)
	}
	var last uint64
	for _, a := range got {
		s := seqOf[a.i]
		if len(s) != 1 || s[0] != a.seq {
			t.Fatalf("acknowledged message %d (seq %d) appears in history with seqs %v", a.i, a.seq, s)
		}
		if a.seq <= last {
			t.Fatalf("acknowledged message %d has seq %d after seq %d", a.i, a.seq, last)
		}
		last = a.seq
	}
	// The live feed does not go through the channel service: the session saw them all.
	fs := watcher.waitMessages(t, mark, channel, len(got), 15*time.Second)
	live := map[uint64]bool{}
	for _, f := range fs {
		live[f.Seq] = true
	}
	for _, a := range got {
		if !live[a.seq] {
			t.Fatalf("acknowledged message %d (seq %d) never reached the WebSocket session", a.i, a.seq)
		}
	}
	if !slices.IsSorted(seqsOf(fs)) {
		t.Fatalf("live messages out of order: %v", seqsOf(fs))
	}
	if done, err := watcher.closed(); done {
		t.Fatalf("the session was closed: %v", err)
	}
}
