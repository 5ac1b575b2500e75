package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// reply is one HTTP response, read whole.
type reply struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

func (r reply) String() string {
	b := string(r.Body)
	if len(b) > 500 {
		b = b[:500] + "…"
	}
	return fmt.Sprintf("%s %s → %d %s", r.Method, r.Path, r.Status, b)
}

// client calls one gateway as one principal of one tenant.
type client struct {
	base   string
	http   *http.Client
	token  string
	tenant string
	extra  http.Header
}

func newClient(base, token, tenant string) *client {
	// Longer than the gateway's own request timeout (10 s): its 503/504 is the answer.
	return &client{base: base, token: token, tenant: tenant, http: &http.Client{Timeout: 15 * time.Second}}
}

func (c *client) try(method, path string, body any, hdr ...string) (reply, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return reply{}, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.tenant != "" {
		req.Header.Set("X-Tenant-Id", c.tenant)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return reply{}, err
	}
	return reply{Method: method, Path: path, Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// retryable are the statuses SPEC documents for a dependency that is down or slow: a
// client retries them (a publish under its Idempotency-Key).
func retryable(status int) bool {
	return status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// tally counts requests and their failed attempts, for the report and the checks.
type tally struct {
	mu        sync.Mutex
	requests  int         // logical requests that succeeded
	attempts  int         // HTTP attempts, successful or not
	failed    map[int]int // failed attempts by status (-1: no HTTP reply)
	retried   int         // requests that needed more than one attempt
	conflicts int         // creates that met 409 on a retry (the first attempt had been stored)
	broken    []string    // requests that failed for good or with an undocumented status
	// lastAttempts is the attempts of the last successful request (one caller at a time).
	lastAttempts int
}

func newTally() *tally { return &tally{failed: map[int]int{}} }

func (t *tally) snapshot() (requests, attempts, retried, conflicts int, failed map[int]int, broken []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.requests, t.attempts, t.retried, t.conflicts, clone(t.failed), slices.Clone(t.broken)
}

func clone(m map[int]int) map[int]int {
	out := make(map[int]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// retryWindow bounds the retries of one request: past messagev1.DedupWindow (2 min) a
// publish's retry could rightly be stored again.
const retryWindow = 90 * time.Second

// call sends a request until it gets want, retrying 503/504 and lost replies. A 409 on
// a retried create means the first attempt was stored: ok (conflict true). Any other
// status is recorded as broken (ok false).
func (c *client) call(tl *tally, method, path string, body any, want int, hdr ...string) (r reply, ok bool) {
	first := time.Now()
	for attempt := 1; ; attempt++ {
		r, err := c.try(method, path, body, hdr...)
		tl.mu.Lock()
		tl.attempts++
		switch {
		case err == nil && r.Status == want:
			tl.requests++
			tl.lastAttempts = attempt
			if attempt > 1 {
				tl.retried++
			}
			tl.mu.Unlock()
			return r, true
		case err == nil && attempt > 1 && method == http.MethodPost && r.Status == http.StatusConflict:
			tl.requests++
			tl.retried++
			tl.conflicts++
			tl.mu.Unlock()
			return r, false
		case err != nil:
			tl.failed[-1]++
		case retryable(r.Status):
			tl.failed[r.Status]++
		default:
			tl.failed[r.Status]++
			tl.broken = append(tl.broken, fmt.Sprintf("attempt %d: %s", attempt, r))
			tl.mu.Unlock()
			return r, false
		}
		if time.Since(first) > retryWindow {
			tl.broken = append(tl.broken, fmt.Sprintf("%s %s not answered with %d within %s (%d attempts; last %v %s)",
				method, path, want, retryWindow, attempt, err, r))
			tl.mu.Unlock()
			return r, false
		}
		tl.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// publisher publishes {"i": 0}, {"i": 1}, … to one channel through one gateway, one at a
// time, each under its own Idempotency-Key, retrying a message on 503/504 or no reply
// until it is acknowledged (the pattern of scripts/e2e/channelrestart_test.go). One at a
// time, so acknowledged order is seq order.
type publisher struct {
	c       *client
	channel string
	tl      *tally
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu   sync.Mutex
	acks []testkit.Ack
}

func startPublisher(c *client, channel string) *publisher {
	p := &publisher{c: c, channel: channel, tl: newTally(), stop: make(chan struct{})}
	p.wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			// Once begun, a message is retried until acknowledged, even after halt.
			key := channel + "-" + strconv.Itoa(i)
			r, ok := c.call(p.tl, http.MethodPost, "/api/v1/channels/"+channel+"/messages", []byte(fmt.Sprintf(`{"i":%d}`, i)),
				http.StatusOK, "Idempotency-Key", key)
			if !ok {
				return
			}
			var pub struct {
				Seq uint64 `json:"seq"`
			}
			if json.Unmarshal(r.Body, &pub) != nil || pub.Seq == 0 {
				p.tl.mu.Lock()
				p.tl.broken = append(p.tl.broken, "a 200 reply without a seq: "+r.String())
				p.tl.mu.Unlock()
				return
			}
			p.tl.mu.Lock()
			attempts := p.tl.lastAttempts
			p.tl.mu.Unlock()
			p.mu.Lock()
			p.acks = append(p.acks, testkit.Ack{I: i, Seq: pub.Seq, Attempts: attempts})
			p.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	return p
}

func (p *publisher) halt() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *publisher) acked() []testkit.Ack {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.acks)
}

// frame is one message frame a watcher received.
type frame struct {
	realtimev1.ServerFrame
	raw []byte
}

// watcher is a WebSocket client watching one channel through one gateway the way a real
// client does: when its session or subscription ends it connects (or subscribes) again
// with since_seq of the last message it saw. It keeps every message frame, across
// sessions, so a duplicate or a gap shows.
type watcher struct {
	base, token, tenant, channel string
	stop, done, ready            chan struct{}
	once, readyOnce              sync.Once

	mu       sync.Mutex
	cur      *websocket.Conn // the session open now, if any
	got      []frame
	sessions int
	refused  map[int]int // refused dials by status (-1: no HTTP reply)
	events   []string
}

func startWatcher(base, token, tenant, channel string) *watcher {
	w := &watcher{base: base, token: token, tenant: tenant, channel: channel,
		stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{}), refused: map[int]int{}}
	go w.run()
	return w
}

func (w *watcher) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *watcher) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) < 50 {
		w.events = append(w.events, fmt.Sprintf(format, args...))
	}
}

// drop cuts the current session's connection without a close handshake, as a network
// failure would: the watcher must connect again and resume with since_seq. It reports
// whether there was a session to cut.
func (w *watcher) drop() bool {
	w.mu.Lock()
	conn := w.cur
	w.mu.Unlock()
	if conn == nil {
		return false
	}
	_ = conn.CloseNow()
	return true
}

func (w *watcher) sessionCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sessions
}

