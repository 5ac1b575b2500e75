package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/fleet"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// TestChannelServiceRestart kills the channel service with SIGKILL while a publisher keeps
// publishing over REST and a WebSocket session watches, restarts it, and checks that every
// acknowledged message is in history exactly once and in order, and reached the session
// (which stays open: the live feed does not go through the channel service).
func TestChannelServiceRestart(t *testing.T) {
	onBothBackends(t, func(t *testing.T, env stackEnv) {
		outageRun(t, env, outage{victim: "channel",
			// Publishing needs only the gateway's channel cache and JetStream, so it goes
			// on for a while; once the cache entry is older than 5 s a lookup fails (503)
			// until the service is back. Both are fine. Down for 6 s: both states.
			down: 6 * time.Second})
	})
}

// TestNATSRestart kills NATS itself (the `launcher nats` process, SIGKILL) under the same
// load and starts it again on the same port and JetStream store dir. Publishes fail
// meanwhile (503/504) and the publisher retries each one under its Idempotency-Key, as a
// client should; every acknowledged message must be in history exactly once and in order,
// the gateway and the services must recover without restarts of their own, and the
// WebSocket watcher, reconnecting with since_seq like a real client if it has to, must
// end up with exactly the acknowledged messages.
func TestNATSRestart(t *testing.T) {
	onBothBackends(t, func(t *testing.T, env stackEnv) {
		outageRun(t, env, outage{victim: "nats",
			// Longer than the gateway's request timeout (10 s): a publish begun after the
			// kill cannot be acknowledged, so the retry path is always taken.
			down: 11 * time.Second, mustFail: true, mayReconnect: true, dropWatcher: true,
			whileDown: func(t *testing.T, c *client) {
				quick := newClient(c.base)
				quick.http.Timeout = time.Second
				eventually(t, 10*time.Second, "/health reports the lost NATS connection", func() (bool, string) {
					r, err := quick.try(get, "/health")
					if err != nil {
						return false, err.Error()
					}
					return r.Status == http.StatusServiceUnavailable, r.String()
				})
			}})
	})
}

// onBothBackends runs leg on the embedded store and on DynamoDB (when DYNAMODB_ENDPOINT
// is set, under scripts/dynalite/with-dynalite.sh).
func onBothBackends(t *testing.T, leg func(t *testing.T, env stackEnv)) {
	t.Run("embedded", func(t *testing.T) { leg(t, newStackEnv(t)) })
	t.Run("dynamodb", func(t *testing.T) {
		endpoint := os.Getenv("DYNAMODB_ENDPOINT")
		if endpoint == "" {
			t.Skip("DYNAMODB_ENDPOINT is not set: the DynamoDB leg runs under scripts/dynalite/with-dynalite.sh (make test-e2e)")
		}
		env := newStackEnv(t)
		env.Dynamo, env.Endpoint, env.TablePrefix = true, endpoint, "e2e-"+testkit.RandomHex(t, 4)+"-"
		leg(t, env)
	})
}

// outage is what a run does to the stack while the publisher goes on.
type outage struct {
	victim    string        // the process killed with SIGKILL, then started again as it was
	down      time.Duration // how long it stays down
	whileDown func(t *testing.T, c *client)
	// mustFail: publishing cannot go on while it is down (some attempt fails).
	mustFail bool
	// mayReconnect: the WebSocket watcher may lose its session or subscription (and then
	// reconnects with since_seq); otherwise its one session must see everything live.
	mayReconnect bool
	// dropWatcher: a second watcher loses its connection right after the kill, so it
	// must reconnect and resume with since_seq across the outage.
	dropWatcher bool
}

// stackProc is one process of the stack as the launcher would run it; metrics is its
// place in the launcher's list (its METRICS_ADDR is the base port plus that).
type stackProc struct {
	bin     string
	args    []string
	stage   int
	metrics int
}

