package cluster

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/authtoken"
	"github.com/artcafe-ai/pubsub/contracts/limitsv1"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/devauth"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// Timings of the run.
const (
	outage     = 10 * time.Second // traffic goes on with the victims down
	warmAcks   = 30               // acknowledged messages per publisher before the kill
	afterAcks  = 30               // and after the restart
	rejoinTime = 90 * time.Second // bound on every recovery
)

// wantStreams are the streams and KV buckets the code creates; each must run at R3.
func wantStreams() []string {
	return append([]string{platform.Stream, usagev1.Stream, messagev1.Stream, "KV_" + presencev1.Bucket,
		"KV_" + limitsv1.ConnBucket}, limitsv1.CounterStreams()...)
}

// TestScaleOut runs the fleet at scale on this machine, loads it through both gateways,
// kills one replica of every service and one NATS node with SIGKILL, starts them again,
// and checks that no request and no acknowledged message was lost and that everything
// rejoined.
func TestScaleOut(t *testing.T) {
	endpoint := os.Getenv("DYNAMODB_ENDPOINT")
	if endpoint == "" {
		t.Skip("DYNAMODB_ENDPOINT is not set: run `make test-cluster` (under scripts/dynalite/with-dynalite.sh)")
	}
	began := time.Now()
	s := newStack(t, endpoint)

	// NATS first, then one replica of each service (they create their tables), the
	// second replicas, then the gateways.
	for _, n := range s.nodes {
		s.start(n.name)
	}
	for _, n := range s.nodes {
		eventually(t, 60*time.Second, n.name+" healthy", func() (bool, string) { return healthz(n) })
	}
	ops := s.ops()
	for r := 1; r <= replicas; r++ {
		for _, svc := range services {
			s.start(svc + "-" + strconv.Itoa(r))
		}
		for _, svc := range services {
			eventually(t, 60*time.Second, fmt.Sprintf("%d instances of %s", r, svc), func() (bool, string) {
				n, err := instances(ops, svc)
				return n == r, fmt.Sprintf("%d instances (%v)", n, err)
			})
		}
	}
	for g := 1; g <= gateways; g++ {
		s.start("gateway-" + strconv.Itoa(g))
	}
	for _, base := range s.gateways {
		c := newClient(base, "", "")
		eventually(t, 60*time.Second, base+" healthy", func() (bool, string) {
			r, err := c.try(http.MethodGet, "/health", nil)
			if err != nil {
				return false, err.Error()
			}
			return r.Status == http.StatusOK, r.String()
		})
	}
	t.Logf("fleet up in %s: %d NATS nodes, %d replicas of %v, %d gateways", time.Since(began).Round(time.Millisecond),
		nodes, replicas, services, gateways)

	// The load tenant, on enterprise (no rate or quota in the way), and a probe tenant on
	// the default plan, whose few calls make the gateways create their limiter buckets.
	mint := func(sub string, roles ...string) string {
		tok, err := devauth.MintUserToken(s.secret, devauth.Claims{Subject: sub, Roles: roles, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	user, admin := mint("cluster-user"), mint("cluster-ops", authtoken.RolePlatformAdmin)
	setup := newTally()
	createTenant := func(name string) string {
		r, ok := newClient(s.gateways[0], user, "").call(setup, http.MethodPost, "/api/v1/tenants",
			map[string]any{"name": name, "admin_email": "cluster@example.com"}, http.StatusCreated)
		var cr struct {
			TenantID string `json:"tenant_id"`
		}
		if !ok || json.Unmarshal(r.Body, &cr) != nil || cr.TenantID == "" {
			t.Fatalf("create tenant: %s", r)
		}
		return cr.TenantID
	}
	tenant, probe := createTenant("Cluster load"), createTenant("Cluster probe")
	if r, ok := newClient(s.gateways[0], admin, "").call(setup, http.MethodPut, "/api/v1/tenants/"+tenant+"/plan",
		map[string]any{"subscription_tier": "enterprise"}, http.StatusOK); !ok {
		t.Fatalf("set plan: %s", r)
	}
	clients := make([]*client, gateways)
	for g, base := range s.gateways {
		clients[g] = newClient(base, user, tenant)
		eventually(t, 20*time.Second, "the enterprise plan reaches "+base, func() (bool, string) {
			r, ok := clients[g].call(setup, http.MethodGet, "/api/v1/channels?limit=1", nil, http.StatusOK)
			return ok && r.Header.Get("RateLimit-Limit") == "", r.Header.Get("RateLimit-Limit")
		})
	}
	createChannel := func(c *client, tl *tally, name string) (string, bool) {
		r, ok := c.call(tl, http.MethodPost, "/api/v1/channels", map[string]any{"name": name}, http.StatusCreated)
		var ce struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		if !ok || json.Unmarshal(r.Body, &ce) != nil || ce.Channel.ID == "" {
			return "", false
		}
		return ce.Channel.ID, true
	}
	for g, base := range s.gateways {
		pc := newClient(base, user, probe)
		ch, ok := createChannel(pc, setup, "probe-"+strconv.Itoa(g))
		if !ok {
			t.Fatalf("probe channel: %v", setup.broken)
		}
		if r, ok := pc.call(setup, http.MethodPost, "/api/v1/channels/"+ch+"/messages", []byte(`{"probe":true}`), http.StatusOK); !ok {
			t.Fatalf("probe publish: %s", r)
		}
	}

	// Traffic: per gateway a publisher on its own channel, watched through both
	// gateways, and REST workers creating and reading agents and channels.
	var pubs []*publisher
	var watchers [][]*watcher // per publisher
	for g := range s.gateways {
		ch, ok := createChannel(clients[g], setup, "stream-"+strconv.Itoa(g))
		if !ok {
			t.Fatalf("stream channel: %v", setup.broken)
		}
		var ws []*watcher
		for _, base := range s.gateways {
			w := startWatcher(base, user, tenant, ch)
			t.Cleanup(w.halt)
			select {
			case <-w.ready:
			case <-time.After(30 * time.Second):
				t.Fatalf("watcher did not subscribe: %s", w.describe())
			}
			ws = append(ws, w)
		}
		watchers = append(watchers, ws)
		p := startPublisher(clients[g], ch)
		t.Cleanup(p.halt)
		pubs = append(pubs, p)
	}
	rest := newTally()
	stopRest := make(chan struct{})
	var restWG sync.WaitGroup
	for g := range s.gateways {
		for w := range 2 {
			c := newClient(s.gateways[g], user, tenant)
			restWG.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stopRest:
						return
					default:
					}
					restRound(c, rest, fmt.Sprintf("g%dw%d-%d", g, w, i))
				}
			})
		}
	}
	haltRest := sync.OnceFunc(func() { close(stopRest); restWG.Wait() })
	t.Cleanup(haltRest)
	loadStart := time.Now()

	waitAcks := func(what string, n []int) {
		t.Helper()
		eventually(t, 120*time.Second, what, func() (bool, string) {
			for i, p := range pubs {
				if got := len(p.acked()); got < n[i] {
					if _, _, _, _, _, broken := p.tl.snapshot(); len(broken) > 0 {
						t.Fatalf("%s: publisher %d stopped: %v", what, i, broken)
					}
					return false, fmt.Sprintf("publisher %d: %d acknowledged", i, got)
				}
			}
			return true, ""
		})
	}
	waitAcks("publishing before the kills", []int{warmAcks, warmAcks})

	// The kills: one replica of each service and one NATS node, at once.
	victims := []string{"nats-2"}
	for _, svc := range services {
		victims = append(victims, svc+"-1")
	}
	for _, v := range victims {
		s.kill(v)
	}
	killed := time.Now()
	// And one watcher per gateway loses its connection (no close handshake): it must
	// connect again during the outage and resume with since_seq. Publisher 0's watcher on
	// gateway-2 and publisher 1's on gateway-1: both publishers, both gateways, each
	// watching a channel published through the other gateway.
	cut := []*watcher{watchers[0][1], watchers[1][0]}
	for _, w := range cut {
		if !w.drop() {
			t.Fatalf("a watcher to cut had no session: %s", w.describe())
		}
	}
	exited := map[string]bool{}
	for len(exited) < len(victims) {
		select {
		case ex := <-s.sup.Failed():
			if !slices.Contains(victims, ex.Name) {
				t.Fatalf("a process that was not killed exited: %s", ex)
			}
			exited[ex.Name] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("killed processes not reported: got %v of %v", exited, victims)
		}
	}
	beforeKill := []int{len(pubs[0].acked()), len(pubs[1].acked())}
	time.Sleep(time.Until(killed.Add(outage)))
	duringOutage := []int{len(pubs[0].acked()) - beforeKill[0], len(pubs[1].acked()) - beforeKill[1]}
	restarted := time.Now()
	for _, v := range victims {
		s.start(v)
	}

	// Rejoin: two instances of every service again; the NATS node healthy (current with
	// the meta leader and its streams) and every stream's replicas current.
	recovery := map[string]time.Duration{}
	var rmu sync.Mutex
	var rwg sync.WaitGroup
	for _, svc := range services {
		rwg.Go(func() {
			deadline := time.Now().Add(rejoinTime)
			for time.Now().Before(deadline) {
				if n, _ := instances(ops, svc); n == replicas {
					rmu.Lock()
					recovery[svc] = time.Since(restarted)
					rmu.Unlock()
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	rwg.Go(func() {
		deadline := time.Now().Add(rejoinTime)
		for time.Now().Before(deadline) {
			if ok, _ := healthz(s.nodes[1]); ok {
				if view, err := s.streamsView(); err == nil {
					if ok, _ := replicasCurrent(view, wantStreams()); ok {
						rmu.Lock()
						recovery["nats-2"] = time.Since(restarted)
						rmu.Unlock()
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	rwg.Wait()
	for _, v := range append([]string{"nats-2"}, services...) {
		if _, ok := recovery[v]; !ok {
			why := ""
			if v == "nats-2" {
				_, h := healthz(s.nodes[1])
				view, err := s.streamsView()
				_, cur := replicasCurrent(view, wantStreams())
				why = fmt.Sprintf("healthz %s; streams %s %v", h, cur, err)
			} else {
				n, err := instances(ops, v)
				why = fmt.Sprintf("%d instances (%v)", n, err)
			}
			t.Fatalf("%s did not rejoin within %s: %s", v, rejoinTime, why)
		}
	}

	acked := []int{len(pubs[0].acked()), len(pubs[1].acked())}
	waitAcks("publishing after the restarts", []int{acked[0] + afterAcks, acked[1] + afterAcks})
	haltRest()
	for _, p := range pubs {
		p.halt()
	}
	loadTime := time.Since(loadStart)
	select {
	case ex := <-s.sup.Failed():
		t.Fatalf("a process exited: %s", ex)
	default:
	}
	s.alive()

	// Requests: each one succeeded, after retries of 503/504 only.
	report := func(name string, tl *tally) int {
		req, att, retried, conflicts, failed, broken := tl.snapshot()
		t.Logf("%s: %d requests, %d attempts, %d retried, %d creates found stored on retry (409), failed attempts by status %v",
			name, req, att, retried, conflicts, failed)
		if len(broken) > 0 {
			t.Errorf("%s: requests that failed otherwise than 503/504, or never succeeded: %v", name, broken)
		}
		for st := range failed {
			if !retryable(st) {
				t.Errorf("%s: %d attempts failed with status %d (-1: no HTTP reply), not a documented retryable status", name, failed[st], st)
			}
		}
		return req
	}
	total := report("rest", rest) + report("setup", setup)
	var allAcks int
	for i, p := range pubs {
		total += report("publisher "+strconv.Itoa(i), p.tl)
		acks := p.acked()
		allAcks += len(acks)
		retried := 0
		for _, a := range acks {
			if a.Attempts > 1 {
				retried++
			}
		}
		t.Logf("publisher %d: %d acknowledged (%d before the kills, %d during the %s outage), %d after a retry",
			i, len(acks), beforeKill[i], duringOutage[i], outage, retried)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("load: %d requests in %s through %d gateways = %.1f req/s", total, loadTime.Round(time.Millisecond), gateways,
		float64(total)/loadTime.Seconds())
	for _, v := range append([]string{"nats-2"}, services...) {
		t.Logf("recovery of %s after its restart: %s", v, recovery[v].Round(time.Millisecond))
	}

	// Messages: every acknowledged one in history exactly once, in order; every watcher
	// ends with exactly the acknowledged messages.
	reader := newClient(s.gateways[1], user, tenant)
	for i, p := range pubs {
		acks := p.acked()
		checkHistory(t, reader, p.channel, acks)
		for j, w := range watchers[i] {
			checkWatched(t, w, acks, fmt.Sprintf("watcher of publisher %d on gateway-%d", i, j+1))
		}
	}
	for _, w := range cut {
		if n := w.sessionCount(); n < 2 {
			t.Fatalf("a watcher whose connection was cut did not connect again (%d sessions): %s", n, w.describe())
		}
	}

	// JetStream: every stream and bucket at R3 with all replicas current.
	view, err := s.streamsView()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range wantStreams() {
		sd, ok := view[name]
		if !ok || sd.Config == nil || sd.Config.Replicas != nodes {
			t.Fatalf("stream %s is not at R%d: %+v", name, nodes, sd.Config)
		}
	}
	if ok, why := replicasCurrent(view, wantStreams()); !ok {
		t.Fatalf("after the run: %s", why)
	}
	for name, sd := range view {
		if sd.Config.Replicas != nodes {
			t.Fatalf("stream %s runs at R%d", name, sd.Config.Replicas)
		}
	}
	t.Logf("streams at R%d, replicas current: %v", nodes, slices.Sorted(maps.Keys(view)))

	// Usage: the day's messages_published is exactly the acknowledged publishes.
	usageStart := time.Now()
	eventually(t, 60*time.Second, "usage counts every acknowledged publish", func() (bool, string) {
		r, ok := reader.call(newTally(), http.MethodGet, "/api/v1/usage-metrics", nil, http.StatusOK)
		var u struct {
			Totals struct {
				MessagesPublished int64 `json:"messages_published"`
			} `json:"totals"`
		}
		if !ok || json.Unmarshal(r.Body, &u) != nil {
			return false, r.String()
		}
		if u.Totals.MessagesPublished > int64(allAcks) {
			t.Fatalf("usage counts %d messages published, more than the %d acknowledged", u.Totals.MessagesPublished, allAcks)
		}
		return u.Totals.MessagesPublished == int64(allAcks), fmt.Sprintf("%d of %d", u.Totals.MessagesPublished, allAcks)
	})
	t.Logf("usage: messages_published = %d = acknowledged (settled %s after the load)", allAcks, time.Since(usageStart).Round(time.Millisecond))
	t.Logf("run: %s", time.Since(began).Round(time.Millisecond))
}

// restRound is one round of REST traffic: create an agent and read it, create a channel
// and read it, list SSH keys.
func restRound(c *client, tl *tally, name string) {
	if r, ok := c.call(tl, http.MethodPost, "/api/v1/agents", map[string]any{"name": "agent-" + name}, http.StatusCreated); ok {
		var ae struct {
			Agent struct {
				ID string `json:"id"`
			} `json:"agent"`
		}
		if json.Unmarshal(r.Body, &ae) == nil && ae.Agent.ID != "" {
			c.call(tl, http.MethodGet, "/api/v1/agents/"+ae.Agent.ID, nil, http.StatusOK)
		}
	}
	if r, ok := c.call(tl, http.MethodPost, "/api/v1/channels", map[string]any{"name": "channel-" + name}, http.StatusCreated); ok {
		var ce struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		if json.Unmarshal(r.Body, &ce) == nil && ce.Channel.ID != "" {
			c.call(tl, http.MethodGet, "/api/v1/channels/"+ce.Channel.ID, nil, http.StatusOK)
		}
	}
	c.call(tl, http.MethodGet, "/api/v1/ssh-keys?limit=5", nil, http.StatusOK)
}

// checkHistory requires the channel's history, oldest first, to hold every acknowledged
// message exactly once at the seq its reply gave, in reply order, and nothing else.
func checkHistory(t *testing.T, c *client, channel string, acks []testkit.Ack) {
	t.Helper()
	type msg struct {
		Seq  uint64          `json:"seq"`
		Data json.RawMessage `json:"data"`
	}
	var all []msg
	next := ""
	tl := newTally()
	for range 10000 {
		path := "/api/v1/channels/" + channel + "/messages?limit=100"
		if next != "" {
			path += "&next_token=" + next
		}
		r, ok := c.call(tl, http.MethodGet, path, nil, http.StatusOK)
		var h struct {
			Messages  []msg   `json:"messages"`
			NextToken *string `json:"next_token"`
		}
		if !ok || json.Unmarshal(r.Body, &h) != nil {
			t.Fatalf("history: %s", r)
		}
		all = append(all, h.Messages...)
		if h.NextToken == nil {
			break
		}
		next = *h.NextToken
	}
	stored := make([]testkit.Stored, len(all))
	for k, m := range all {
		stored[k] = testkit.Stored{Seq: m.Seq, Data: m.Data}
	}
	testkit.CheckAckedHistory(t, stored, acks)
}

// checkWatched requires the watcher to end with exactly the acknowledged messages, each
// once and in seq order, across its sessions.
func checkWatched(t *testing.T, w *watcher, acks []testkit.Ack, name string) {
	t.Helper()
	eventually(t, 30*time.Second, name+" receives every acknowledged message", func() (bool, string) {
		if a, missing := testkit.MissingAck(w.stored(), acks); missing {
			return false, fmt.Sprintf("missing message %d (seq %d); %s", a.I, a.Seq, w.describe())
		}
		return true, ""
	})
	w.halt()
	testkit.CheckDelivered(t, name, w.stored(), acks, w.describe)
	t.Logf("%s: %s", name, w.describe())
}
