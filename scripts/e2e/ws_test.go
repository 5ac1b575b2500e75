package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
	"github.com/artcafe-ai/pubsub/scripts/internal/testkit"
)

// wsFrame is one frame a session received: decoded, and the bytes as they came.
type wsFrame struct {
	realtimev1.ServerFrame
	raw []byte
	at  time.Time
}

func (f wsFrame) String() string { return string(f.raw) }

// wsSession is one WebSocket session of the API. A reader goroutine logs every frame;
// tests look for frames in the log from a mark on, so frames of other kinds (events,
// pongs) never get in the way and nothing is lost between two waits.
type wsSession struct {
	name string
	conn *websocket.Conn

	mu     sync.Mutex
	frames []wsFrame
	done   chan struct{}
	err    error // why the reader stopped, once done is closed

	connected wsFrame
}

// wsAuth is how a session authenticates: a header (Authorization) or the query
// (?token=), and a tenant (x-tenant-id or ?tenant_id=).
type wsAuth struct {
	token       string
	tenant      string
	inQuery     bool // token and tenant in the query, as a browser sends them
	tenantQuery bool // only the tenant in the query
}

func wsURL(base string, a wsAuth) (string, http.Header) {
	u, _ := url.Parse(base)
	u.Scheme = "ws"
	u.Path = realtimev1.Path
	q := url.Values{}
	h := http.Header{}
	if a.inQuery {
		q.Set(realtimev1.QueryToken, a.token)
	} else if a.token != "" {
		h.Set("Authorization", "Bearer "+a.token)
	}
	if a.tenant != "" {
		if a.inQuery || a.tenantQuery {
			q.Set(realtimev1.QueryTenantID, a.tenant)
		} else {
			h.Set("X-Tenant-Id", a.tenant)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), h
}

// tryDialWS opens a session; a refused upgrade returns the HTTP reply.
func tryDialWS(base, name string, a wsAuth) (*wsSession, *reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u, h := wsURL(base, a)
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			r := &reply{Method: http.MethodGet, Path: realtimev1.Path, Status: resp.StatusCode, Header: resp.Header}
			if resp.Body != nil {
				r.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			}
			return nil, r, err
		}
		return nil, nil, err
	}
	conn.SetReadLimit(4 << 20)
	s := &wsSession{name: name, conn: conn, done: make(chan struct{})}
	go s.read()
	return s, nil, nil
}

// cleaner is the test that owns a session: the session is closed when that test ends
// (a story's sessions outlive the step that opened them).
type cleaner interface{ Cleanup(func()) }

// dialWS opens a session and waits for its connected frame; owner closes it at its end.
func dialWS(t *testing.T, owner cleaner, base, name string, a wsAuth) *wsSession {
	t.Helper()
	s, r, err := tryDialWS(base, name, a)
	if err != nil {
		if r != nil {
			t.Fatalf("%s: WebSocket refused: %s", name, r)
		}
		t.Fatalf("%s: WebSocket dial: %v", name, err)
	}
	owner.Cleanup(s.close)
	s.connected, _ = s.waitFrame(t, 0, "connected", 10*time.Second, func(f wsFrame) bool { return true })
	if s.connected.Type != realtimev1.TypeConnected || s.connected.SessionID == "" {
		t.Fatalf("%s: first frame %s, want connected {session_id, tenant_id}", name, s.connected)
	}
	return s
}

func (s *wsSession) read() {
	defer close(s.done)
	for {
		_, b, err := s.conn.Read(context.Background())
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		f := wsFrame{raw: b, at: time.Now()}
		if err := json.Unmarshal(b, &f.ServerFrame); err != nil {
			f.Type = "undecodable: " + err.Error()
		}
		s.mu.Lock()
		s.frames = append(s.frames, f)
		s.mu.Unlock()
	}
}

// close ends the session normally (idempotent).
func (s *wsSession) close() {
	_ = s.conn.Close(websocket.StatusNormalClosure, "bye")
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.conn.CloseNow()
	}
}

func (s *wsSession) send(t *testing.T, f realtimev1.ClientFrame) {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	s.sendRaw(t, b)
}

