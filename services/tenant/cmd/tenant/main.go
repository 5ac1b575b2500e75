// Command tenant runs the tenant service: tenants, members, API keys and the lookups the
// gateway authenticates with, as a NATS micro service (svc.tenant.v1.*) on its own table.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/contracts/tenantv1"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/logx"
	"github.com/artcafe-ai/pubsub/services/kit/metrics"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/run"
	"github.com/artcafe-ai/pubsub/services/kit/store"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/events"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/natsapi"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/repo"
	"github.com/artcafe-ai/pubsub/services/tenant/internal/tenant"
)

// Config is everything the tenant service reads from the environment.
type Config struct {
	config.Service
}

// Shutdown bounds.
const (
	inflightTimeout = 10 * time.Second // requests in flight after the micro service stops
	drainTimeout    = 5 * time.Second
	startupTimeout  = 30 * time.Second // for NATS / JetStream to answer at start
)

func main() {
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "tenant: %v\n", err)
		os.Exit(2)
	}
	log, flush := logx.New(tenantv1.Service, cfg.Level, cfg.Format)
	defer flush()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := serve(ctx, cfg, log)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg("tenant service failed")
		flush()
		os.Exit(1)
	}
	log.Info().Msg("tenant service stopped")
}

func serve(ctx context.Context, cfg Config, log zerolog.Logger) error {
	log.Info().Str("version", buildinfo.Version).Str("git_sha", buildinfo.GitSHA).Msg("tenant service starting")

	table, err := store.Open(ctx, cfg.Store, repo.Table)
	if err != nil {
		return fmt.Errorf("cannot open the store: %w", err)
	}
	defer func() {
		if err := table.Close(); err != nil {
			log.Warn().Err(err).Msg("closing the store")
		}
	}()
	log.Info().Str("backend", store.Backend(table)).Msg("store open")

	nc, err := natsx.Connect(cfg.NATS, "tenant", log)
	if err != nil {
		return err
	}
	defer natsx.Drain(nc, drainTimeout)

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := ensureStream(ctx, js, log); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := natsrpc.NewServer(nc, log, natsrpc.WithObserver(metrics.RPCObserver(reg, tenantv1.Service)))
	svc := tenant.NewService(repo.New(table), events.NewPublisher(nc, js, log))

	ms, err := natsx.AddService(nc, natsx.ServiceInfo{
		Name:            tenantv1.Service,
		Description:     "tenants, members, API keys and authentication lookups",
		ContractVersion: tenantv1.Version,
	})
	if err != nil {
		return fmt.Errorf("micro service: %w", err)
	}
	if err := natsapi.Register(ms, srv, svc); err != nil {
		_ = ms.Stop()
		return err
	}
	cascade := events.NewCascade(js, svc.Purge, log)

	return run.Until(ctx, log,
		func(ctx context.Context) error { return metrics.Serve(ctx, cfg.MetricsAddr, reg, log) },
		func(ctx context.Context) error { return serveRequests(ctx, ms, srv, cascade, log) },
	)
}

// serveRequests runs the cascade beside the micro service and, on stop, shuts down in
// order: no new requests, requests in flight answered, the cascade stopped; the caller
// then drains NATS and closes the store. A failing cascade stops the process.
func serveRequests(ctx context.Context, ms micro.Service, srv *natsrpc.Server, cascade *events.Cascade, log zerolog.Logger) error {
	cctx, stopCascade := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCascade()
	cerrc := make(chan error, 1)
	go func() { cerrc <- cascade.Run(cctx) }()

	var cerr error
	select {
	case <-ctx.Done():
	case cerr = <-cerrc:
		cerrc = nil
	}
	if err := ms.Stop(); err != nil {
		log.Warn().Err(err).Msg("stopping the micro service")
	}
	wctx, cancel := context.WithTimeout(context.Background(), inflightTimeout)
	defer cancel()
	if err := srv.Wait(wctx); err != nil {
		log.Warn().Msg("requests still in flight at shutdown")
	}
	stopCascade()
	if cerrc != nil {
		cerr = <-cerrc
	}
	return cerr
}

// ensureStream creates the platform stream, waiting for NATS when the service started
// first (the connection retries in the background). A stop signal while waiting is a
// clean stop (context.Canceled).
func ensureStream(ctx context.Context, js jetstream.JetStream, log zerolog.Logger) error {
	wctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		actx, acancel := context.WithTimeout(wctx, 2*time.Second)
		_, err := platform.EnsureStream(actx, js)
		acancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() != nil:
			return fmt.Errorf("platform stream %s not available after %s: %w", platform.Stream, startupTimeout, err)
		case attempt == 0:
			log.Warn().Err(err).Msg("waiting for NATS JetStream")
		}
		select {
		case <-wctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
