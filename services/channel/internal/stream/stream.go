// Package stream is the channel service's side of the MESSAGES JetStream stream
// (contracts/messagev1), which the gateways publish into: it keeps the stream's
// configuration, reads a channel's history with batched direct gets, reports each
// channel's stored count and last message time (cached a few seconds), purges deleted
// channels and tenants, and trims channels above their history.max_messages (Trimmer).
package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/messagev1"
	"github.com/artcafe-ai/pubsub/contracts/replication"
	"github.com/artcafe-ai/pubsub/services/channel/internal/channel"
)

// Stream implements channel.Messages on the MESSAGES stream.
type Stream struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	s     jetstream.Stream
	log   zerolog.Logger
	stats *statsCache
	// directSubject is where direct gets of the stream are asked ($JS.API.DIRECT.GET.<stream>).
	directSubject string
	replicas      int
}

var _ channel.Messages = (*Stream)(nil)

// Option configures a Stream.
type Option func(*Stream)

// WithStatsTTL sets how long stats are reused (default StatsTTL).
func WithStatsTTL(d time.Duration) Option { return func(s *Stream) { s.stats.ttl = d } }

// WithClock replaces time.Now for the stats cache (tests).
func WithClock(now func() time.Time) Option { return func(s *Stream) { s.stats.now = now } }

// WithReplicas sets the replica count Open ensures the stream at (NATS_JS_REPLICAS;
// default 1, never lowering an existing stream's).
func WithReplicas(n int) Option { return func(s *Stream) { s.replicas = n } }

// Open ensures the stream's configuration (Ensure) and returns the Stream on it. nc is
// the connection js was made on (history reads use it directly).
func Open(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, log zerolog.Logger, opts ...Option) (*Stream, error) {
	st := &Stream{
		nc: nc, js: js, log: log,
		stats:         newStatsCache(),
		directSubject: "$JS.API.DIRECT.GET." + messagev1.Stream,
	}
	for _, o := range opts {
		o(st)
	}
	s, err := Ensure(ctx, js, st.replicas)
	if err != nil {
		return nil, err
	}
	st.s = s
	return st, nil
}

// Ensure creates the stream from messagev1.StreamConfig at replicas, or updates it to
// that configuration. Replicas is the one setting an operator owns: an existing stream
// keeps a higher replica count (a cluster runs it at R3; this service never scales it
// down).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.Stream, error) {
	s, err := replication.Stream(ctx, js, messagev1.StreamConfig(replicas))
	if err != nil {
		return nil, fmt.Errorf("ensuring stream %s: %w", messagev1.Stream, err)
	}
	return s, nil
}

// PurgeChannel implements channel.Messages.
func (s *Stream) PurgeChannel(ctx context.Context, tenantID, channelID string) error {
	if err := s.purge(ctx, messagev1.Subject(tenantID, channelID)); err != nil {
		return err
	}
	s.stats.forget(tenantID)
	return nil
}

// PurgeTenant implements channel.Messages: one purge with the tenant's wildcard.
func (s *Stream) PurgeTenant(ctx context.Context, tenantID string) error {
	if err := s.purge(ctx, messagev1.Subject(tenantID, "*")); err != nil {
		return err
	}
	s.stats.forget(tenantID)
	return nil
}

func (s *Stream) purge(ctx context.Context, subject string, opts ...jetstream.StreamPurgeOpt) error {
	if err := s.s.Purge(ctx, append([]jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subject)}, opts...)...); err != nil {
		return unavailable("purging "+subject, err)
	}
	return nil
}

// subjectCounts returns the number of stored messages of each subject matching filter
// (one stream info request; subjects without messages are absent).
func (s *Stream) subjectCounts(ctx context.Context, filter string) (map[string]uint64, error) {
	info, err := s.s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, unavailable("stream info", err)
	}
	return info.State.Subjects, nil
}

// unavailable classifies a failed stream request: the caller may retry.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", channel.ErrUnavailable, what, err)
}