// outageOrder is the start order; the launcher would also run sshkey, which no check here
// needs.
var (
	outageOrder = []string{"nats", "tenant", "agent", "channel", "gateway"}
	outageProcs = map[string]stackProc{
		"nats":    {bin: "launcher", args: []string{"nats"}, stage: 0, metrics: 5},
		"tenant":  {bin: "tenant", stage: 1, metrics: 1},
		"agent":   {bin: "agent", stage: 1, metrics: 2},
		"channel": {bin: "channel", stage: 1, metrics: 4},
		"gateway": {bin: "gateway", stage: 2, metrics: 0},
	}
)

// outageRun starts NATS, the services and the gateway one by one (the launcher stops the
// whole stack when a child dies), publishes one message at a time while a WebSocket
// client watches, kills and restarts o.victim, and checks history, the live feed and
// that nothing else restarted.
func outageRun(t *testing.T, env stackEnv, o outage) {
	env.Secret = testkit.RandomHex(t, 32)
	out := &testkit.SyncBuffer{}
	sup := fleet.New(fleet.NewOutput(out, false, outageOrder...), 15*time.Second)
	t.Cleanup(func() {
		sup.Stop(context.Background())
		if t.Failed() {
			t.Logf("process output:\n%s", testkit.Tail(out.String(), 40000))
		}
	})
	pids := map[string]int{}
	start := func(name string) {
		t.Helper()
		p := outageProcs[name]
		pid, err := sup.Start(fleet.Process{Name: name, Path: filepath.Join(binDir, p.bin), Args: p.args, Stage: p.stage,
			Env: env.environ("METRICS_ADDR=127.0.0.1:"+strconv.Itoa(env.MetricsBase+p.metrics), env.creds(t, name))})
		if err != nil {
			t.Fatal(err)
		}
		pids[name] = pid
	}
	for _, name := range outageOrder {
		start(name)
	}
	c := newClient(env.baseURL())
	waitHealthy(t, c, 60*time.Second, "tenant", "agent", "channel")

	alice := env.token(t, "-sub", "e2e-restart")
	var cr createReply
	c.expect(t, http.StatusCreated, &cr, post, "/api/v1/tenants", bearer(alice),
		jsonBody(map[string]any{"name": "Restart", "admin_email": "restart@example.com"}))
	tenant := cr.TenantID
	// The publisher makes about a thousand calls: no plan limit may get in the way.
	env.setPlan(t, c, tenant, "enterprise")
	awaitRateLimit(t, c, as(alice, tenant), "")
	var ce channelEnvelope
	c.expect(t, http.StatusCreated, &ce, post, "/api/v1/channels", as(alice, tenant, jsonBody(map[string]any{"name": "steady"}))...)
	channel := ce.Channel.ID

	w := watchChannel(t, env.baseURL(), wsAuth{token: alice, tenant: tenant}, channel)
	var dropped *channelWatcher
	if o.dropWatcher {
		dropped = watchChannel(t, env.baseURL(), wsAuth{token: alice, tenant: tenant}, channel)
	}
	p := startPublisher(env.baseURL(), channelPath(channel, "/messages"), as(alice, tenant))
	t.Cleanup(p.halt)
	waitAcks := func(what string, n int) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() (bool, string) {
			acked, broken := p.progress()
			if broken != "" {
				t.Fatalf("%s: the publisher stopped: %s", what, broken)
			}
			return acked >= n, fmt.Sprintf("%d acknowledged", acked)
		})
	}

	waitAcks("publishing before the kill", 50)
	if err := syscall.Kill(pids[o.victim], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-sup.Failed():
		if ex.Name != o.victim {
			t.Fatalf("unexpected exit: %s", ex)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the killed %s was not reported", o.victim)
	}
	killed := time.Now()
	if dropped != nil {
		dropped.drop()
	}
	beforeKill, _ := p.progress()
	if o.whileDown != nil {
		o.whileDown(t, c)
	}
	time.Sleep(time.Until(killed.Add(o.down)))
	failedWhileDown := p.failedAttempts()
	start(o.victim)

	// Recovery without a restart of anything else: /health lists every service again,
	// history is readable and publishing goes on.
	waitHealthy(t, c, 60*time.Second, "tenant", "agent", "channel")
	eventually(t, 60*time.Second, "history readable after the restart", func() (bool, string) {
		r := c.do(t, get, channelPath(channel, "/messages?limit=1"), as(alice, tenant)...)
		return r.Status == http.StatusOK, r.String()
	})
	acked, _ := p.progress()
	waitAcks("publishing after the restart", acked+50)
	p.halt()
	select {
	case ex := <-sup.Failed():
		t.Fatalf("a process that was not killed exited: %s", ex)
	default:
	}
	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("%s (pid %d) is gone: %v", name, pid, err)
		}
	}

	acks, failures, broken := p.result()
	if broken != "" {
		t.Fatalf("the publisher stopped: %s", broken)
	}
	retried, replayed := 0, 0
	for _, a := range acks {
		if a.Attempts > 1 {
			retried++
		}
		if a.replayed {
			replayed++
		}
	}
	t.Logf("%d acknowledged (%d before the kill), %d after a retry (%d with Idempotent-Replayed); failed attempts by status %v",
		len(acks), beforeKill, retried, replayed, failures)
	if o.mustFail && failedWhileDown == 0 {
		t.Fatalf("no publish failed while %s was down: the outage was not exercised", o.victim)
	}

	checkAckedHistory(t, c, channel, acks, as(alice, tenant)...)
	checkWatched(t, w, acks, o.mayReconnect)
	if dropped != nil {
		checkWatched(t, dropped, acks, true)
		if sessions, _ := dropped.history(); sessions < 2 {
			t.Fatalf("the dropped watcher did not reconnect: %s", dropped.describe())
		}
	}
}

