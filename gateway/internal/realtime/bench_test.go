package realtime_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/channelv1"
	"github.com/artcafe-ai/pubsub/contracts/plans"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
)

// BenchmarkIdleSessionMemory measures what an idle WebSocket session costs the gateway
// (PERFORMANCE.md: ≤ 30 KB per idle connection). Each iteration opens one more session
// over a raw TCP socket (a hand-written upgrade: no client goroutine, no client
// buffers), reads its connected frame, and leaves it idle; the Go heap and goroutine
// stacks in use are compared before and after, after a GC. The client sockets' own
// objects (a few hundred bytes each) are counted too, so the figure is an upper bound.
//
//	go test -run '^$' -bench IdleSessionMemory -benchtime 2000x ./internal/realtime/
//
// Reports B/session (heap + stacks), stack-B/session and goroutines/session, for user
// sessions, agent sessions (their presence key; the in-process NATS server's share of it
// is counted too) and sessions subscribed to a channel. HEAPPROF=<file> also writes a
// heap profile (<file>.<kind>) while the sessions are open.
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, kind := range []string{"user", "agent", "subscribed"} {
		b.Run(kind, func(b *testing.B) {
			e := newEnv(b, realtime.Config{})
			tenant, _ := e.tenant("alice", plans.Enterprise) // no connection cap
			ch := e.channel(tenant, channelv1.TypePublic)
			addr := strings.TrimPrefix(e.base, "ws://")
			var first []byte // "subscribed": a dashboard watching a channel
			if kind == "subscribed" {
				first = wsClientFrame(`{"type":"subscribe","channel_id":"` + ch + `"}`)
			}
			header := func() string {
				if kind == "agent" {
					return "Authorization: Bearer " + e.agentToken(tenant, newID(), newID(), time.Hour) + "\r\n"
				}
				return "Authorization: Bearer " + e.userToken("alice", time.Hour) + "\r\nX-Tenant-Id: " + tenant + "\r\n"
			}
			// Warm up the caches, pools and the runtime so the first session's one-off
			// costs are not counted.
			for range 20 {
				c := rawSession(b, addr, header(), first)
				defer c.Close()
			}
			headers := make([]string, b.N)
			for i := range headers {
				headers[i] = header()
			}
			conns := make([]net.Conn, 0, b.N)
			h0, s0 := memParts()
			g0 := runtime.NumGoroutine()
			b.ResetTimer()
			for i := range b.N {
				conns = append(conns, rawSession(b, addr, headers[i], first))
			}
			b.StopTimer()
			eventually(b, "sessions idle", func() bool { return e.hub.Sessions() >= b.N+20 })
			time.Sleep(200 * time.Millisecond) // writers exit after the connected frame
			h1, s1 := memParts()
			g1 := runtime.NumGoroutine()
			if f := os.Getenv("HEAPPROF"); f != "" {
				fh, _ := os.Create(f + "." + kind)
				_ = pprof.WriteHeapProfile(fh)
				fh.Close()
			}
			b.ReportMetric(float64(h1+s1-h0-s0)/float64(b.N), "B/session")
			b.ReportMetric(float64(s1-s0)/float64(b.N), "stack-B/session")
			b.ReportMetric(float64(g1-g0)/float64(b.N), "goroutines/session")
			runtime.KeepAlive(headers)
			for _, c := range conns {
				_ = c.Close()
			}
		})
	}
}

func memInUse() int64 {
	h, s := memParts()
	return h + s
}

// memParts is the heap and the goroutine stacks in use, after a GC.
func memParts() (heap, stacks int64) {
	var m runtime.MemStats
	for range 5 { // stacks shrink by half per GC at most
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse), int64(m.StackInuse)
}

