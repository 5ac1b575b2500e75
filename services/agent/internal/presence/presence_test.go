package presence_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/eventsv1"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/sshkeyv1"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
	"github.com/artcafe-ai/pubsub/services/agent/internal/events"
	"github.com/artcafe-ai/pubsub/services/agent/internal/presence"
	"github.com/artcafe-ai/pubsub/services/agent/internal/repo"
	"github.com/artcafe-ai/pubsub/services/agent/internal/testtable"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/kit/store/storetest"
)

const (
	tenantA = "6f1c3a52-2d4e-4b8a-9c71-0e5f8d9a1b20"
	tenantB = "0b7c6f2e-4a7d-4d59-9d3e-2f6a1c9e8b01"

	// markerTTL is the test bucket's short marker TTL; expiring sessions get the same
	// short key TTL, the others a long one so they live as long as the test needs them.
	markerTTL = time.Second
	shortTTL  = time.Second
	longTTL   = 10 * time.Minute

	// wait bounds every wait for something that must happen (never a speed claim).
	wait = 60 * time.Second
)

// noKeys is agent.Keys for agents created without a public key.
type noKeys struct{}

func (noKeys) CheckPublicKey(context.Context, string) error { return nil }
func (noKeys) CreateForAgent(context.Context, string, string, string) (*sshkeyv1.Key, error) {
	return nil, nil
}
func (noKeys) DeleteForAgent(context.Context, string) error { return nil }

// noChannels is agent.Channels for agents in no channel.
type noChannels struct{}

func (noChannels) RemoveAgent(context.Context, string) error { return nil }

// counted passes presence writes to the agent service and counts the ones it made.
type counted struct {
	presence.Applier
	wrote atomic.Int64
}

func (c *counted) ApplyPresence(ctx context.Context, tenantID, agentID string, ch agent.PresenceChange) (bool, error) {
	ok, err := c.Applier.ApplyPresence(ctx, tenantID, agentID, ch)
	if ok {
		c.wrote.Add(1)
	}
	return ok, err
}

// replica is one agent-service instance: its own NATS connection, service and watcher,
// on the store every replica shares.
type replica struct {
	t       *testing.T
	nc      *nats.Conn
	svc     *agent.Service
	applier *counted
	watcher *presence.Watcher
	cancel  context.CancelFunc
	done    chan error
}

type fixture struct {
	t        *testing.T
	ns       *server.Server
	table    store.Table
	repo     *repo.Repo
	svc      *agent.Service // for requests (create, set status, summary), on the test's connection
	nc       *nats.Conn     // the test's own: the gateway's side and event subscriptions
	js       jetstream.JetStream
	kv       jetstream.KeyValue // nil until the bucket exists
	replicas []*replica
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	table := storetest.NewTable(t, repo.Table)
	rp := repo.New(table)
	svc := agent.NewService(rp, noKeys{}, noChannels{}, events.NewPublisher(nc, zerolog.Nop()))
	return &fixture{t: t, ns: ns, table: table, repo: rp, svc: svc, nc: nc, js: js}
}

func bucketConfig() jetstream.KeyValueConfig {
	cfg := presencev1.BucketConfig(1)
	cfg.LimitMarkerTTL = markerTTL
	return cfg
}

// createBucket creates the bucket as a gateway does.
func (f *fixture) createBucket() {
	f.t.Helper()
	kv, err := f.js.CreateKeyValue(context.Background(), bucketConfig())
	if err != nil {
		f.t.Fatal(err)
	}
	f.kv = kv
}

// start runs one more replica and waits until its watcher has rebuilt its state.
func (f *fixture) start() *replica {
	f.t.Helper()
	return f.startOn(f.table)
}

