// Package stream is the CLI's live subscription to channels over the WebSocket
// endpoint (SPEC §4.6): it prints every message as one JSON line, resumes after a lost
// connection with since_seq (the seq of the last message printed per channel) so nothing
// is missed or printed twice, survives a slow terminal without blocking the socket, and
// ends with a normal close (1000) when its context is cancelled (Ctrl-C).
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/artcafe-ai/pubsub/cli/internal/api"
	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/realtimev1"
)

// Options configure a subscription.
type Options struct {
	// URL is the WebSocket URL (api.WebSocketURL); Header carries the credentials.
	URL    string
	Header http.Header
	// Channels are subscribed to; Since[ch] is the seq after which delivery starts.
	Channels []string
	Since    map[string]uint64
	// Out receives one JSON line per message (the message object of SPEC §4.5).
	Out io.Writer
	// Log receives notes for the person watching (connects, reconnects, warnings).
	Log func(format string, args ...any)
	// Buffer is how many received messages may wait for Out (default 1024). When it is
	// full the connection is dropped rather than blocking the socket reader (the server
	// would close a slow consumer anyway); once Out has caught up, a reconnect resumes
	// from the last message printed.
	Buffer int
	// MaxBackoff bounds the wait between reconnects (default 10 s).
	MaxBackoff time.Duration
	// PingEvery is how often the client checks that the server is still there (default 30 s).
	PingEvery time.Duration
	// Connected, when set, is called after every successful (re)subscription.
	Connected func()
}

// ErrOverflow: Out fell behind by Buffer messages; the connection was dropped and is
// resumed from the last message printed.
var ErrOverflow = errors.New("the terminal fell behind")

// Fatal is an error a reconnect cannot fix (bad credentials, unknown channel, revoked
// key); the subscription ends with it.
type Fatal struct{ Err error }

func (f *Fatal) Error() string { return f.Err.Error() }
func (f *Fatal) Unwrap() error { return f.Err }

// sub is the state shared by the reader, the printer and the reconnect loop.
type sub struct {
	o       Options
	mu      sync.Mutex
	last    map[string]uint64 // seq of the last message printed, per channel
	active  map[string]bool   // channels still subscribed (a deleted channel leaves)
	queue   chan messagev1.Message
	printed chan error // the printer's end: nil when the queue was closed and drained
}

// Run subscribes until ctx is cancelled (then it returns nil after a normal close and
// after printing what was received) or a Fatal error happens.
func Run(ctx context.Context, o Options) error {
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	s := &sub{o: o, last: map[string]uint64{}, active: map[string]bool{},
		queue: make(chan messagev1.Message, o.Buffer), printed: make(chan error, 1)}
	for _, ch := range o.Channels {
		s.last[ch] = o.Since[ch]
		s.active[ch] = true
	}
	go func() { s.printed <- s.print() }()

	err := s.loop(ctx)
	close(s.queue)
	if perr := <-s.printed; perr != nil && err == nil {
		err = perr
	}
	return err
}

// print writes queued messages, skipping any at or below the last seq printed (a
// resumed subscription may replay what was still queued).
func (s *sub) print() error {
	enc := json.NewEncoder(s.o.Out)
	for m := range s.queue {
		s.mu.Lock()
		dup := m.Seq <= s.last[m.ChannelID]
		s.mu.Unlock()
		if dup {
			continue
		}
		if err := enc.Encode(m); err != nil {
			// Out is gone (a closed pipe): nothing more can be shown.
			for range s.queue {
			}
			return fmt.Errorf("writing a message: %w", err)
		}
		s.mu.Lock()
		s.last[m.ChannelID] = m.Seq
		s.mu.Unlock()
	}
	return nil
}