// pubAck is one acknowledged message and whether its reply was an idempotent replay.
type pubAck struct {
	testkit.Ack
	replayed bool
}

// plainAcks are the acknowledgements the shared checks take.
func plainAcks(acks []pubAck) []testkit.Ack {
	out := make([]testkit.Ack, len(acks))
	for k, a := range acks {
		out[k] = a.Ack
	}
	return out
}

// retryPublisher publishes {"i": 0}, {"i": 1}, … one at a time, each under its own
// Idempotency-Key, and retries a message on a 5xx or no reply until it is acknowledged,
// like a careful client: a 504 may come for a message that was stored, and the key makes
// the retry return that message instead of storing a second copy. One at a time, so
// acknowledged order is seq order.
type retryPublisher struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu       sync.Mutex
	acks     []pubAck
	failures map[int]int // status of a failed attempt (-1: no HTTP reply) → count
	broken   string      // why publishing stopped early
}

// retryWindow bounds the retries of one message: past messagev1.DedupWindow (2 min) a
// retry could rightly be stored again.
const retryWindow = 90 * time.Second

func startPublisher(base, path string, auth []any) *retryPublisher {
	p := &retryPublisher{stop: make(chan struct{}), failures: map[int]int{}}
	c := newClient(base)
	// Longer than the gateway's own request timeout: its 503/504 is the answer to read.
	c.http.Timeout = 15 * time.Second
	p.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			// Once begun, a message is retried until acknowledged, even after halt: the
			// run ends with no message left in doubt.
			if !p.publishOne(c, path, auth, i) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	return p
}

func (p *retryPublisher) publishOne(c *client, path string, auth []any, i int) bool {
	key := "restart-" + strconv.Itoa(i)
	first := time.Now()
	for attempt := 1; ; attempt++ {
		r, err := c.try(post, path, append(slices.Clone(auth), header("Idempotency-Key", key), jsonBody(fmt.Sprintf(`{"i":%d}`, i)))...)
		p.mu.Lock()
		switch {
		case err == nil && r.Status == http.StatusOK:
			var pub publishedJSON
			if json.Unmarshal(r.Body, &pub) != nil || pub.Seq == 0 {
				p.broken = fmt.Sprintf("message %d: a 200 reply without a seq: %s", i, r)
				p.mu.Unlock()
				return false
			}
			p.acks = append(p.acks, pubAck{Ack: testkit.Ack{I: i, Seq: pub.Seq, Attempts: attempt}, replayed: r.Header.Get("Idempotent-Replayed") == "true"})
			p.mu.Unlock()
			return true
		case err != nil:
			p.failures[-1]++
		case r.Status >= 500:
			p.failures[r.Status]++
		default:
			p.broken = fmt.Sprintf("message %d attempt %d: %s", i, attempt, r)
			p.mu.Unlock()
			return false
		}
		if time.Since(first) > retryWindow {
			p.broken = fmt.Sprintf("message %d was not acknowledged within %s (%d attempts; last: %v %s)", i, retryWindow, attempt, err, r)
			p.mu.Unlock()
			return false
		}
		p.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// halt stops publishing after the message in progress and waits (idempotent).
func (p *retryPublisher) halt() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *retryPublisher) progress() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks), p.broken
}

