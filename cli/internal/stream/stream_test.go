package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// lockedBuffer is the subscription's stdout.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// A server that speaks the realtimev1 frames and drops the first connection after two
// messages: the client resumes with since_seq of the last message printed, prints a
// replayed duplicate once, and ends with a normal close when cancelled.
func TestReconnectResumesWithSinceSeq(t *testing.T) {
	var mu sync.Mutex
	var sinces []uint64
	lastClose := make(chan websocket.StatusCode, 1) // how the second connection ended, seen by the server
	conns := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := r.Context()
		send := func(v any) { b, _ := json.Marshal(v); _ = c.Write(ctx, websocket.MessageText, b) }
		msg := func(seq uint64) map[string]any {
			return map[string]any{"type": "message", "message_id": fmt.Sprintf("M%d", seq), "seq": seq, "channel_id": "CH",
				"data": json.RawMessage(fmt.Sprintf(`{"n": %d}`, seq))}
		}
		send(map[string]any{"type": "connected", "session_id": "s", "tenant_id": "t"})
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		var f realtimev1.ClientFrame
		_ = json.Unmarshal(b, &f)
		mu.Lock()
		conns++
		n := conns
		if f.SinceSeq != nil {
			sinces = append(sinces, *f.SinceSeq)
		}
		mu.Unlock()
		send(map[string]any{"type": "subscribed", "id": f.ID, "channel_id": f.ChannelID})
		if n == 1 {
			send(msg(1))
			send(msg(2))
			time.Sleep(100 * time.Millisecond)
			_ = c.Close(websocket.StatusGoingAway, "restart")
			return
		}
		send(msg(2)) // a duplicate the client must not print twice
		send(msg(3))
		_, _, err = c.Read(ctx) // until the client closes
		lastClose <- websocket.CloseStatus(err)
	}))
	defer srv.Close()

	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Header: http.Header{"Authorization": {"Bearer tok"}},
			Channels: []string{"CH"}, Since: map[string]uint64{"CH": 0}, Out: out, MaxBackoff: 100 * time.Millisecond})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(out.lines()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("printed %q", out.lines())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	lines := out.lines()
	if len(lines) != 3 {
		t.Fatalf("printed %d lines: %q", len(lines), lines)
	}
	for i, l := range lines {
		var m struct {
			Seq  uint64          `json:"seq"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.Seq != uint64(i+1) || string(m.Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("line %d = %q", i, l)
		}
	}
	mu.Lock()
	if len(sinces) != 2 || sinces[0] != 0 || sinces[1] != 2 {
		t.Fatalf("since_seq of the subscriptions: %v (want [0 2])", sinces)
	}
	mu.Unlock()
	// The server's handler records the close after the client's handshake ended: wait for it.
	select {
	case code := <-lastClose:
		if code != websocket.StatusNormalClosure {
			t.Fatalf("the client closed with %d, want 1000", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the second connection end")
	}
}

// Refused credentials end the subscription at once with the API's error.
func TestUnauthorizedIsFatal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"detail":"token expired","code":"token_expired","request_id":"r1"}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, Options{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Channels: []string{"CH"}, Out: &lockedBuffer{}})
	if err == nil || !strings.Contains(err.Error(), "token_expired") || ctx.Err() != nil {
		t.Fatalf("Run: %v (ctx %v)", err, ctx.Err())
	}
}
