package stream

import (
	"context"
	"encoding/json"

	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
)

// Bounds of history reads.
const (
	// maxReadBytes bounds the bytes of one batch: room for a full page of the largest
	// messages the stream stores, so a page is one request.
	maxReadBytes = (channel.MaxListLimit + 1) * messagev1.MaxStoredBytes
	// maxSearchSteps bounds the probes that find where a before_seq page starts.
	maxSearchSteps = 64
	// envelopeSize is room for a message object's fields around its data.
	envelopeSize = 320
)

// History implements channel.Messages. Messages come oldest first:
//   - after_seq (with or without before_seq): the first limit messages after it (and
//     below before_seq); NextAfterSeq is set when another one follows;
//   - before_seq alone: the limit messages just below it (no NextAfterSeq: the messages
//     after them are the ones at and above before_seq);
//   - neither: the oldest stored messages, paged on with NextAfterSeq.
func (s *Stream) History(ctx context.Context, tenantID, channelID string, q channel.HistoryQuery) (channel.HistoryPage, error) {
	subject := messagev1.Subject(tenantID, channelID)
	limit := max(q.Limit, 1)
	var (
		msgs []stored
		next uint64
		err  error
	)
	if q.BeforeSeq != 0 && q.AfterSeq == 0 {
		msgs, err = s.below(ctx, subject, q.BeforeSeq, limit)
	} else {
		msgs, err = s.forward(ctx, subject, q.AfterSeq, q.BeforeSeq, limit+1, 0)
		if len(msgs) > limit {
			msgs = msgs[:limit]
			next = msgs[limit-1].seq
		}
	}
	if err != nil {
		return channel.HistoryPage{}, err
	}
	page := channel.HistoryPage{Messages: make([]json.RawMessage, 0, len(msgs)), NextAfterSeq: next}
	for _, m := range msgs {
		b, ok := messagev1.AppendJSON(make([]byte, 0, len(m.msg.Data)+envelopeSize), false, tenantID, channelID, m.seq, m.msg.Header, m.msg.Data)
		if !ok {
			// Only the gateway publishes here and it sends JSON objects: a message that
			// is not one was put there around it. Skip it rather than break the page.
			zerolog.Ctx(ctx).Warn().Str("subject", subject).Uint64("seq", m.seq).Msg("skipping a stored message whose data is not a JSON object")
			continue
		}
		page.Messages = append(page.Messages, b)
	}
	return page, nil
}

// forward reads the messages of subject after after (and below before when not 0), in
// order, up to want of them; keepLast > 0 keeps only the last keepLast of everything in
// the range instead (reading it all). It asks again when the server ends a batch early
// (its byte bound) while more match.
func (s *Stream) forward(ctx context.Context, subject string, after, before uint64, want, keepLast int) ([]stored, error) {
	var out []stored
	seq := after + 1
	for {
		batch := want - len(out)
		if keepLast > 0 {
			batch = 2 * keepLast
		}
		msgs, pending, err := s.direct(ctx, directRequest{Seq: seq, NextFor: subject, Batch: batch, MaxBytes: maxReadBytes})
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if before != 0 && m.seq >= before {
				return trimTo(out, keepLast), nil
			}
			out = append(out, m)
		}
		out = trimTo(out, keepLast)
		if len(msgs) == 0 || pending == 0 || (keepLast == 0 && len(out) >= want) {
			return out, nil
		}
		seq = msgs[len(msgs)-1].seq + 1
	}
}

func trimTo(msgs []stored, keepLast int) []stored {
	if keepLast > 0 && len(msgs) > keepLast {
		return append(msgs[:0], msgs[len(msgs)-keepLast:]...)
	}
	return msgs
}

// below reads the limit messages of subject just below before, oldest first.
//
// The stream reads forward only, so it first finds a start sequence from which at most
// about twice limit messages lie below before: counts come from one-message direct gets
// (count), and the search interpolates on the channel's density, alternating with
// bisection so that it also converges when the density is uneven. Then it reads that
// window and keeps its last limit messages.
func (s *Stream) below(ctx context.Context, subject string, before uint64, limit int) ([]stored, error) {
	total, first, err := s.count(ctx, subject, 1)
	if err != nil || total == 0 || first >= before {
		return nil, err
	}
	above, _, err := s.count(ctx, subject, before)
	if err != nil {
		return nil, err
	}
	lim := uint64(limit)
	// Invariant: from lo, enough messages (≥ limit) lie below before; from hi, too few.
	lo, atLo, hi := first, total-min(above, total), before
	for step := 0; atLo > 2*lim && hi-lo > 1 && step < maxSearchSteps; step++ {
		x := lo + (hi-lo)/2
		if step%2 == 0 {
			// Aim at 1.5 × limit messages, as if the channel's messages were evenly spread
			// over [lo, before).
			x = before - uint64(float64(before-lo)*1.5*float64(lim)/float64(atLo))
		}
		x = min(max(x, lo+1), hi-1)
		n, at, err := s.count(ctx, subject, x)
		if err != nil {
			return nil, err
		}
		inWindow := n - min(above, n)
		if n == 0 || inWindow < lim {
			hi = x
			continue
		}
		lo, atLo = at, inWindow
	}
	return s.forward(ctx, subject, lo-1, before, 0, limit)
}
