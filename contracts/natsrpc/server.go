package natsrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
)

// Validator is implemented by request types that check themselves. A returned *Error is
// sent as is; any other error becomes a 422.
type Validator interface {
	Validate() error
}

// Observer receives one call per handled request (metrics).
type Observer func(op string, status int, d time.Duration)

// Server adapts typed handlers to micro endpoints. Requests run on a pool of worker
// goroutines shared by every endpoint of the server, at most maxWorkers at once: one
// slow store call does not hold up an endpoint, and when every worker is busy the
// subscription waits (backpressure) instead of piling up goroutines. Workers are reused
// rather than started per request, so they keep the stack a request grew (JSON, store
// calls) instead of growing a fresh one every time.
type Server struct {
	nc         *nats.Conn
	log        zerolog.Logger
	timeout    time.Duration
	observe    Observer
	maxWorkers int32
	workers    atomic.Int32
	work       chan func() // unbuffered: a send succeeds only when a worker is idle

	// In-flight accounting. Not a sync.WaitGroup: after micro's Stop, messages already
	// delivered to the connection still reach Handle, so a request may start while Wait
	// is waiting, which a WaitGroup forbids (the race detector reports it).
	mu       sync.Mutex
	inflight int
	idle     []chan struct{} // closed when inflight drops to zero
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithMaxConcurrency bounds the requests handled at once (default 256). n < 1 keeps
// the default: no worker would ever run.
func WithMaxConcurrency(n int) ServerOption {
	return func(s *Server) {
		if n > 0 {
			s.maxWorkers = int32(n)
		}
	}
}

// WithTimeout bounds the time a handler may take (default DefaultTimeout); a caller's
// smaller budget wins.
func WithTimeout(d time.Duration) ServerOption {
	return func(s *Server) { s.timeout = d }
}

// WithObserver reports every handled request.
func WithObserver(o Observer) ServerOption {
	return func(s *Server) { s.observe = o }
}

// NewServer returns a server replying on nc and logging to log.
func NewServer(nc *nats.Conn, log zerolog.Logger, opts ...ServerOption) *Server {
	s := &Server{nc: nc, log: log, maxWorkers: 256, timeout: DefaultTimeout, work: make(chan func())}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Wait blocks until every request in flight has been answered, or ctx ends. Call it
// after stopping the micro service and before draining the connection.
func (s *Server) Wait(ctx context.Context) error {
	s.mu.Lock()
	if s.inflight == 0 {
		s.mu.Unlock()
		return nil
	}
	done := make(chan struct{})
	s.idle = append(s.idle, done)
	s.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Handle returns a micro handler for op that decodes Req (an empty body is the zero
// Req), validates it, calls fn with a context carrying the caller's Identity, a
// deadline and a request logger (zerolog.Ctx), and replies with Resp as JSON or with
// the error. A panic in fn is answered with 500 and logged; the process survives.
func Handle[Req, Resp any](s *Server, op string, fn func(ctx context.Context, req *Req) (*Resp, error)) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		s.begin() // before dispatch, so Wait also covers requests waiting for a worker
		// Copy what the worker needs: the micro request must not be used after this
		// handler returns (micro reads its error state then).
		data, hdr, reply := r.Data(), nats.Header(r.Headers()), r.Reply()
		s.dispatch(func() {
			defer s.end()
			s.serve(op, hdr, reply, func(ctx context.Context) (any, error) {
				req := new(Req)
				if len(data) > 0 {
					if err := json.Unmarshal(data, req); err != nil {
						return nil, BadRequest(CodeInvalidJSON, "request body is not valid JSON for this operation")
					}
				}
				if v, ok := any(req).(Validator); ok {
					if err := v.Validate(); err != nil {
						if _, isWire := AsError(err); !isWire {
							err = Invalid(FieldError{Field: "body", Message: err.Error()})
						}
						return nil, err
					}
				}
				resp, err := fn(ctx, req)
				if err != nil {
					return nil, err
				}
				return resp, nil
			})
		})
	})
}

// workerIdle is how long an idle worker waits for work before it exits.
const workerIdle = 30 * time.Second

// dispatch runs f on a worker: an idle one takes it at once; otherwise a new worker
// starts while fewer than maxWorkers exist; otherwise the caller (the subscription's
// dispatcher) waits until a worker is free.
func (s *Server) dispatch(f func()) {
	select {
	case s.work <- f:
		return
	default:
	}
	if s.workers.Add(1) <= s.maxWorkers {
		go s.worker(f)
		return
	}
	s.workers.Add(-1)
	s.work <- f
}

// worker runs f, then further work until it has been idle for workerIdle. The timer is
// reset right before each wait, so a caller blocked in dispatch is always served by a
// busy worker finishing, never lost to a worker timing out.
func (s *Server) worker(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-s.work:
		case <-idle.C:
			s.workers.Add(-1)
			return
		}
	}
}