// loop connects, reads until the connection ends, and reconnects with backoff.
func (s *sub) loop(ctx context.Context) error {
	backoff := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if err := s.printerFailed(); err != nil {
			return err
		}
		connectedAt := time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *Fatal
		if errors.As(err, &fatal) {
			return err
		}
		if errors.Is(err, ErrOverflow) {
			s.o.Log("the terminal fell behind by %d messages: reconnecting once they are printed", s.o.Buffer)
			if err := s.drain(ctx); err != nil {
				return err
			}
			backoff = 250 * time.Millisecond
			continue
		}
		if time.Since(connectedAt) > 30*time.Second {
			backoff = 250 * time.Millisecond // it had been working: start over
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		var ae *api.Error
		if errors.As(err, &ae) && ae.RetryAfter > wait {
			wait = ae.RetryAfter
		}
		s.o.Log("connection lost (%v); reconnecting in %s", err, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case err := <-s.printed:
			s.printed <- err
		case <-time.After(wait):
		}
		backoff = min(backoff*2, s.o.MaxBackoff)
	}
}

func (s *sub) printerFailed() error {
	select {
	case err := <-s.printed:
		s.printed <- err
		if err == nil {
			err = errors.New("the printer stopped")
		}
		return &Fatal{err}
	default:
		return nil
	}
}

// drain waits until the printer has emptied the queue.
func (s *sub) drain(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for len(s.queue) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.printerFailed(); err != nil {
			return err
		}
	}
	return nil
}

// session is one connection: dial, subscribe every active channel from its last seq,
// read until it ends. It returns why it ended.
func (s *sub) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	conn, resp, err := websocket.Dial(dctx, s.o.URL, &websocket.DialOptions{HTTPHeader: s.o.Header})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body []byte
			if resp.Body != nil {
				body, _ = io.ReadAll(resp.Body)
			}
			ae := api.ParseError(resp.StatusCode, resp.Header, body)
			if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout {
				return &Fatal{ae}
			}
			return ae
		}
		return err
	}
	conn.SetReadLimit(2 * realtimev1.MaxFrameBytes) // messages up to the frame limit, plus the envelope

	// Frames are read with a context of the connection, not ctx: cancelling a read
	// context would drop the connection without a close frame.
	connCtx, stop := context.WithCancel(context.Background())
	defer stop()
	frames := make(chan readResult, 1)
	// closing tells the reader to stop handing frames over and only read on until the
	// close handshake ends (a blocked reader would stall Close for its full timeout).
	closing := make(chan struct{})
	go func() {
		for {
			_, b, err := conn.Read(connCtx)
			select {
			case frames <- readResult{b, err}:
			case <-closing:
			case <-connCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	s.mu.Lock()
	var subs []realtimev1.ClientFrame
	for _, ch := range s.o.Channels {
		if s.active[ch] {
			subs = append(subs, realtimev1.SubscribeSince("sub:"+ch, ch, s.last[ch]))
		}
	}
	s.mu.Unlock()
	for _, f := range subs {
		if err := writeFrame(connCtx, conn, f); err != nil {
			conn.CloseNow()
			return err
		}
	}
	pending := len(subs)

	ping := time.NewTicker(s.o.PingEvery)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			close(closing)
			_ = conn.Close(websocket.StatusNormalClosure, "bye")
			return nil
		case <-ping.C:
			go func() {
				pctx, cancel := context.WithTimeout(connCtx, 10*time.Second)
				defer cancel()
				if err := conn.Ping(pctx); err != nil && connCtx.Err() == nil {
					conn.CloseNow() // the reader then reports the lost connection
				}
			}()
		case r := <-frames:
			if r.err != nil {
				return s.closed(r.err)
			}
			var f realtimev1.ServerFrame
			if err := json.Unmarshal(r.data, &f); err != nil {
				s.o.Log("ignoring a frame that is not JSON: %.200s", r.data)
				continue
			}
			done, err := s.frame(connCtx, conn, &f, &pending)
			if errors.Is(err, ErrOverflow) {
				close(closing)
				_ = conn.Close(websocket.StatusNormalClosure, "client fell behind; resuming with since_seq")
				return err
			}
			if err != nil {
				conn.CloseNow()
				return err
			}
			if done {
				close(closing)
				_ = conn.Close(websocket.StatusNormalClosure, "no channel left")
				return &Fatal{errors.New("every channel was deleted")}
			}
		}
	}
}

