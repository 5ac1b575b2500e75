// Package presence is the agent service's presence watcher: it watches the PRESENCE
// bucket (contracts/presencev1), where gateways keep one TTL-refreshed key per live
// agent session, keeps per agent the set of live sessions and the status they report,
// derives each agent's status from them, and writes every change of it to the agent
// (agent.Service.ApplyPresence: conditional, once across replicas, in bucket order).
//
// Every replica runs a watcher. They all see the bucket's changes in the same order and
// derive the same status changes, each tagged with the revision that caused it; the
// write is conditional on the agent's version and on the presence stored with it, so
// each change is written, counted and published once, whichever replica gets there
// first, and a lagging replica never writes an older state over a newer one. Two
// shortcuts keep the store's load bounded by the store rather than by the sessions: the
// bucket keeps one entry per key, so a watcher that lags skips an entry a newer one on
// the same key replaced (it may then write a state between the two that the newer one
// corrects); and when changes of one agent come faster than the store takes them, only
// the newest waiting one is written.
//
// On start the watcher reads the bucket's current keys (live sessions, and the delete
// and expiry markers the bucket still holds) and reconciles every agent they name with
// its stored presence, so a restarted replica converges. The bucket is the only record
// of sessions: an agent whose last session expired while no watcher ran at all, long
// enough for the expiry marker to go too (presencev1.TTL), keeps its stored status until
// its next session. With two replicas that takes both down at once.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
	"github.com/artcafe-ai/pubsub/contracts/presencev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
	"github.com/artcafe-ai/pubsub/services/agent/internal/agent"
)

// Applier writes one presence change to an agent (agent.Service).
type Applier interface {
	ApplyPresence(ctx context.Context, tenantID, agentID string, ch agent.PresenceChange) (bool, error)
}

// Defaults of a Watcher.
const (
	defaultWorkers = 8
	retryMin       = 100 * time.Millisecond
	retryMax       = 30 * time.Second
	// applyTimeout bounds one write; it runs to its end even when the watcher stops, so a
	// stop never cuts a write sequence half-way.
	applyTimeout = 10 * time.Second
)

// Watcher derives agents' status from the presence bucket.
type Watcher struct {
	js      jetstream.JetStream
	apply   Applier
	log     zerolog.Logger
	bucket  jetstream.KeyValueConfig
	workers int
	retry   [2]time.Duration

	mu     sync.Mutex
	agents map[agentRef]*agentState
	queues []*queue
	rev    uint64 // revision of the last entry handled
	epoch  int64  // the bucket's creation time (agent.Presence.Epoch)
	ready  bool   // the bucket's initial keys are handled
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithMarkerTTL sets how long the bucket keeps expiry markers when the watcher creates
// it (default presencev1.TTL). Tests use a short bucket; gateways decide each key's TTL.
func WithMarkerTTL(d time.Duration) Option {
	return func(w *Watcher) { w.bucket.LimitMarkerTTL = d }
}

// WithReplicas sets the bucket's replica count when the watcher creates it
// (NATS_JS_REPLICAS; default 1). An existing bucket is used as it is.
func WithReplicas(n int) Option {
	return func(w *Watcher) { w.bucket.Replicas = max(n, 1) }
}

// WithWorkers sets how many agents are written at a time (default 8).
func WithWorkers(n int) Option {
	return func(w *Watcher) { w.workers = max(n, 1) }
}

// WithRetry sets the first and the longest pause before a failed write is retried.
func WithRetry(first, longest time.Duration) Option {
	return func(w *Watcher) { w.retry = [2]time.Duration{first, max(first, longest)} }
}

// New returns a watcher on js that writes through apply.
func New(js jetstream.JetStream, apply Applier, log zerolog.Logger, opts ...Option) *Watcher {
	w := &Watcher{
		js: js, apply: apply, log: log, bucket: presencev1.BucketConfig(1), workers: defaultWorkers,
		retry: [2]time.Duration{retryMin, retryMax}, agents: map[agentRef]*agentState{},
	}
	for _, o := range opts {
		o(w)
	}
	w.queues = make([]*queue, w.workers)
	for i := range w.queues {
		w.queues[i] = newQueue()
	}
	return w
}

type agentRef struct{ tenantID, agentID string }

// agentState is what the watcher knows of one agent.
type agentState struct {
	sessions map[string]session
	// status is the status the sessions give now.
	status string
	// next is the newest change no write has started on (nil: none). A newer change
	// replaces an older one that waits: when changes come faster than the store takes
	// them, the ones in between are skipped and the newest is always written.
	next *agent.PresenceChange
	// latest is the newest entry of the agent in the bucket's initial keys.
	latest   agent.PresenceChange
	queued   bool // in its worker's queue
	inflight bool // its worker is writing a change
	retrying bool // a failed write waits for its retry
	failures int
}

type session struct {
	status string
	seen   time.Time // when its newest entry (open, heartbeat, refresh) was stored
}

// Run creates the bucket if missing, watches it until ctx ends (nil) or the watch
// fails, and writes the changes it derives.
func (w *Watcher) Run(ctx context.Context) error {
	kv, err := w.ensureBucket(ctx)
	if err != nil {
		return err
	}
	epoch, err := bucketEpoch(ctx, kv)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.epoch = epoch
	w.mu.Unlock()
	kw, err := kv.WatchAll(ctx) // deletes and expiry markers included
	if err != nil {
		return fmt.Errorf("watching presence bucket %s: %w", w.bucket.Bucket, err)
	}
	defer func() { _ = kw.Stop() }()

	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, q := range w.queues {
		wg.Go(func() { w.work(wctx, q) })
	}
	defer func() {
		stopWorkers()
		wg.Wait()
	}()

	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-kw.Updates():
			switch {
			case !ok:
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("the watch of presence bucket %s ended", w.bucket.Bucket)
			case e == nil:
				initial = false
				w.reconcile()
			default:
				w.handle(e, initial)
			}
		}
	}
}

