// Command gateway is the public entry point of ArtCafe PubSub: HTTP in, NATS requests to
// the services out. This file is the composition root: configuration, logger, NATS,
// authentication, the HTTP app, the metrics listener and graceful shutdown.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/gateway/internal/auth"
	"github.com/artcafe-ai/pubsub/gateway/internal/config"
	"github.com/artcafe-ai/pubsub/gateway/internal/hints"
	"github.com/artcafe-ai/pubsub/gateway/internal/httpapi"
	"github.com/artcafe-ai/pubsub/gateway/internal/limits"
	"github.com/artcafe-ai/pubsub/gateway/internal/messaging"
	"github.com/artcafe-ai/pubsub/gateway/internal/metering"
	"github.com/artcafe-ai/pubsub/gateway/internal/realtime"
	"github.com/artcafe-ai/pubsub/gateway/internal/sshkeylookup"
	"github.com/artcafe-ai/pubsub/gateway/internal/tenantlookup"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/logx"
	"github.com/artcafe-ai/pubsub/services/kit/metrics"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/run"
)

// Shutdown budgets: requests in flight get this long to finish, then NATS is drained.
const (
	httpShutdownTimeout = 10 * time.Second
	natsDrainTimeout    = 5 * time.Second
	usageFlushTimeout   = 5 * time.Second
)