// startOn runs a replica on table (the shared one, or a wrapper of it).
func (f *fixture) startOn(table store.Table) *replica {
	f.t.Helper()
	t := f.t
	nc := natsrpctest.Connect(t, f.ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	svc := agent.NewService(repo.New(table), noKeys{}, noChannels{}, events.NewPublisher(nc, zerolog.Nop()))
	r := &replica{t: t, nc: nc, svc: svc, applier: &counted{Applier: svc}, done: make(chan error, 1)}
	r.watcher = presence.New(js, r.applier, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		presence.WithMarkerTTL(markerTTL), presence.WithWorkers(4), presence.WithRetry(10*time.Millisecond, time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.watcher.Run(ctx) }()
	t.Cleanup(r.stop)
	f.replicas = append(f.replicas, r)
	if f.kv == nil { // the watcher creates a missing bucket
		f.eventually("the watcher creates the bucket", func() bool {
			kv, err := f.js.KeyValue(context.Background(), presencev1.Bucket)
			f.kv = kv
			return err == nil
		})
	}
	f.settled()
	return r
}

// stop stops the replica's watcher; it must stop cleanly.
func (r *replica) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("the watcher failed: %v", err)
	}
}

func (f *fixture) running() []*replica {
	var out []*replica
	for _, r := range f.replicas {
		if r.cancel != nil {
			out = append(out, r)
		}
	}
	return out
}

func (f *fixture) eventually(what string, ok func() bool) {
	f.t.Helper()
	for deadline := time.Now().Add(wait); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out: %s", what)
		}
	}
}

// lastRevision is the bucket's newest revision.
func (f *fixture) lastRevision() uint64 {
	f.t.Helper()
	info, err := f.js.Stream(context.Background(), "KV_"+presencev1.Bucket)
	if err != nil {
		f.t.Fatal(err)
	}
	return info.CachedInfo().State.LastSeq
}

