package usage

import (
	"context"
	"sync"
	"time"

	"github.com/artcafe-ai/pubsub/contracts/usagev1"
)

// activeReaders bounds the concurrent active-agent counts of one read.
const activeReaders = 8

// Metrics is GET /usage-metrics for the actor's tenant: one row per day of the range,
// oldest first, zeros for days without usage; gauges carried forward from the last
// earlier value (days after today show none); totals; the plan's limits.
func (s *Service) Metrics(ctx context.Context, actor Actor, req usagev1.MetricsRequest) (usagev1.MetricsResponse, error) {
	if err := actor.mayRead(); err != nil {
		return usagev1.MetricsResponse{}, err
	}
	tenantID, err := actor.tenant()
	if err != nil {
		return usagev1.MetricsResponse{}, err
	}
	plan, err := actor.plan()
	if err != nil {
		return usagev1.MetricsResponse{}, err
	}
	now := s.clock()
	start, end, err := req.Range(now)
	if err != nil {
		return usagev1.MetricsResponse{}, err
	}
	first, last, today := usagev1.Day(start), usagev1.Day(end), usagev1.Day(now)

	// Newest first: rows inside the range, then earlier rows until every gauge kind has
	// its last value before the range.
	inRange := make(map[string]Day)
	carry := make(map[string]Gauge, len(GaugeKinds))
	err = s.repo.Days(ctx, tenantID, func(d StoredDay) bool {
		switch {
		case d.Date > last:
			return true
		case d.Date >= first:
			inRange[d.Date] = d.Day
			return true
		}
		for k, g := range d.Gauges {
			if _, ok := carry[k]; !ok {
				carry[k] = g
			}
		}
		return len(carry) < len(GaugeKinds)
	})
	if err != nil {
		return usagev1.MetricsResponse{}, err
	}

	n := int(end.Sub(start)/(24*time.Hour)) + 1
	resp := usagev1.MetricsResponse{Metrics: make([]usagev1.DailyRow, n), Limits: plan.Limits}
	var withRow []int
	for i := range n {
		date := usagev1.Day(start.AddDate(0, 0, i))
		r := usagev1.DailyRow{TenantID: tenantID, Date: date}
		d, ok := inRange[date]
		if ok {
			r.Counts = d.Counts
			r.PeakConnections = d.PeakConnections
			withRow = append(withRow, i)
		}
		for k, g := range d.Gauges {
			carry[k] = g
		}
		if date <= today {
			r.Agents = carry[usagev1.GaugeAgents].V
			r.Channels = carry[usagev1.GaugeChannels].V
			r.SSHKeys = carry[usagev1.GaugeSSHKeys].V
		}
		resp.Metrics[i] = r
		resp.Totals.Counts.Add(r.Counts)
	}
	resp.Totals.Messages = resp.Totals.MessagesPublished + resp.Totals.MessagesDelivered
	if err := s.countActive(ctx, tenantID, resp.Metrics, withRow); err != nil {
		return usagev1.MetricsResponse{}, err
	}
	return resp, nil
}

// countActive fills active_agents of the rows at idx. Markers are written only with a
// counts entry, so days without a row have none.
func (s *Service) countActive(ctx context.Context, tenantID string, rows []usagev1.DailyRow, idx []int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, activeReaders)
	)
	for _, i := range idx {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			n, err := s.repo.CountActive(ctx, tenantID, rows[i].Date)
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
				return
			}
			rows[i].ActiveAgents = n
		}()
	}
	wg.Wait()
	return first
}