func main() {
	if err := start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func start(ctx context.Context) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log, flush := logx.New("gateway", cfg.Level, cfg.Format)
	defer flush()
	log.Info().Str("version", buildinfo.Version).Str("git_sha", buildinfo.GitSHA).Msg("starting")

	// Bind first: a busy port is a clear start-up failure, not a later surprise.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()

	nc, err := natsx.Connect(cfg.NATS, "gateway", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	rpc := natsrpc.NewClient(nc, natsrpc.WithDefaultTimeout(cfg.UpstreamTimeout))

	// Agent tokens stand while their SSH key does (asked of the sshkey service, cached).
	creds, err := auth.NewCredentials(sshkeylookup.New(rpc), auth.CredentialsConfig{
		CacheTTL:      auth.MaxCacheTTL,
		LookupTimeout: cfg.UpstreamTimeout,
	}, log.With().Str("part", "auth").Logger())
	if err != nil {
		return err
	}
	authn, err := auth.New(auth.Config{
		JWTSecret:      []byte(cfg.JWTSecret),
		JWKSURL:        cfg.JWKSURL,
		Issuer:         cfg.Issuer,
		Audience:       cfg.Audience,
		PlatformAdmins: cfg.PlatformAdmins,
		CacheTTL:       auth.MaxCacheTTL,
		APIKeyCacheTTL: auth.MaxAPIKeyCacheTTL,
		LookupTimeout:  cfg.UpstreamTimeout,
		Agents:         creds,
	}, tenantlookup.New(rpc), log.With().Str("part", "auth").Logger())
	if err != nil {
		return err
	}
	defer authn.Close()

	// The channel cache (fed by every tenant's channel events) and the publisher: a warm
	// publish is authentication from cache, the channel from cache, one JetStream publish.
	channels, err := messaging.NewChannels(messaging.RPCSource(rpc), messaging.ChannelsConfig{
		TTL:           messaging.MaxTTL,
		NotFoundTTL:   messaging.MaxNotFoundTTL,
		LookupTimeout: cfg.UpstreamTimeout,
		Log:           log.With().Str("part", "channels").Logger(),
	})
	if err != nil {
		return err
	}
	stopChannels, err := channels.Subscribe(nc)
	if err != nil {
		return err
	}
	defer stopChannels()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Usage metering: sums in memory, one event a second to USAGE_EVENTS. Its source id
	// also names this gateway in the shared connection counts.
	meter, err := metering.New(js, nc, metering.Config{Log: log.With().Str("part", "usage").Logger(), Metrics: reg, Replicas: cfg.JSReplicas})
	if err != nil {
		return err
	}
	meter.Start()
	// Rates and quotas shared by every gateway replica (JetStream KV; fail open).
	limitMetrics, err := limits.NewMetrics(reg)
	if err != nil {
		return err
	}
	lim, err := limits.New(js, limits.Config{Log: log.With().Str("part", "limits").Logger(), Metrics: limitMetrics, Replicas: cfg.JSReplicas})
	if err != nil {
		return err
	}
	conns, err := limits.NewConnections(js, limits.ConnectionsConfig{Source: meter.Source(), Peak: meter.Connections,
		Log: log.With().Str("part", "limits").Logger(), Metrics: limitMetrics, Replicas: cfg.JSReplicas})
	if err != nil {
		return err
	}
	conns.Start()
	defer conns.Close()

	publisher, err := messaging.NewPublisher(js, channels, lim, messaging.PublisherConfig{
		Timeout: cfg.UpstreamTimeout,
		Log:     log.With().Str("part", "publish").Logger(),
		Usage:   meter,
	})
	if err != nil {
		return err
	}

	// WebSocket sessions: live fan-out, publishing through the same publisher, presence.
	hub, err := realtime.New(realtime.Deps{
		NATS: nc, JetStream: js, Auth: authn, Channels: channels, Publisher: publisher,
		Log: log.With().Str("part", "realtime").Logger(), Metrics: reg,
		Connections: conns, Usage: meter,
	}, realtime.Config{AllowedOrigins: cfg.CORSAllowedOrigins, GatewayID: meter.Source(),
		PresenceReplicas: cfg.JSReplicas})
	if err != nil {
		return err
	}

	// Tenant, agent and SSH-key changes (members, key rotation, suspension, deletion,
	// revocation) reach the caches at once, then the WebSocket sessions they concern; the
	// caches' TTLs bound the staleness when an event is missed.
	stopHints, err := hints.Subscribe(nc, hints.Caches{Auth: authn, Credentials: creds, Sessions: hub, Log: log})
	if err != nil {
		return err
	}
	defer stopHints()

	app, err := httpapi.New(httpapi.Deps{
		Log:                log,
		NATS:               nc,
		RPC:                rpc,
		Auth:               authn,
		Channels:           channels,
		Publisher:          publisher,
		Realtime:           hub,
		RateLimits:         lim,
		Usage:              meter,
		Metrics:            reg,
		Version:            buildinfo.Version,
		JWTSecret:          []byte(cfg.JWTSecret),
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		TrustedProxies:     cfg.TrustedProxies,
		BodyLimit:          cfg.BodyLimit,
		RequestTimeout:     cfg.RequestTimeout,
		UpstreamTimeout:    cfg.UpstreamTimeout,
	})
	if err != nil {
		return err
	}

	serveHTTP := func(ctx context.Context) error {
		log.Info().Str("addr", ln.Addr().String()).Msg("http listening")
		errc := make(chan error, 1)
		go func() { errc <- app.Listener(ln) }()
		select {
		case err := <-errc:
			return fmt.Errorf("http server: %w", err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		// WebSocket sessions are hijacked connections the HTTP server no longer tracks:
		// they are closed with 1001 (and their presence keys deleted) first.
		if err := hub.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("websocket sessions did not all close in time")
		}
		if err := app.ShutdownWithContext(sctx); err != nil {
			return fmt.Errorf("http shutdown: %w", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	}
	serveMetrics := func(ctx context.Context) error {
		return metrics.Serve(ctx, cfg.MetricsAddr, reg, log)
	}

	err = run.Until(ctx, log, serveHTTP, serveMetrics)
	// HTTP and the WebSocket sessions have stopped: nothing is metered any more. Flush
	// the last counts (SPEC §13: a graceful stop loses none), then close NATS.
	fctx, cancel := context.WithTimeout(context.Background(), usageFlushTimeout)
	_ = meter.Close(fctx) // logged by the meter
	cancel()
	// Let replies in flight arrive, then close NATS.
	natsx.Drain(nc, natsDrainTimeout)
	log.Info().Msg("stopped")
	return err
}
