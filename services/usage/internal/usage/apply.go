package usage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/usagev1"
	"github.com/artcafe-ai/pubsub/contracts/validation"
)

// maxAttempts bounds the read-modify-write retries of one row before the event is
// handed back (it is redelivered and tries again).
const maxAttempts = 32

// entryWorkers bounds the entries of one event applied at the same time.
const entryWorkers = 16

// maxSourceLen bounds a sender id (it becomes a key in the row).
const maxSourceLen = 128

// Result counts the outcomes of the entries of one event.
type Result map[Outcome]int

// Complete reports whether every entry was applied or will never be (the event may be
// acknowledged): no entry waits for an earlier flush.
func (r Result) Complete() bool { return r[Gap] == 0 }

// ApplyCounts applies every entry of ev (see the package doc). It returns the outcome
// of each entry, or an error when the store failed (entries applied before the failure
// stay applied and skip themselves when the event comes back). A malformed event as a
// whole (no sender, batch 0) is ErrMalformed.
func (s *Service) ApplyCounts(ctx context.Context, ev usagev1.CountsEvent) (Result, error) {
	if ev.Source == "" || len(ev.Source) > maxSourceLen || ev.Batch == 0 {
		return nil, fmt.Errorf("%w: counts event with source %q and batch %d", ErrMalformed, ev.Source, ev.Batch)
	}
	// The entries of one flush are for distinct rows (one per tenant and day), so they
	// are applied side by side.
	outcomes := make([]Outcome, len(ev.Entries))
	errs := make([]error, len(ev.Entries))
	var wg sync.WaitGroup
	sem := make(chan struct{}, entryWorkers)
	for i, e := range ev.Entries {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			outcomes[i], errs[i] = s.applyEntry(ctx, ev.Source, ev.Batch, e)
		}()
	}
	wg.Wait()
	res := make(Result, 3)
	for i, o := range outcomes {
		if errs[i] != nil {
			return res, errs[i]
		}
		res[o]++
	}
	return res, nil
}

func validEntry(batch uint64, e usagev1.CountsEntry) bool {
	if !validation.IsUUID(e.TenantID) || e.Prev >= batch || e.PeakConnections < 0 {
		return false
	}
	if _, err := time.Parse(usagev1.DateLayout, e.Date); err != nil {
		return false
	}
	c := e.Counts
	return c.APICalls >= 0 && c.MessagesPublished >= 0 && c.MessagesDelivered >= 0 && c.BytesIn >= 0 && c.BytesOut >= 0
}

func (s *Service) applyEntry(ctx context.Context, source string, batch uint64, e usagev1.CountsEntry) (Outcome, error) {
	if !validEntry(batch, e) {
		return Invalid, nil
	}
	o, err := s.writeEntry(ctx, source, batch, e)
	if err != nil {
		return 0, err
	}
	if gone, err := s.discarded(ctx, e.TenantID); gone || err != nil {
		return Discarded, err // the error, when there is one, is what counts
	}
	return o, nil
}

// writeEntry writes the entry's active-agent markers and applies its counts to its row.
func (s *Service) writeEntry(ctx context.Context, source string, batch uint64, e usagev1.CountsEntry) (Outcome, error) {
	// Markers first: they are idempotent, so a crash after them and before the row is
	// repaired by the redelivery, and a redelivered (skipped) entry finds them written.
	for _, agentID := range e.ActiveAgents {
		agentID = strings.ToUpper(agentID)
		if !validation.IsULID(agentID) {
			continue
		}
		k := e.TenantID + "/" + e.Date + "/" + agentID
		if s.active.has(k) {
			continue
		}
		if err := s.repo.MarkActive(ctx, e.TenantID, e.Date, agentID); err != nil {
			return 0, err
		}
		s.active.add(k)
	}
	for attempt := 0; ; attempt++ {
		d, err := s.repo.GetDay(ctx, e.TenantID, e.Date)
		if err != nil {
			return 0, err
		}
		o := d.applyCounts(source, batch, e)
		if o != Applied {
			return o, nil
		}
		err = s.repo.PutDay(ctx, e.TenantID, d)
		if err == nil {
			return Applied, nil
		}
		if !errors.Is(err, ErrConflict) || attempt+1 >= maxAttempts {
			return 0, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

// ApplyGauge records ev in the row of its day: the value with the latest instant wins
// (the larger on a tie), so redelivered and out-of-order events end the same. A
// malformed event is ErrMalformed; the event of a deleted tenant changes nothing.
func (s *Service) ApplyGauge(ctx context.Context, ev usagev1.GaugeEvent) (changed bool, err error) {
	known := false
	for _, k := range GaugeKinds {
		known = known || k == ev.Kind
	}
	if !validation.IsUUID(ev.TenantID) || !known || ev.At.IsZero() {
		return false, fmt.Errorf("%w: gauge event %q of tenant %q at %v", ErrMalformed, ev.Kind, ev.TenantID, ev.At)
	}
	changed, err = s.writeGauge(ctx, ev)
	if err != nil || !changed {
		return changed, err
	}
	if gone, err := s.discarded(ctx, ev.TenantID); gone || err != nil {
		return false, err
	}
	return true, nil
}

// writeGauge applies the gauge to its day row; changed reports a write.
func (s *Service) writeGauge(ctx context.Context, ev usagev1.GaugeEvent) (changed bool, err error) {
	// A counter may dip below 0 for a moment (concurrent compensations); a count cannot.
	v := max(ev.Value, 0)
	date := usagev1.Day(ev.At)
	for attempt := 0; ; attempt++ {
		d, err := s.repo.GetDay(ctx, ev.TenantID, date)
		if err != nil {
			return false, err
		}
		if !d.applyGauge(ev.Kind, v, ev.At) {
			return false, nil
		}
		err = s.repo.PutDay(ctx, ev.TenantID, d)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrConflict) || attempt+1 >= maxAttempts {
			return false, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return false, err
		}
	}
}