type readResult struct {
	data []byte
	err  error
}

func writeFrame(ctx context.Context, conn *websocket.Conn, f realtimev1.ClientFrame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// frame handles one server frame; done means no channel is left to watch.
func (s *sub) frame(ctx context.Context, conn *websocket.Conn, f *realtimev1.ServerFrame, pending *int) (bool, error) {
	switch f.Type {
	case realtimev1.TypeConnected:
		s.o.Log("connected: session %s, tenant %s", f.SessionID, f.TenantID)
	case realtimev1.TypeSubscribed:
		s.mu.Lock()
		since := s.last[f.ChannelID]
		s.mu.Unlock()
		s.o.Log("subscribed to %s (after seq %d)", f.ChannelID, since)
		if *pending--; *pending == 0 && s.o.Connected != nil {
			s.o.Connected()
		}
	case realtimev1.TypeMessage:
		m := f.Message()
		select {
		case s.queue <- m:
		default:
			// Full: give the printer a moment, never the whole session.
			t := time.NewTimer(time.Second)
			defer t.Stop()
			select {
			case s.queue <- m:
			case <-t.C:
				return false, ErrOverflow
			}
		}
	case realtimev1.TypeUnsubscribed:
		switch f.Reason {
		case realtimev1.ReasonChannelDeleted, realtimev1.ReasonAccessRevoked:
			if f.Reason == realtimev1.ReasonAccessRevoked {
				s.o.Log("access to channel %s was revoked", f.ChannelID)
			} else {
				s.o.Log("channel %s was deleted", f.ChannelID)
			}
			s.mu.Lock()
			delete(s.active, f.ChannelID)
			left := len(s.active)
			s.mu.Unlock()
			return left == 0, nil
		case realtimev1.ReasonReplayFailed:
			s.mu.Lock()
			since := s.last[f.ChannelID]
			s.mu.Unlock()
			s.o.Log("the server could not replay %s; subscribing again after seq %d", f.ChannelID, since)
			return false, writeFrame(ctx, conn, realtimev1.SubscribeSince("sub:"+f.ChannelID, f.ChannelID, since))
		}
	case realtimev1.TypeError:
		if f.Code == realtimev1.CodeHistoryTruncated {
			first := "none stored"
			if f.FirstSeq != nil {
				first = "the first stored is seq " + strconv.FormatUint(*f.FirstSeq, 10)
			}
			s.o.Log("warning: part of %s's history after the requested seq has expired (%s)", f.ChannelID, first)
			return false, nil
		}
		e := &api.Error{Code: f.Code, Detail: f.Detail}
		if len(f.ID) > 4 && f.ID[:4] == "sub:" {
			// A subscribe was refused (unknown channel, forbidden, invalid): retrying will not help.
			e.Detail = fmt.Sprintf("subscribing to %s: %s", f.ID[4:], f.Detail)
			return false, &Fatal{e}
		}
		s.o.Log("error from the server: %s: %s", f.Code, f.Detail)
	}
	return false, nil
}

// closed turns the end of a connection into the session's result: closes that mean the
// credentials are no longer good are fatal; the rest are reconnected.
func (s *sub) closed(err error) error {
	switch websocket.CloseStatus(err) {
	case realtimev1.CloseTokenExpired, realtimev1.CloseRevoked:
		var ce websocket.CloseError
		errors.As(err, &ce)
		return &Fatal{fmt.Errorf("the server closed the session: %d %s", ce.Code, ce.Reason)}
	case -1:
		return err
	default:
		var ce websocket.CloseError
		errors.As(err, &ce)
		return fmt.Errorf("closed by the server: %d %s", ce.Code, ce.Reason)
	}
}