func (s *wsSession) sendRaw(t *testing.T, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("%s: send %s: %v", s.name, b, err)
	}
}

// mark is the position of the next frame: waits from it see only later frames.
func (s *wsSession) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// since returns a copy of the frames from index from on.
func (s *wsSession) since(from int) []wsFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from > len(s.frames) {
		return nil
	}
	return append([]wsFrame(nil), s.frames[from:]...)
}

// closed reports whether the reader stopped, and why.
func (s *wsSession) closed() (bool, error) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return true, s.err
	default:
		return false, nil
	}
}

// waitFrame waits for the first frame from index from on that matches, and returns it
// with the index after it.
func (s *wsSession) waitFrame(t *testing.T, from int, what string, timeout time.Duration, match func(wsFrame) bool) (wsFrame, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for i, f := range s.since(from) {
			if match(f) {
				return f, from + i + 1
			}
		}
		if done, err := s.closed(); done {
			// The last frames may have arrived before the close: look once more.
			for i, f := range s.since(from) {
				if match(f) {
					return f, from + i + 1
				}
			}
			t.Fatalf("%s: waiting for %s: the session closed (%v); frames since: %s", s.name, what, err, s.describe(from))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %s; frames since: %s", s.name, what, timeout, s.describe(from))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reply waits for the frame answering the client frame with this id.
func (s *wsSession) reply(t *testing.T, from int, id string) wsFrame {
	t.Helper()
	f, _ := s.waitFrame(t, from, "the reply to "+id, 10*time.Second, func(f wsFrame) bool { return f.ID == id })
	return f
}

// expectReply waits for the reply to id and requires its type (and, for an error, its code).
func (s *wsSession) expectReply(t *testing.T, from int, id, typ, code string) wsFrame {
	t.Helper()
	f := s.reply(t, from, id)
	if f.Type != typ || (code != "" && f.Code != code) {
		t.Fatalf("%s: reply to %s is %s, want %s %s", s.name, id, f, typ, code)
	}
	if f.Type == realtimev1.TypeError && f.Detail == "" {
		t.Fatalf("%s: error frame without detail: %s", s.name, f)
	}
	return f
}

// messages returns the message frames of channel from index from on.
func (s *wsSession) messages(from int, channel string) []wsFrame {
	var out []wsFrame
	for _, f := range s.since(from) {
		if f.Type == realtimev1.TypeMessage && f.ChannelID == channel {
			out = append(out, f)
		}
	}
	return out
}

// waitMessages waits until channel has at least n message frames from index from on.
func (s *wsSession) waitMessages(t *testing.T, from int, channel string, n int, timeout time.Duration) []wsFrame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.messages(from, channel)
		if len(m) >= n {
			return m
		}
		if done, err := s.closed(); done {
			if m = s.messages(from, channel); len(m) >= n {
				return m
			}
			t.Fatalf("%s: %d of %d messages of %s, then the session closed (%v)", s.name, len(m), n, channel, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages of %s within %s; frames since: %s", s.name, len(m), n, channel, timeout, s.describe(from))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// subscribe subscribes to channel and waits for subscribed.
func (s *wsSession) subscribe(t *testing.T, channel string) {
	t.Helper()
	id := "sub-" + channel
	from := s.mark()
	s.send(t, realtimev1.Subscribe(id, channel))
	f := s.expectReply(t, from, id, realtimev1.TypeSubscribed, "")
	if f.ChannelID != channel {
		t.Fatalf("%s: subscribed %s, want channel %s", s.name, f, channel)
	}
}

// waitClose waits for the server to close the session and returns the close status.
func (s *wsSession) waitClose(t *testing.T, timeout time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("%s: still open after %s", s.name, timeout)
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, fmt.Sprint(err)
}

// describe prints the frames from index from on, shortened, for failure messages.
func (s *wsSession) describe(from int) string {
	fs := s.since(from)
	var b strings.Builder
	for i, f := range fs {
		if i == 30 {
			fmt.Fprintf(&b, "\n  … %d more", len(fs)-i)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(testkit.Tail(string(f.raw), 300))
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}