func (p *retryPublisher) failedAttempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.failures {
		n += v
	}
	return n
}

func (p *retryPublisher) result() ([]pubAck, map[int]int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acks), maps.Clone(p.failures), p.broken
}

// checkAckedHistory requires history to be oldest first and to hold every acknowledged
// message exactly once, at the seq its reply gave, in the order the replies came. Every
// message was retried until acknowledged under one Idempotency-Key, so an attempt stored
// without its ack is that same message: a message in history that no reply named, or a
// message stored twice, is a lost idempotency promise.
func checkAckedHistory(t *testing.T, c *client, channel string, acks []pubAck, opts ...any) {
	t.Helper()
	h := history(t, c, channel, 100, opts...)
	stored := make([]testkit.Stored, len(h))
	for k, m := range h {
		stored[k] = testkit.Stored{Seq: m.Seq, Data: m.Data}
	}
	testkit.CheckAckedHistory(t, stored, plainAcks(acks))
}

// checkWatched requires the watcher to have received exactly the acknowledged messages,
// each once and in seq order, across all its sessions; without mayReconnect, in its first
// session and subscription.
func checkWatched(t *testing.T, w *channelWatcher, acks []pubAck, mayReconnect bool) {
	t.Helper()
	plain := plainAcks(acks)
	eventually(t, 30*time.Second, "the watcher receives every acknowledged message", func() (bool, string) {
		got := w.stored()
		if a, missing := testkit.MissingAck(got, plain); missing {
			return false, fmt.Sprintf("%d received; missing message %d (seq %d); watcher: %s", len(got), a.I, a.Seq, w.describe())
		}
		return true, ""
	})
	w.halt()
	got := w.stored()
	testkit.CheckDelivered(t, "the watcher", got, plain, w.describe)
	t.Logf("watcher: %d messages; %s", len(got), w.describe())
	if !mayReconnect {
		if sessions, events := w.history(); sessions != 1 || len(events) != 0 {
			t.Fatalf("the watcher had to recover (%d sessions): %v", sessions, events)
		}
	}
}

// channelWatcher is a WebSocket client watching one channel the way a real client would:
// when its session ends or the server ends its subscription, it connects (or subscribes)
// again with since_seq of the last message it saw. It keeps every message frame it got,
// across sessions, so a duplicate or a gap shows (nothing is deduplicated here).
type channelWatcher struct {
	base, channel string
	auth          wsAuth
	stop          chan struct{}
	done          chan struct{}
	once          sync.Once

	mu       sync.Mutex
	cur      *wsSession // the session open now, if any
	got      []wsFrame
	subs     int      // subscribe frames sent
	sessions int      // sessions opened
	events   []string // what went wrong on the way, for the log
}

// watchChannel starts the watcher and waits until its first subscription is confirmed:
// every message stored from then on must reach it.
func watchChannel(t *testing.T, base string, a wsAuth, channel string) *channelWatcher {
	t.Helper()
	w := &channelWatcher{base: base, channel: channel, auth: a, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go w.run(ready)
	t.Cleanup(w.halt)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("the watcher did not subscribe: %s", w.describe())
	}
	return w
}

func (w *channelWatcher) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *channelWatcher) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *channelWatcher) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, fmt.Sprintf(format, args...))
}

// stored is every message frame received, across sessions, as the shared checks take it.
func (w *channelWatcher) stored() []testkit.Stored {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]testkit.Stored, len(w.got))
	for k, f := range w.got {
		out[k] = testkit.Stored{Seq: f.Seq, Data: f.Data, Raw: f.String()}
	}
	return out
}

