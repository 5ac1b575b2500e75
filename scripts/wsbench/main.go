// Command wsbench measures WebSocket fan-out through the gateway (PERFORMANCE.md): one
// publisher sends messages over REST (POST /api/v1/channels/{id}/messages) at a fixed
// rate or as fast as it can, N WebSocket sessions subscribed to the channel receive them,
// and it prints publish→receive latency percentiles, throughput and losses.
//
// The publisher is REST, not a WebSocket session: a session may send at most 100
// frames/s (SPEC §13), far below the rates measured here. Each message body carries its
// index and send time (`{"wsb_i":N,"wsb_t":unix-nanos,"pad":"…"}`, -size bytes), so a
// receiver on the same machine computes the latency from its own clock.
//
// Usage (against `make run`; the tenant should be on a plan whose limits allow the load,
// e.g. enterprise, which `make bench` creates):
//
//	wsbench -url http://127.0.0.1:8000 -token $TOKEN -tenant $TENANT -subs 10 -rate 1000 -d 10s
//
// Without -channel it creates a channel of its own. It exits 1 when a message is lost,
// duplicated or delivered out of order, or when no message was acknowledged.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

type config struct {
	base     string
	token    string
	tenant   string
	channel  string
	subs     int
	rate     int
	duration time.Duration
	size     int
	workers  int
	drain    time.Duration
	warmup   time.Duration
	label    string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.base, "url", envOr("WSBENCH_URL", "http://127.0.0.1:8000"), "gateway base URL")
	flag.StringVar(&cfg.token, "token", os.Getenv("TOKEN"), "bearer token: a user token of a member or higher in the tenant (default $TOKEN)")
	flag.StringVar(&cfg.tenant, "tenant", os.Getenv("TENANT"), "tenant id (x-tenant-id / tenant_id); default $TENANT")
	flag.StringVar(&cfg.channel, "channel", "", "channel id (default: create one)")
	flag.IntVar(&cfg.subs, "subs", 10, "WebSocket subscribers")
	flag.IntVar(&cfg.rate, "rate", 1000, "messages per second; 0 = as fast as the publisher can")
	flag.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to publish")
	flag.IntVar(&cfg.size, "size", 200, "message body size in bytes")
	flag.IntVar(&cfg.workers, "workers", 0, "concurrent HTTP publishers (default 8 at a fixed rate, 32 at maximum rate)")
	flag.DurationVar(&cfg.drain, "drain", 5*time.Second, "how long to wait for the last deliveries")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "messages sent in this first period count for losses but not for latency")
	flag.StringVar(&cfg.label, "label", "", "label printed at the start of the result line")
	flag.Parse()
	if cfg.token == "" || cfg.subs < 1 || cfg.rate < 0 || cfg.size < 64 || cfg.duration <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if cfg.workers <= 0 {
		cfg.workers = 8
		if cfg.rate == 0 {
			cfg.workers = 32
		}
	}
	res, err := run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsbench:", err)
		os.Exit(1)
	}
	fmt.Println(res.line(cfg))
	if res.lost > 0 || res.dup > 0 || res.reordered > 0 || res.acked == 0 {
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// result is what one run measured.
type result struct {
	sent, acked       int
	pubErrors         map[string]int // status or error class → count
	delivered         int
	lost, dup         int
	reordered         int
	latency           []time.Duration // publish→receive, every subscriber, after warm-up
	ack               []time.Duration // REST publish round trip
	publishWindow     time.Duration
	deliveryWindow    time.Duration // first to last delivery
	maxBehindSchedule time.Duration // fixed rate: how late the publisher ran at worst
}

func (r result) line(cfg config) string {
	rate := "max"
	if cfg.rate > 0 {
		rate = strconv.Itoa(cfg.rate) + "/s"
	}
	var b strings.Builder
	if cfg.label != "" {
		b.WriteString(cfg.label + ": ")
	}
	fmt.Fprintf(&b, "subs=%d rate=%s size=%dB d=%s sent=%d acked=%d", cfg.subs, rate, cfg.size, cfg.duration, r.sent, r.acked)
	fmt.Fprintf(&b, " publish=%.0f/s delivered=%d (%.0f/s) lost=%d dup=%d reordered=%d",
		perSecond(r.acked, r.publishWindow), r.delivered, perSecond(r.delivered, r.deliveryWindow), r.lost, r.dup, r.reordered)
	fmt.Fprintf(&b, " latency p50=%s p99=%s max=%s ack p50=%s p99=%s",
		ms(percentile(r.latency, 50)), ms(percentile(r.latency, 99)), ms(percentile(r.latency, 100)),
		ms(percentile(r.ack, 50)), ms(percentile(r.ack, 99)))
	if cfg.rate > 0 {
		fmt.Fprintf(&b, " behind=%s", ms(r.maxBehindSchedule))
	}
	if len(r.pubErrors) > 0 {
		keys := make([]string, 0, len(r.pubErrors))
		for k := range r.pubErrors {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(" errors=")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%d", k, r.pubErrors[k])
		}
	}
	return b.String()
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// percentile of the samples (nearest rank; p=100 is the maximum); sorts in place.
func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	if !slices.IsSorted(s) {
		slices.Sort(s)
	}
	rank := int(p/100*float64(len(s)) + 0.999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// api is the REST side: auth headers and the base URL.
type api struct {
	base, token, tenant string
	http                *http.Client
}

func (a *api) request(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if a.tenant != "" {
		req.Header.Set("X-Tenant-Id", a.tenant)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

func (a *api) createChannel(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]any{"name": "wsbench " + time.Now().UTC().Format(time.RFC3339)})
	req, err := a.request(ctx, http.MethodPost, "/api/v1/channels", body)
	if err != nil {
		return "", err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create channel: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Channel.ID == "" {
		return "", fmt.Errorf("create channel: unexpected reply %s", b)
	}
	return out.Channel.ID, nil
}

// body is one message: index, send time, padding to size bytes.
func body(i int, sent time.Time, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"wsb_i":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `,"wsb_t":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `,"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// subscriber is one WebSocket session and what it received.
type subscriber struct {
	conn *websocket.Conn

	mu        sync.Mutex
	seen      []uint8 // per message index: times received
	lastSeq   uint64
	reordered int
	latency   []time.Duration
	first     time.Time
	last      time.Time
	count     int
	err       error
	// cutoff: messages sent before it (unix nanos, the warm-up) are not in latency.
	cutoff int64
}

func dialSubscriber(ctx context.Context, cfg config, channel string) (*subscriber, error) {
	u, err := url.Parse(cfg.base)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = "/api/v1/ws"
	h := http.Header{"Authorization": {"Bearer " + cfg.token}}
	if cfg.tenant != "" {
		h.Set("X-Tenant-Id", cfg.tenant)
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return nil, fmt.Errorf("dial: %w: %d %s", err, resp.StatusCode, b)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	s := &subscriber{conn: conn}
	if err := s.handshake(ctx, channel); err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	return s, nil
}

// handshake waits for `connected`, subscribes and waits for `subscribed`.
func (s *subscriber) handshake(ctx context.Context, channel string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want := "connected"
	for {
		_, b, err := s.conn.Read(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", want, err)
		}
		var f struct {
			Type   string `json:"type"`
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("frame %q: %w", b, err)
		}
		switch {
		case f.Type == "error":
			return fmt.Errorf("error frame while waiting for %s: %s: %s", want, f.Code, f.Detail)
		case f.Type == want && want == "connected":
			sub, _ := json.Marshal(map[string]any{"type": "subscribe", "channel_id": channel, "id": "wsbench"})
			if err := s.conn.Write(ctx, websocket.MessageText, sub); err != nil {
				return err
			}
			want = "subscribed"
		case f.Type == want:
			return nil
		}
	}
}

// read receives until ctx ends or the connection fails.
func (s *subscriber) read(ctx context.Context) {
	for {
		_, b, err := s.conn.Read(ctx)
		now := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		m, ok := parseMessage(b)
		if !ok {
			if bytes.Contains(b, []byte(`"type":"error"`)) {
				s.mu.Lock()
				s.err = fmt.Errorf("error frame: %s", b)
				s.mu.Unlock()
			}
			continue
		}
		s.mu.Lock()
		if m.seq <= s.lastSeq {
			s.reordered++
		}
		s.lastSeq = m.seq
		for len(s.seen) <= m.index {
			s.seen = append(s.seen, make([]uint8, max(1024, len(s.seen)))...)
		}
		if s.seen[m.index] < 255 {
			s.seen[m.index]++
		}
		if s.count == 0 {
			s.first = now
		}
		s.last = now
		s.count++
		if m.sentNanos >= s.cutoff {
			s.latency = append(s.latency, now.Sub(time.Unix(0, m.sentNanos)))
		}
		s.mu.Unlock()
	}
}

// frameMessage is what wsbench needs from a message frame.
type frameMessage struct {
	seq       uint64
	index     int
	sentNanos int64
}

// parseMessage reads seq and the bench fields of a `message` frame with a byte scan: at
// tens of thousands of frames a second a full JSON decode would compete with the
// gateway for the same cores. Other frames report false.
func parseMessage(b []byte) (frameMessage, bool) {
	if !bytes.Contains(b, []byte(`"type":"message"`)) {
		return frameMessage{}, false
	}
	seq, ok1 := intAfter(b, `"seq":`)
	idx, ok2 := intAfter(b, `"wsb_i":`)
	sent, ok3 := intAfter(b, `"wsb_t":`)
	if !ok1 || !ok2 || !ok3 || seq <= 0 || idx < 0 {
		return frameMessage{}, false
	}
	return frameMessage{seq: uint64(seq), index: int(idx), sentNanos: sent}, true
}

func intAfter(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	j := i + len(key)
	for j < len(b) && b[j] == ' ' {
		j++
	}
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	n, err := strconv.ParseInt(string(b[j:k]), 10, 64)
	return n, err == nil
}

func run(ctx context.Context, cfg config) (result, error) {
	var res result
	a := &api{base: strings.TrimRight(cfg.base, "/"), token: cfg.token, tenant: cfg.tenant, http: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.workers, MaxConnsPerHost: cfg.workers, IdleConnTimeout: time.Minute},
	}}
	cfg.base = a.base
	channel := cfg.channel
	if channel == "" {
		var err error
		if channel, err = a.createChannel(ctx); err != nil {
			return res, err
		}
	}

	// Subscribers, dialled a few at a time.
	subs := make([]*subscriber, cfg.subs)
	var dialErr error
	var dialMu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := dialSubscriber(ctx, cfg, channel)
			dialMu.Lock()
			defer dialMu.Unlock()
			if err != nil && dialErr == nil {
				dialErr = fmt.Errorf("subscriber %d: %w", i, err)
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range subs {
			if s != nil {
				_ = s.conn.Close(websocket.StatusNormalClosure, "done")
			}
		}
	}()
	if dialErr != nil {
		return res, dialErr
	}
	start := time.Now()
	end := start.Add(cfg.duration)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var readers sync.WaitGroup
	for _, s := range subs {
		s.cutoff = start.Add(cfg.warmup).UnixNano()
		readers.Go(func() { s.read(readCtx) })
	}

	// Publisher.
	type outcome struct {
		ok  bool
		err string
		ack time.Duration
	}
	var (
		mu       sync.Mutex
		acked    []bool
		outcomes = map[string]int{}
		acks     []time.Duration
		next     atomic.Int64
	)
	publish := func(i int) {
		sent := time.Now()
		req, err := a.request(ctx, http.MethodPost, "/api/v1/channels/"+channel+"/messages", body(i, sent, cfg.size))
		var o outcome
		if err == nil {
			var resp *http.Response
			resp, err = a.http.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				o.ok = resp.StatusCode == http.StatusOK
				if !o.ok {
					o.err = strconv.Itoa(resp.StatusCode)
				}
			}
		}
		if err != nil {
			o.err = "transport"
			if errors.Is(err, context.DeadlineExceeded) {
				o.err = "timeout"
			}
		}
		o.ack = time.Since(sent)
		mu.Lock()
		defer mu.Unlock()
		for len(acked) <= i {
			acked = append(acked, make([]bool, max(1024, len(acked)))...)
		}
		acked[i] = o.ok
		if o.ok {
			acks = append(acks, o.ack)
		} else {
			outcomes[o.err]++
		}
	}

	var behind time.Duration
	var pubs sync.WaitGroup
	if cfg.rate > 0 {
		// The schedule starts now: the warm-up cutoff was taken a moment ago.
		start = time.Now()
		end = start.Add(cfg.duration)
		jobs := make(chan int, cfg.workers*4)
		for range cfg.workers {
			pubs.Go(func() {
				for i := range jobs {
					publish(i)
				}
			})
		}
		interval := time.Second / time.Duration(cfg.rate)
		for i := 0; ; i++ {
			due := start.Add(time.Duration(i) * interval)
			if !due.Before(end) {
				break
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			} else if -d > behind {
				behind = -d
			}
			jobs <- i
			next.Store(int64(i + 1))
		}
		close(jobs)
	} else {
		for range cfg.workers {
			pubs.Go(func() {
				for time.Now().Before(end) {
					publish(int(next.Add(1) - 1))
				}
			})
		}
	}
	pubs.Wait()
	publishWindow := time.Since(start)
	sent := int(next.Load())

	// Drain: wait until every subscriber has every acknowledged message, or -drain.
	mu.Lock()
	ackedSnap := slices.Clone(acked[:min(sent, len(acked))])
	mu.Unlock()
	nAcked := 0
	for _, ok := range ackedSnap {
		if ok {
			nAcked++
		}
	}
	deadline := time.Now().Add(cfg.drain)
	for time.Now().Before(deadline) {
		done := true
		for _, s := range subs {
			s.mu.Lock()
			err := s.err
			complete := s.count >= nAcked && s.missing(ackedSnap) == 0
			s.mu.Unlock()
			if err != nil {
				return res, fmt.Errorf("a subscriber failed: %w", err)
			}
			done = done && complete
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopReading()
	readers.Wait()

	res.sent, res.acked, res.pubErrors = sent, nAcked, outcomes
	res.ack = acks
	res.publishWindow = publishWindow
	res.maxBehindSchedule = behind
	var first, last time.Time
	for _, s := range subs {
		if s.err != nil {
			return res, fmt.Errorf("a subscriber failed: %w", s.err)
		}
		res.reordered += s.reordered
		res.latency = append(res.latency, s.latency...)
		res.delivered += s.count
		if s.count > 0 {
			if first.IsZero() || s.first.Before(first) {
				first = s.first
			}
			if s.last.After(last) {
				last = s.last
			}
		}
		res.lost += s.missing(ackedSnap)
		for _, n := range s.seen {
			if n > 1 {
				res.dup += int(n) - 1
			}
		}
	}
	res.deliveryWindow = last.Sub(first)
	return res, nil
}

// missing counts the acknowledged messages s has not received; s.mu is held.
func (s *subscriber) missing(acked []bool) int {
	n := 0
	for i, ok := range acked {
		if ok && (i >= len(s.seen) || s.seen[i] == 0) {
			n++
		}
	}
	return n
}
