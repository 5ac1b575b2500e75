package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Direct gets (the stream's AllowDirect) read stored messages without a consumer. A
// batch direct get (nats-server ≥ 2.11) answers one request with up to Batch messages of
// one subject from a start sequence, each carrying Nats-Num-Pending (the matching
// messages after it), then an end-of-batch status message: a page of history is one
// round trip. nats.go does not expose batches, so this is the request spelled out
// (ADR-31).

// directRequest is the JetStream direct get request (JSApiMsgGetRequest).
type directRequest struct {
	Seq          uint64   `json:"seq,omitempty"`
	NextFor      string   `json:"next_by_subj,omitempty"`
	Batch        int      `json:"batch,omitempty"`
	MaxBytes     int      `json:"max_bytes,omitempty"`
	MultiLastFor []string `json:"multi_last,omitempty"`
}

// Headers of direct get replies.
const (
	hdrStatus     = "Status" // an inline status (nats.go puts it here)
	hdrSequence   = "Nats-Sequence"
	hdrSubject    = "Nats-Subject"
	hdrTimeStamp  = "Nats-Time-Stamp"
	hdrNumPending = "Nats-Num-Pending"

	statusEndOfBatch   = "204"
	statusNotFound     = "404"
	statusTooMany      = "413"
	statusNoResponders = "503"
)

// directTimeout bounds a direct get whose context has no deadline.
const directTimeout = 5 * time.Second

// maxMultiLast is how many subjects the server answers in one multi-last request (more
// is a 413).
const maxMultiLast = 1024

// errTooManyResults: a multi-last request matched more subjects than the server answers
// at once.
var errTooManyResults = errors.New("stream: too many subjects for one request")

// stored is one message read by a direct get.
type stored struct {
	seq  uint64
	msg  *nats.Msg
	left uint64 // Nats-Num-Pending: matching messages after this one
}

// direct sends req (a batch or multi-last request: both end with an end-of-batch
// message) and collects the messages of the reply until the end of the batch.
// A request that finds nothing returns no message and no error. pending is the number
// of matching messages after the last one returned, as the end of the batch says.
func (s *Stream) direct(ctx context.Context, req directRequest) (msgs []stored, pending uint64, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, directTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	// A channel with room for the whole answer (the messages and the end of the batch):
	// a sync subscription would allocate the connection's default 64k-slot buffer for
	// every read.
	size := max(req.Batch, 1) + 1
	if len(req.MultiLastFor) > 0 {
		size = maxMultiLast + 1
	}
	replies := make(chan *nats.Msg, size)
	inbox := s.nc.NewInbox()
	sub, err := s.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, 0, unavailable("direct get", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := s.nc.PublishRequest(s.directSubject, inbox, body); err != nil {
		return nil, 0, unavailable("direct get", err)
	}
	msgs = make([]stored, 0, size-1)
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return nil, 0, unavailable("direct get", ctx.Err())
		}
		switch status := m.Header.Get(hdrStatus); status {
		case "":
		case statusEndOfBatch:
			return msgs, headerUint(m.Header, hdrNumPending), nil
		case statusNotFound:
			return msgs, 0, nil
		case statusTooMany:
			return nil, 0, errTooManyResults
		case statusNoResponders:
			return nil, 0, unavailable("direct get", errors.New("no responders (JetStream or the stream is down)"))
		default:
			return nil, 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		seq := headerUint(m.Header, hdrSequence)
		if seq == 0 {
			return nil, 0, fmt.Errorf("direct get: a reply without %s", hdrSequence)
		}
		msgs = append(msgs, stored{seq: seq, msg: m, left: headerUint(m.Header, hdrNumPending)})
	}
}

func headerUint(h nats.Header, key string) uint64 {
	n, _ := strconv.ParseUint(h.Get(key), 10, 64)
	return n
}

// count returns how many messages of subject are stored at or after seq, and the
// sequence of the first of them (0, 0 when none): one direct get of one message, whose
// Nats-Num-Pending counts the rest.
func (s *Stream) count(ctx context.Context, subject string, seq uint64) (n, first uint64, err error) {
	msgs, _, err := s.direct(ctx, directRequest{Seq: max(seq, 1), NextFor: subject, Batch: 1, MaxBytes: 1})
	if err != nil || len(msgs) == 0 {
		return 0, 0, err
	}
	return msgs[0].left + 1, msgs[0].seq, nil
}