func (s *Server) begin() {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
}

func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight--; s.inflight == 0 {
		for _, c := range s.idle {
			close(c)
		}
		s.idle = nil
	}
}

func (s *Server) serve(op string, hdr nats.Header, reply string, call func(context.Context) (any, error)) {
	start := time.Now()
	id := identityFromHeaders(hdr)
	timeout := s.timeout
	// The header map is read directly, as identityFromHeaders does: Get would
	// canonicalize the (already canonical) name on every request, and parsing an absent
	// value would allocate a syntax error.
	if v := hdr[HeaderBudget]; len(v) > 0 {
		if ms, err := strconv.ParseInt(v[0], 10, 64); err == nil && ms > 0 && time.Duration(ms)*time.Millisecond < timeout {
			timeout = time.Duration(ms) * time.Millisecond
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	log := s.log.With().Str("op", op).Str("request_id", id.RequestID).Str("tenant_id", id.TenantID).Logger()
	ctx = log.WithContext(WithIdentity(ctx, id))

	resp, err := func() (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error().Interface("panic", p).Bytes("stack", debug.Stack()).Msg("handler panicked")
				err = Internal()
			}
		}()
		return call(ctx)
	}()

	status := http.StatusOK
	var out *nats.Msg
	if err != nil {
		e, ok := AsError(err)
		switch {
		case ok:
		case errors.Is(err, context.DeadlineExceeded):
			e = NewError(http.StatusGatewayTimeout, CodeUpstreamTimeout, "the operation timed out")
		default:
			e = Internal()
		}
		status = e.Status
		out = errorMsg(e)
		if status >= 500 {
			log.Error().Err(err).Int("status", status).Dur("duration", time.Since(start)).Msg("request failed")
		}
	} else {
		b, mErr := encodeReply(resp)
		if mErr != nil {
			status = http.StatusInternalServerError
			out = errorMsg(Internal())
			log.Error().Err(mErr).Msg("encoding reply")
		} else {
			out = &nats.Msg{Data: b}
		}
	}
	if reply != "" {
		out.Subject = reply
		if pErr := s.nc.PublishMsg(out); pErr != nil {
			log.Warn().Err(pErr).Msg("sending reply")
		}
	}
	d := time.Since(start)
	if status < 500 {
		log.Info().Int("status", status).Dur("duration", d).Msg("request")
	}
	if s.observe != nil {
		s.observe(op, status, d)
	}
}

// Encoded is implemented by reply types that hold their JSON already (a service relaying
// a stored record): Handle sends EncodedJSON as it is, without a pass of encoding/json.
type Encoded interface {
	EncodedJSON() []byte
}

func encodeReply(resp any) ([]byte, error) {
	if e, ok := resp.(Encoded); ok {
		return e.EncodedJSON(), nil
	}
	return json.Marshal(resp)
}

func errorMsg(e *Error) *nats.Msg {
	b, _ := json.Marshal(e)
	m := &nats.Msg{Header: nats.Header{}, Data: b}
	m.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(e.Status))
	m.Header.Set(micro.ErrorHeader, e.Detail)
	return m
}