// rawSession opens a session with a hand-written upgrade, reads up to its connected
// frame and, when first is a frame, sends it and reads the reply.
func rawSession(b testing.TB, addr, header string, first []byte) net.Conn {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	req := "GET " + realtimev1.Path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + header + "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	var got []byte
	for !bytes.Contains(got, []byte(`"connected"`)) {
		buf := make([]byte, 512)
		n, err := br.Read(buf)
		if err != nil {
			b.Fatalf("upgrade: %v (%q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		b.Fatalf("upgrade refused: %q", got)
	}
	if first != nil {
		if _, err := c.Write(first); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 512)
		if n, err := br.Read(buf); err != nil || !bytes.Contains(buf[:n], []byte(`"subscribed"`)) {
			b.Fatalf("reply: %q %v", buf[:n], err)
		}
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// BenchmarkFanout measures publish→receive latency with one publisher session sending
// publish frames at 1,000 msg/s to a channel that 10 sessions subscribe to (the
// PERFORMANCE.md row: p99 ≤ 5 ms): the whole path, WebSocket frame → JetStream publish
// and ack → republish → the tenant's NATS subscription → 10 queues → 10 sockets. One
// iteration is one message; run it with a fixed count:
//
//	go test -run '^$' -bench Fanout -benchtime 3000x ./internal/realtime/
//
// Reports p50-ms, p99-ms and max-ms over every (message, subscriber) pair, and lost.
// The publisher's frame rate limit is raised for the run (one session publishing at
// 1,000/s is over the default 100 frames/s).
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { benchFanout(b, n, time.Millisecond) })
	}
}

func benchFanout(b *testing.B, subscribers int, every time.Duration) {
	e := newEnv(b, realtime.Config{FramesPerSecond: 1 << 20})
	tenant, _ := e.tenant("alice", plans.Enterprise)
	ch := e.channel(tenant, channelv1.TypePublic)
	tok := e.userToken("alice", time.Hour)

	sent := make([]time.Time, b.N)
	recv := make([][]time.Time, subscribers)
	var wg sync.WaitGroup
	ctx := context.Background()
	for k := range subscribers {
		// A lean reader (no generic frame decoding): the clients share the machine's
		// cores with the gateway, so they must cost as little as possible.
		c, _, err := e.dial(bearer(tok), withHeader("X-Tenant-Id", tenant))
		if err != nil {
			b.Fatal(err)
		}
		if _, m, err := c.c.Read(ctx); err != nil || !bytes.Contains(m, []byte(`"connected"`)) {
			b.Fatalf("connected: %s %v", m, err)
		}
		if err := c.c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","channel_id":"`+ch+`"}`)); err != nil {
			b.Fatal(err)
		}
		if _, m, err := c.c.Read(ctx); err != nil || !bytes.Contains(m, []byte(`"subscribed"`)) {
			b.Fatalf("subscribed: %s %v", m, err)
		}
		recv[k] = make([]time.Time, b.N)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N {
				_, m, err := c.c.Read(ctx)
				if err != nil {
					b.Errorf("subscriber %d: %v", k, err)
					return
				}
				at := time.Now()
				i, ok := dataIndex(m)
				if !ok || i >= b.N {
					b.Errorf("frame %s", m)
					return
				}
				recv[k][i] = at
			}
		}()
	}
	pub, _ := e.connect(bearer(tok), withHeader("X-Tenant-Id", tenant))
	acks := make(chan struct{})
	go func() { // drain acks
		defer close(acks)
		for range b.N {
			if r := pub.next(); r.f.Type != realtimev1.TypeAck {
				b.Errorf("publisher got %s", r.raw)
				return
			}
		}
	}()
	tick := time.NewTicker(every)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		frame := fmt.Appendf(nil, `{"type":"publish","channel_id":"%s","data":{"i":%d,"pad":"%s"}}`, ch, i, strings.Repeat("x", 150))
		sent[i] = time.Now()
		if err := pub.c.Write(ctx, websocket.MessageText, frame); err != nil {
			b.Fatal(err)
		}
	}
	<-acks
	wg.Wait()
	b.StopTimer()
	var lat []time.Duration
	lost := 0
	for k := range recv {
		for i, at := range recv[k] {
			if at.IsZero() {
				lost++
				continue
			}
			lat = append(lat, at.Sub(sent[i]))
		}
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("nothing received")
	}
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
	b.ReportMetric(float64(lost), "lost")
}

// dataIndex finds the benchmark's message index in a message frame ("data":{"i":N,...).
func dataIndex(m []byte) (int, bool) {
	_, rest, ok := bytes.Cut(m, []byte(`"data":{"i":`))
	if !ok {
		return 0, false
	}
	n := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			return n, true
		}
		n = n*10 + int(c-'0')
	}
	return 0, false
}

// wsClientFrame frames a text message as a client must (masked, here with a zero key).
func wsClientFrame(text string) []byte {
	f := []byte{0x81}
	if n := len(text); n < 126 {
		f = append(f, 0x80|byte(n))
	} else {
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	}
	f = append(f, 0, 0, 0, 0) // masking key: XOR with zeros leaves the payload as is
	return append(f, text...)
}