// ensureBucket opens the bucket, creating it when missing. Gateways create it with the
// same definition, so whoever comes first makes it; an existing bucket is used as it
// is.
func (w *Watcher) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := w.js.KeyValue(ctx, w.bucket.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = w.js.CreateKeyValue(ctx, w.bucket)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = w.js.KeyValue(ctx, w.bucket.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("presence bucket %s: %w", w.bucket.Bucket, err)
	}
	return kv, nil
}

// bucketEpoch is the bucket's creation time, which tells its revisions from those of a
// bucket of the same name made before (JetStream keeps it across restarts).
func bucketEpoch(ctx context.Context, kv jetstream.KeyValue) (int64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("presence bucket status: %w", err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil || bs.StreamInfo().Created.IsZero() {
		return 0, fmt.Errorf("presence bucket %s: no creation time in its status", kv.Bucket())
	}
	return bs.StreamInfo().Created.UnixNano(), nil
}

// handle applies one entry of the bucket to the agent it names. During the initial keys
// it only collects; afterwards a change of the derived status is queued for writing.
func (w *Watcher) handle(e jetstream.KeyValueEntry, initial bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rev = e.Revision()
	tenantID, agentID, sessionID, ok := presencev1.ParseKey(e.Key())
	if !ok || !validation.IsUUID(tenantID) || !validation.IsULID(agentID) || sessionID == "" {
		w.log.Warn().Str("key", e.Key()).Msg("ignoring a presence key that names no agent session")
		return
	}
	ref := agentRef{tenantID, agentID}
	st := w.agents[ref]
	if st == nil {
		st = &agentState{sessions: map[string]session{}, status: agentv1.StatusOffline}
		w.agents[ref] = st
	}
	seen := e.Created()
	switch e.Operation() {
	case jetstream.KeyValuePut:
		st.sessions[sessionID] = session{status: sessionStatus(e.Value()), seen: seen}
	case jetstream.KeyValuePurge:
		// Expired (or purged): the agent was last seen when the session last spoke.
		if s, ok := st.sessions[sessionID]; ok {
			seen = s.seen
		}
		delete(st.sessions, sessionID)
	default: // a delete: the session closed now
		delete(st.sessions, sessionID)
	}
	change := agent.PresenceChange{Presence: agent.Presence{Status: derive(st.sessions), Rev: e.Revision(), Epoch: w.epoch}, Seen: seen}
	if initial {
		st.latest = change // entries come in revision order
		return
	}
	if change.Status != st.status {
		st.status = change.Status
		w.push(ref, st, change)
	}
	w.forgetIfDone(ref, st)
}

// reconcile queues, once the initial keys are in, every agent they named, with the
// status its sessions give now: the write compares it with the stored presence, so an
// agent whose presence changed while no watcher ran is written and the others are left
// as they are (an operator's override included).
func (w *Watcher) reconcile() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ref, st := range w.agents {
		st.status = st.latest.Status
		w.push(ref, st, st.latest)
	}
	w.ready = true
	w.log.Info().Int("agents", len(w.agents)).Uint64("revision", w.rev).Msg("presence state rebuilt from the bucket")
}