// stored is every message frame received, across sessions, as the shared checks take it.
func (w *watcher) stored() []testkit.Stored {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]testkit.Stored, len(w.got))
	for k, f := range w.got {
		out[k] = testkit.Stored{Seq: f.Seq, Data: f.Data, Raw: string(f.raw)}
	}
	return out
}

func (w *watcher) lastSeq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last uint64
	for _, f := range w.got {
		last = max(last, f.Seq)
	}
	return last
}

func (w *watcher) describe() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d messages, %d sessions, refused dials %v, events %q", len(w.got), w.sessions, w.refused, w.events)
}

func (w *watcher) pause() bool {
	select {
	case <-w.stop:
		return false
	case <-time.After(250 * time.Millisecond):
		return true
	}
}

func (w *watcher) run() {
	defer close(w.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-w.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		u, _ := url.Parse(w.base)
		u.Scheme, u.Path = "ws", realtimev1.Path
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		conn, resp, err := websocket.Dial(dctx, u.String(), &websocket.DialOptions{HTTPHeader: http.Header{
			"Authorization": {"Bearer " + w.token}, "X-Tenant-Id": {w.tenant}}})
		dcancel()
		if err != nil {
			status := -1
			if resp != nil {
				status = resp.StatusCode
			}
			w.mu.Lock()
			w.refused[status]++
			w.mu.Unlock()
			w.note("dial: %d %v", status, err)
			w.pause()
			continue
		}
		conn.SetReadLimit(4 << 20)
		w.mu.Lock()
		w.sessions++
		w.cur = conn
		w.mu.Unlock()
		w.session(ctx, conn)
		w.mu.Lock()
		w.cur = nil
		w.mu.Unlock()
		_ = conn.CloseNow()
		w.pause()
	}
}

// session subscribes (with since_seq after the first session) and reads until the
// session ends; a subscription the server ends or refuses is made again.
func (w *watcher) session(ctx context.Context, conn *websocket.Conn) {
	subs := 0
	subscribe := func() error {
		subs++
		id := "sub-" + strconv.Itoa(subs)
		// Always since the last message seen (0: the channel's whole history, which holds
		// only this run's messages), so the first subscribe races nothing either.
		since := w.lastSeq()
		if since > 0 { // a resume: the log shows where from
			w.note("%s since_seq %d", id, since)
		}
		f := realtimev1.SubscribeSince(id, w.channel, since)
		b, _ := json.Marshal(f)
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				w.note("closed by the server: %d %s", ce.Code, ce.Reason)
			} else if ctx.Err() == nil {
				w.note("session lost: %v", err)
			}
			return
		}
		var f frame
		f.raw = b
		if err := json.Unmarshal(b, &f.ServerFrame); err != nil {
			w.note("undecodable frame %s", b)
			continue
		}
		switch {
		case f.Type == realtimev1.TypeConnected:
			if err := subscribe(); err != nil {
				w.note("subscribe: %v", err)
				return
			}
		case f.Type == realtimev1.TypeSubscribed:
			w.readyOnce.Do(func() { close(w.ready) })
		case f.Type == realtimev1.TypeMessage && f.ChannelID == w.channel:
			w.mu.Lock()
			w.got = append(w.got, f)
			w.mu.Unlock()
		case f.Type == realtimev1.TypeUnsubscribed && f.ChannelID == w.channel,
			f.Type == realtimev1.TypeError && f.ID != "" && f.ID == "sub-"+strconv.Itoa(subs):
			w.note("subscription ended or refused: %s", b)
			if !w.pause() {
				return
			}
			if err := subscribe(); err != nil {
				w.note("subscribe again: %v", err)
				return
			}
		case f.Type == realtimev1.TypeError:
			w.note("error frame: %s", b)
		}
	}
}