func (w *channelWatcher) history() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sessions, slices.Clone(w.events)
}

func (w *channelWatcher) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d sessions, %d subscribes, events %q", w.sessions, w.subs, w.events)
}

// drop cuts the current session's connection without a close handshake, as a network
// failure would.
func (w *channelWatcher) drop() {
	w.mu.Lock()
	s := w.cur
	w.mu.Unlock()
	if s != nil {
		_ = s.conn.CloseNow()
	}
}

// lastSeq is the highest seq received (0: none).
func (w *channelWatcher) lastSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last uint64
	for _, f := range w.got {
		last = max(last, f.Seq)
	}
	return last
}

// pause waits a little before the next try; false once halted.
func (w *channelWatcher) pause() bool {
	select {
	case <-w.stop:
		return false
	case <-time.After(250 * time.Millisecond):
		return true
	}
}

func (w *channelWatcher) run(ready chan struct{}) {
	defer close(w.done)
	for !w.stopped() {
		s, r, err := tryDialWS(w.base, "watcher", w.auth)
		if err != nil {
			if r != nil {
				w.note("dial refused: %s", r)
			} else {
				w.note("dial: %v", err)
			}
			w.pause()
			continue
		}
		w.mu.Lock()
		w.sessions++
		w.cur = s
		w.mu.Unlock()
		w.watch(s, ready)
		w.mu.Lock()
		w.cur = nil
		w.mu.Unlock()
		s.close()
	}
}

// watch runs one session until it ends or the watcher halts.
func (w *channelWatcher) watch(s *wsSession, ready chan struct{}) {
	pos := 0
	// next returns the frames after pos, waiting for at least one; nil when the session
	// ended or the watcher halted.
	next := func() []wsFrame {
		for {
			if fs := s.since(pos); len(fs) > 0 {
				pos += len(fs)
				return fs
			}
			if done, err := s.closed(); done {
				if fs := s.since(pos); len(fs) > 0 {
					pos += len(fs)
					return fs
				}
				var ce websocket.CloseError
				if errors.As(err, &ce) {
					w.note("session closed by the server: %d %s", ce.Code, ce.Reason)
				} else {
					w.note("session lost: %v", err)
				}
				return nil
			}
			if w.stopped() {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if fs := next(); fs == nil || fs[0].Type != realtimev1.TypeConnected {
		if fs != nil {
			w.note("first frame %s", fs[0])
		}
		return
	}
	pending := "" // the id of the subscribe waiting for its reply
	subscribe := func() bool {
		w.mu.Lock()
		w.subs++
		id := "sub-" + strconv.Itoa(w.subs)
		first := w.subs == 1
		w.mu.Unlock()
		f := realtimev1.Subscribe(id, w.channel)
		if !first {
			// Everything after the first subscribe counts: resume after the last seen.
			f = realtimev1.SubscribeSince(id, w.channel, w.lastSeq())
		}
		b, _ := json.Marshal(f)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
			w.note("send subscribe: %v", err)
			return false
		}
		pending = id
		return true
	}
	if !subscribe() {
		return
	}
	for {
		fs := next()
		if fs == nil {
			return
		}
		for _, f := range fs {
			switch {
			case f.Type == realtimev1.TypeMessage && f.ChannelID == w.channel:
				w.mu.Lock()
				w.got = append(w.got, f)
				w.mu.Unlock()
			case f.Type == realtimev1.TypeSubscribed && pending != "" && f.ID == pending:
				pending = ""
				select {
				case <-ready:
				default:
					close(ready)
				}
			case f.Type == realtimev1.TypeError && pending != "" && f.ID == pending:
				w.note("subscribe refused: %s", f)
				if !w.pause() || !subscribe() {
					return
				}
			case f.Type == realtimev1.TypeUnsubscribed && f.ChannelID == w.channel:
				// The server ended the subscription (replay_failed): subscribe again.
				w.note("subscription ended: %s", f)
				if !w.pause() || !subscribe() {
					return
				}
			case f.Type == realtimev1.TypeError:
				w.note("error frame: %s", f)
			}
		}
	}
}