// sessionStatus is the status a session reports; a value that cannot be read still
// says the session is alive.
func sessionStatus(value []byte) string {
	var s presencev1.Session
	if json.Unmarshal(value, &s) == nil {
		switch s.Status {
		case presencev1.StatusBusy, presencev1.StatusIdle:
			return s.Status
		}
	}
	return presencev1.StatusOnline
}

// derive is the agent's status from its live sessions (presencev1): none → offline;
// busy if any says busy; idle if all say idle; otherwise online.
func derive(sessions map[string]session) string {
	if len(sessions) == 0 {
		return agentv1.StatusOffline
	}
	idle := true
	for _, s := range sessions {
		if s.status == presencev1.StatusBusy {
			return agentv1.StatusBusy
		}
		idle = idle && s.status == presencev1.StatusIdle
	}
	if idle {
		return agentv1.StatusIdle
	}
	return agentv1.StatusOnline
}

// push queues a change of an agent (w.mu held).
func (w *Watcher) push(ref agentRef, st *agentState, ch agent.PresenceChange) {
	st.next = &ch
	w.schedule(ref, st)
}

// schedule puts an agent with a change to write in its worker's queue (w.mu held). One
// worker per agent keeps its changes in order.
func (w *Watcher) schedule(ref agentRef, st *agentState) {
	if st.next == nil || st.queued || st.retrying {
		return
	}
	st.queued = true
	h := fnv.New32a()
	_, _ = h.Write([]byte(ref.agentID))
	w.queues[h.Sum32()%uint32(len(w.queues))].push(ref)
}

// forgetIfDone drops an agent without sessions once nothing is left to write for it
// (w.mu held): its next session starts from offline, which is what it then is.
func (w *Watcher) forgetIfDone(ref agentRef, st *agentState) {
	if len(st.sessions) == 0 && st.next == nil && !st.queued && !st.inflight && !st.retrying {
		delete(w.agents, ref)
	}
}

// work writes the changes of the agents in q until ctx ends; the write in progress
// finishes first.
func (w *Watcher) work(ctx context.Context, q *queue) {
	for {
		ref, ok := q.pop(ctx)
		if !ok {
			return
		}
		w.mu.Lock()
		st := w.agents[ref] // kept while queued
		st.queued = false
		if st.next == nil {
			w.forgetIfDone(ref, st)
			w.mu.Unlock()
			continue
		}
		ch := *st.next
		st.next, st.inflight = nil, true
		w.mu.Unlock()

		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
		_, err := w.apply.ApplyPresence(actx, ref.tenantID, ref.agentID, ch)
		cancel()

		w.mu.Lock()
		st.inflight = false
		if err != nil {
			if st.next == nil {
				st.next = &ch // unless a newer change replaced it meanwhile
			}
			w.retryLater(ref, st, err)
		} else {
			st.failures = 0
			w.schedule(ref, st)
			w.forgetIfDone(ref, st)
		}
		w.mu.Unlock()
	}
}

// retryLater schedules the agent again after a pause that grows with its failures
// (w.mu held). Until then its change waits; a newer one replaces it.
func (w *Watcher) retryLater(ref agentRef, st *agentState, err error) {
	st.failures++
	pause := w.retry[0] << min(st.failures-1, 16)
	if pause > w.retry[1] || pause <= 0 {
		pause = w.retry[1]
	}
	w.log.Warn().Err(err).Str("tenant_id", ref.tenantID).Str("agent_id", ref.agentID).
		Str("status", st.next.Status).Int("failures", st.failures).Dur("retry_in", pause).
		Msg("writing an agent's presence failed")
	st.retrying = true
	time.AfterFunc(pause, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		st.retrying = false
		w.schedule(ref, st)
	})
}

// queue is an unbounded FIFO of agents for one worker: the watch loop never blocks on a
// slow store.
type queue struct {
	mu    sync.Mutex
	items []agentRef
	wake  chan struct{}
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(r agentRef) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *queue) pop(ctx context.Context) (agentRef, bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			r := q.items[0]
			q.items[0] = agentRef{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return r, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return agentRef{}, false
		case <-q.wake:
		}
	}
}