// settled waits until every running watcher has handled the bucket up to now and
// written all it derived, and until their events have reached the test's connection.
func (f *fixture) settled() {
	f.t.Helper()
	last := f.lastRevision()
	for _, r := range f.running() {
		f.eventually("watchers settle", func() bool { return r.watcher.Settled(last) })
		// The replica's events reach the server before its flush returns, and this
		// connection before its own flush does.
		if err := r.nc.Flush(); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.nc.Flush(); err != nil {
		f.t.Fatal(err)
	}
}

func owner(tenantID string) agent.Actor {
	return agent.Actor{TenantID: tenantID, Kind: natsrpc.KindUser, ID: "u", Role: natsrpc.RoleOwner, Plan: plans.Enterprise}
}

func (f *fixture) createAgent(tenantID, name string) agent.Agent {
	f.t.Helper()
	a, _, err := f.svc.Create(context.Background(), owner(tenantID), agentv1.CreateBody{Name: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) agent(tenantID, id string) agent.Agent {
	f.t.Helper()
	a, err := f.repo.Get(context.Background(), tenantID, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// waitStatus waits for the agent's status, then for the watchers to settle: the
// change's event is out (replicas publish after their commit, each on its own
// connection, so only settling orders events across replicas).
func (f *fixture) waitStatus(tenantID, id, status string) agent.Agent {
	f.t.Helper()
	var a agent.Agent
	f.eventually("agent "+id+" "+status, func() bool {
		a = f.agent(tenantID, id)
		return a.Status == status
	})
	f.settled()
	return a
}

// wantStatus checks the status once everything in flight has been handled.
func (f *fixture) wantStatus(tenantID, id, status string) {
	f.t.Helper()
	f.settled()
	if a := f.agent(tenantID, id); a.Status != status {
		f.t.Fatalf("agent %s is %s, want %s", id, a.Status, status)
	}
}

// summary reads the counters once the writes in flight (they move the counters after
// the agent item) are done.
func (f *fixture) summary(tenantID string) agentv1.StatusSummary {
	f.t.Helper()
	f.settled()
	sum, err := f.svc.StatusSummary(context.Background(), owner(tenantID))
	if err != nil {
		f.t.Fatal(err)
	}
	return sum
}

func (f *fixture) writes() int64 {
	var n int64
	for _, r := range f.replicas {
		n += r.applier.wrote.Load()
	}
	return n
}

// --- the gateway's side of the bucket ---

func sessionValue(status string) []byte {
	b, _ := json.Marshal(presencev1.Session{Status: status, Gateway: "gw-test", Since: time.Now().UTC()})
	return b
}

// open creates a session key as a gateway does when an agent session opens.
func (f *fixture) open(tenantID, agentID, sessionID string, ttl time.Duration) {
	f.t.Helper()
	if _, err := f.kv.Create(context.Background(), presencev1.Key(tenantID, agentID, sessionID), sessionValue(presencev1.StatusOnline), jetstream.KeyTTL(ttl)); err != nil {
		f.t.Fatal(err)
	}
}

// refresh publishes a session's value again with its TTL (a heartbeat or a refresh).
func (f *fixture) refresh(tenantID, agentID, sessionID, status string, ttl time.Duration) {
	f.t.Helper()
	subject := "$KV." + presencev1.Bucket + "." + presencev1.Key(tenantID, agentID, sessionID)
	if _, err := f.js.Publish(context.Background(), subject, sessionValue(status), jetstream.WithMsgTTL(ttl)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) close(tenantID, agentID, sessionID string) {
	f.t.Helper()
	if err := f.kv.Delete(context.Background(), presencev1.Key(tenantID, agentID, sessionID)); err != nil {
		f.t.Fatal(err)
	}
}

// --- events ---

type eventLog struct {
	ch chan *nats.Msg
}

func (f *fixture) subscribe(subject string) *eventLog {
	f.t.Helper()
	l := &eventLog{ch: make(chan *nats.Msg, 1024)}
	sub, err := f.nc.ChanSubscribe(subject, l.ch)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := f.nc.Flush(); err != nil {
		f.t.Fatal(err)
	}
	return l
}

type event struct {
	subject string
	eventsv1.Event
}

// drain returns the events received so far (call after settled).
func (l *eventLog) drain(t *testing.T) []event {
	t.Helper()
	var out []event
	for {
		select {
		case m := <-l.ch:
			var e event
			if err := json.Unmarshal(m.Data, &e.Event); err != nil {
				t.Fatalf("event %s: %v", m.Data, err)
			}
			e.subject = m.Subject
			out = append(out, e)
		default:
			return out
		}
	}
}

// statuses returns "<agent> <previous>→<status>" of each agents.status event, checking
// the envelope on the way.
func statuses(t *testing.T, evs []event) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		if e.Type != "agents.status" {
			continue
		}
		if e.subject != eventsv1.Subject(e.TenantID, eventsv1.EntityAgents, eventsv1.ActionStatus) || e.Timestamp.IsZero() {
			t.Fatalf("event %+v on %s", e.Event, e.subject)
		}
		var st eventsv1.AgentStatus
		if err := json.Unmarshal(e.Data, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st.AgentID+" "+st.Previous+"→"+st.Status)
	}
	return out
}

// Two replicas watch the bucket. Every presence change is written once and published
// once, the status follows the sessions (open, heartbeats, a second session, closes,
// expiry), and the counters stay right.
func TestTwoReplicas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createBucket()
	f.start()
	f.start()
	events := f.subscribe(eventsv1.TenantWildcard(tenantA))
	a := f.createAgent(tenantA, "a")
	b := f.createAgent(tenantA, "b")

	// Open → online, with last_seen.
	f.open(tenantA, a.ID, "s1", longTTL)
	got := f.waitStatus(tenantA, a.ID, agentv1.StatusOnline)
	if got.LastSeen == nil || got.LastSeen.IsZero() {
		t.Fatal("online without last_seen")
	}
	// A second session and a refresh change nothing; one of two closing leaves it online.
	f.open(tenantA, a.ID, "s2", longTTL)
	f.refresh(tenantA, a.ID, "s2", presencev1.StatusOnline, longTTL)
	f.close(tenantA, a.ID, "s1")
	f.wantStatus(tenantA, a.ID, agentv1.StatusOnline)
	// The last one closing: offline at once.
	f.close(tenantA, a.ID, "s2")
	f.waitStatus(tenantA, a.ID, agentv1.StatusOffline)

	// Heartbeats: busy, idle.
	// (Each step waits for its status: the bucket keeps one entry per key, so a change a
	// watcher has not received before the next one on the same key replaces it is never
	// seen, and the status goes straight to the newer one.)
	f.open(tenantA, a.ID, "s3", longTTL)
	f.waitStatus(tenantA, a.ID, agentv1.StatusOnline)
	f.refresh(tenantA, a.ID, "s3", presencev1.StatusBusy, longTTL)
	f.waitStatus(tenantA, a.ID, agentv1.StatusBusy)
	f.refresh(tenantA, a.ID, "s3", presencev1.StatusIdle, longTTL)
	before := f.waitStatus(tenantA, a.ID, agentv1.StatusIdle)
	// Another agent comes online meanwhile and stays.
	f.open(tenantA, b.ID, "s4", longTTL)
	f.waitStatus(tenantA, b.ID, agentv1.StatusOnline)
	// Silence after a last refresh with the short TTL: the key expires (a purge marker)
	// and the agent goes offline, last seen at that refresh.
	f.refresh(tenantA, a.ID, "s3", presencev1.StatusIdle, shortTTL)
	after := f.waitStatus(tenantA, a.ID, agentv1.StatusOffline)
	if !after.LastSeen.After(*before.LastSeen) && !after.LastSeen.Equal(*before.LastSeen) {
		t.Fatalf("last_seen went back: %v → %v", before.LastSeen, after.LastSeen)
	}
	f.settled()

	want := []string{
		a.ID + " offline→online", a.ID + " online→offline",
		a.ID + " offline→online", a.ID + " online→busy", a.ID + " busy→idle",
		b.ID + " offline→online", a.ID + " idle→offline",
	}
	evs := events.drain(t)
	if got := statuses(t, evs); !slices.Equal(got, want) {
		t.Fatalf("agents.status events\n%v\nwant\n%v", got, want)
	}
	// Written once each: the writes the replicas made, and the agent items' versions
	// (1 at the create, +1 per write).
	if n := f.writes(); n != int64(len(want)) {
		t.Fatalf("%d presence writes for %d changes", n, len(want))
	}
	if va, vb := f.agent(tenantA, a.ID).Version, f.agent(tenantA, b.ID).Version; va != 1+6 || vb != 1+1 {
		t.Fatalf("versions %d and %d", va, vb)
	}
	if f.replicas[0].applier.wrote.Load() == 0 && f.replicas[1].applier.wrote.Load() == 0 {
		t.Fatal("no replica wrote")
	}
	if sum := f.summary(tenantA); sum != (agentv1.StatusSummary{Online: 1, Offline: 1, Total: 2}) {
		t.Fatalf("summary %+v", sum)
	}
	for _, status := range []string{agentv1.StatusOnline, agentv1.StatusOffline, agentv1.StatusBusy, agentv1.StatusIdle} {
		ids, _, err := f.repo.ListIndex(context.Background(), tenantA, agent.Index{Kind: agent.ByStatus, Value: status}, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		var live []string
		for _, id := range ids {
			if f.agent(tenantA, id).Status == status {
				live = append(live, id)
			}
		}
		want := map[string][]string{agentv1.StatusOnline: {b.ID}, agentv1.StatusOffline: {a.ID}}[status]
		if !slices.Equal(live, want) {
			t.Fatalf("status index %s lists %v, want %v", status, live, want)
		}
	}
	// The created events went out too, once each.
	created := 0
	for _, e := range evs {
		if e.Type == "agents.created" {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("%d agents.created events", created)
	}
}

// An operator's status stands while presence does not change (refreshes, a replica
// restarting), and the next presence change wins over it.
func TestOverrideStandsUntilPresenceChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createBucket()
	first := f.start()
	f.start()
	a := f.createAgent(tenantA, "a")
	f.open(tenantA, a.ID, "s1", longTTL)
	f.waitStatus(tenantA, a.ID, agentv1.StatusOnline)

	if _, err := f.svc.SetStatus(context.Background(), owner(tenantA), a.ID, agentv1.StatusError); err != nil {
		t.Fatal(err)
	}
	f.refresh(tenantA, a.ID, "s1", presencev1.StatusOnline, longTTL)
	f.open(tenantA, a.ID, "s2", longTTL) // still online by presence
	f.wantStatus(tenantA, a.ID, agentv1.StatusError)
	first.stop()
	f.start() // rebuilds from the bucket: nothing changed
	f.wantStatus(tenantA, a.ID, agentv1.StatusError)
	if sum := f.summary(tenantA); sum != (agentv1.StatusSummary{Error: 1, Total: 1}) {
		t.Fatalf("summary %+v", sum)
	}

	f.refresh(tenantA, a.ID, "s2", presencev1.StatusBusy, longTTL)
	f.waitStatus(tenantA, a.ID, agentv1.StatusBusy)
	if sum := f.summary(tenantA); sum != (agentv1.StatusSummary{Busy: 1, Total: 1}) {
		t.Fatalf("summary %+v", sum)
	}
}

// A watcher started after changes made while none ran (and one that creates the bucket)
// rebuilds from the bucket's keys and markers and converges.
func TestRestartConverges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.start() // no bucket yet: the watcher creates it
	if st, err := f.kv.Status(context.Background()); err != nil || st.LimitMarkerTTL() != markerTTL {
		t.Fatalf("bucket %+v %v", st, err)
	}
	x := f.createAgent(tenantA, "x")
	y := f.createAgent(tenantA, "y")
	z := f.createAgent(tenantA, "z")
	f.open(tenantA, y.ID, "sy", longTTL)
	f.open(tenantA, z.ID, "sz", longTTL)
	f.waitStatus(tenantA, y.ID, agentv1.StatusOnline)
	f.waitStatus(tenantA, z.ID, agentv1.StatusOnline)
	f.settled() // its events are out before the subscription below
	r.stop()

	events := f.subscribe(eventsv1.TenantWildcard(tenantA))
	f.open(tenantA, x.ID, "sx", longTTL)
	f.refresh(tenantA, x.ID, "sx", presencev1.StatusBusy, longTTL)
	f.close(tenantA, y.ID, "sy")
	f.refresh(tenantA, z.ID, "sz", presencev1.StatusOnline, longTTL) // no change
	f.settled()
	if got := f.agent(tenantA, x.ID).Status; got != agentv1.StatusOffline {
		t.Fatalf("x changed with no watcher running: %s", got)
	}

	f.start()
	f.waitStatus(tenantA, x.ID, agentv1.StatusBusy)
	f.waitStatus(tenantA, y.ID, agentv1.StatusOffline)
	f.wantStatus(tenantA, z.ID, agentv1.StatusOnline)
	want := []string{x.ID + " offline→busy", y.ID + " online→offline"}
	got := statuses(t, events.drain(t))
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if sum := f.summary(tenantA); sum != (agentv1.StatusSummary{Online: 1, Busy: 1, Offline: 1, Total: 3}) {
		t.Fatalf("summary %+v", sum)
	}
}

// Events go to the agent's own tenant only, and a session key naming another tenant's
// agent changes nothing.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createBucket()
	f.start()
	f.start()
	evA := f.subscribe(eventsv1.TenantWildcard(tenantA))
	evB := f.subscribe(eventsv1.TenantWildcard(tenantB))
	a := f.createAgent(tenantA, "a")
	b := f.createAgent(tenantB, "b")

	f.open(tenantB, a.ID, "cross", longTTL) // tenant B's key, tenant A's agent
	f.open(tenantA, "01ARZ3NDEKTSV4RRFFQ69G5FAV", "ghost", longTTL)
	f.open(tenantA, a.ID, "bad.key", longTTL) // not a session key: ignored
	f.open(tenantB, b.ID, "sb", longTTL)
	f.waitStatus(tenantB, b.ID, agentv1.StatusOnline)
	f.wantStatus(tenantA, a.ID, agentv1.StatusOffline)
	f.open(tenantA, a.ID, "sa", longTTL)
	f.waitStatus(tenantA, a.ID, agentv1.StatusOnline)
	f.settled()

	check := func(l *eventLog, tenantID string, want []string) {
		t.Helper()
		evs := l.drain(t)
		for _, e := range evs {
			if e.TenantID != tenantID || e.subject != eventsv1.Subject(tenantID, eventsv1.EntityAgents, e.Type[len("agents."):]) {
				t.Fatalf("tenant %s's subscriber got %+v on %s", tenantID, e.Event, e.subject)
			}
		}
		if got := statuses(t, evs); !slices.Equal(got, want) {
			t.Fatalf("tenant %s: %v, want %v", tenantID, got, want)
		}
	}
	check(evA, tenantA, []string{a.ID + " offline→online"})
	check(evB, tenantB, []string{b.ID + " offline→online"})
	if sum := f.summary(tenantB); sum != (agentv1.StatusSummary{Online: 1, Total: 1}) {
		t.Fatalf("tenant B summary %+v", sum)
	}
}

// A write that fails is retried until it lands; a newer change that comes meanwhile
// replaces the one waiting, so the newest is written (once).
func TestFailedWritesAreRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createBucket()
	failing := testtable.NewCounting(f.table)
	var failed atomic.Int64
	failing.FailWith(func(op string, k store.Key) error {
		if op == "put" && strings.HasPrefix(k.SK, "A#") {
			failed.Add(1)
			return store.ErrUnavailable
		}
		return nil
	})
	r := f.startOn(failing)
	events := f.subscribe(eventsv1.TenantWildcard(tenantA))
	a := f.createAgent(tenantA, "a")

	f.open(tenantA, a.ID, "s1", longTTL)
	f.eventually("a failing write is retried", func() bool { return failed.Load() >= 3 })
	f.refresh(tenantA, a.ID, "s1", presencev1.StatusBusy, longTTL)
	last := f.lastRevision()
	f.eventually("the watcher sees busy", func() bool { return r.watcher.Handled(last) })
	if got := f.agent(tenantA, a.ID).Status; got != agentv1.StatusOffline {
		t.Fatalf("status %s while writes fail", got)
	}
	failing.FailWith(nil)
	f.waitStatus(tenantA, a.ID, agentv1.StatusBusy)
	f.settled()
	if got := statuses(t, events.drain(t)); !slices.Equal(got, []string{a.ID + " offline→busy"}) {
		t.Fatalf("events %v", got)
	}
	if sum := f.summary(tenantA); sum != (agentv1.StatusSummary{Busy: 1, Total: 1}) || r.applier.wrote.Load() != 1 {
		t.Fatalf("summary %+v, %d writes", sum, r.applier.wrote.Load())
	}
}

// A bucket deleted and made again counts its revisions from 1 again: presence still
// works once the service has restarted on it.
func TestBucketMadeAgain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createBucket()
	r := f.start()
	a := f.createAgent(tenantA, "a")
	f.open(tenantA, a.ID, "s1", longTTL)
	for range 5 {
		f.refresh(tenantA, a.ID, "s1", presencev1.StatusOnline, longTTL)
	}
	f.close(tenantA, a.ID, "s1")
	f.waitStatus(tenantA, a.ID, agentv1.StatusOffline)
	r.stop()

	if err := f.js.DeleteKeyValue(context.Background(), presencev1.Bucket); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond) // a creation time of its own, whatever the clock's resolution
	f.createBucket()
	f.start()
	f.open(tenantA, a.ID, "s2", longTTL) // revision 1 of the new bucket
	f.waitStatus(tenantA, a.ID, agentv1.StatusOnline)
}
