// Package service is the one composition root of every service binary: it reads the
// configuration, opens the service's table, connects to NATS and JetStream, starts the
// micro service with metrics, lets the service build its domain and endpoints (Spec.Setup),
// runs the tenant-deletion cascade beside it, and stops all of it in order. A service's
// main is service.Main(spec).
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/platform"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/cascade"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/logx"
	"github.com/artcafe-ai/pubsub/services/kit/metrics"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
	"github.com/artcafe-ai/pubsub/services/kit/run"
	"github.com/artcafe-ai/pubsub/services/kit/store"
)

// Spec is what makes one service different from another.
type Spec struct {
	// Name is the service's folder name: the micro service name, the metrics and log
	// component, and the NATS connection name ("tenant").
	Name string
	// Description is the micro service's description (`nats micro info`).
	Description string
	// ContractVersion is the Version of the service's contracts/<name>v1 package.
	ContractVersion string
	// Table is the name of the service's one table.
	Table string
	// Setup builds the domain on deps and registers its endpoints on deps.Micro. It
	// returns the purge of a deleted tenant, which the cascade consumer calls.
	Setup func(deps Deps) (cascade.Purger, error)
}

// Deps is what Setup builds a service from. Everything in it lives until the service
// has stopped answering requests.
type Deps struct {
	Table     store.Table
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	Client    *natsrpc.Client // for calls to other services
	Server    *natsrpc.Server // serves the endpoints (natsx.Handle)
	Micro     micro.Service   // the endpoints go here (natsx.AddEndpoints)
	Log       zerolog.Logger
	// Metrics is the registry served at METRICS_ADDR, for the service's own metrics
	// (low-cardinality labels only).
	Metrics prometheus.Registerer
	// Go registers long-running work of the service's own (a watcher) to run beside the
	// micro service and the cascade once Setup has returned. Its context ends at
	// shutdown, after the requests in flight have been answered and before NATS drains
	// and the store closes; an error other than context.Canceled stops the process, as a
	// failing cascade does. Call it only during Setup.
	Go func(name string, fn func(ctx context.Context) error)
	// Replicas is the replica count for the streams and buckets the service creates
	// (NATS_JS_REPLICAS; at least 1).
	Replicas int
}

// Shutdown and startup bounds.
const (
	inflightTimeout = 10 * time.Second // requests in flight after the micro service stops
	drainTimeout    = 5 * time.Second
	startupTimeout  = 30 * time.Second // for NATS / JetStream to answer at start
)

// Exit codes of Main.
const (
	exitFailure = 1
	exitConfig  = 2
)

// Main runs the service until SIGINT or SIGTERM and then returns; it exits the process
// with 2 for a configuration error and 1 when the service fails.
func Main(spec Spec) {
	if code := exitCode(context.Background(), spec, os.Stderr); code != 0 {
		os.Exit(code)
	}
}

// exitCode is Main up to the exit; tests cancel ctx where Main gets a signal.
func exitCode(ctx context.Context, spec Spec, stderr io.Writer) int {
	var cfg config.Service
	if err := config.Load(&cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		return exitConfig
	}
	log, flush := logx.New(spec.Name, cfg.Level, cfg.Format)
	defer flush()
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	err := Serve(ctx, spec, cfg, log)
	stop()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg(spec.Name + " service failed")
		return exitFailure
	}
	log.Info().Msg(spec.Name + " service stopped")
	return 0
}

// gcPercent is the GC target a service runs with unless GOGC is set. A service's live
// heap is a few MB, so with Go's default of 100 every few MB of request garbage started
// a collection (about 18 a second per 10k requests a second), each scanning every
// worker's stack; 400 collects a quarter as often for a few more MB of heap.
const gcPercent = 400

// tuneGC applies gcPercent when the environment leaves GOGC unset (GOGC still wins).
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// Serve runs the service described by spec with cfg until ctx ends (nil) or something
// fails (the error). On the way out, the store closes last: after the micro service has
// stopped, the requests in flight have been answered, the cascade has stopped and NATS
// has drained.
func Serve(ctx context.Context, spec Spec, cfg config.Service, log zerolog.Logger) error {
	if spec.Setup == nil {
		return fmt.Errorf("%s service: the spec has no Setup", spec.Name)
	}
	log.Info().Str("version", buildinfo.Version).Str("git_sha", buildinfo.GitSHA).Msg(spec.Name + " service starting")

	table, err := store.Open(ctx, cfg.Store, spec.Table)
	if err != nil {
		return fmt.Errorf("cannot open the store: %w", err)
	}
	defer func() {
		if err := table.Close(); err != nil {
			log.Warn().Err(err).Msg("closing the store")
		}
	}()
	log.Info().Str("backend", store.Backend(table)).Msg("store open")

	nc, err := natsx.Connect(cfg.NATS, spec.Name, log)
	if err != nil {
		return err
	}
	defer natsx.Drain(nc, drainTimeout)

	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	replicas := max(cfg.JSReplicas, 1)
	if err := ensureStream(ctx, js, replicas, log); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := natsrpc.NewServer(nc, log, natsrpc.WithObserver(metrics.RPCObserver(reg, spec.Name)))

	ms, err := natsx.AddService(nc, natsx.ServiceInfo{
		Name:            spec.Name,
		Description:     spec.Description,
		ContractVersion: spec.ContractVersion,
	})
	if err != nil {
		return fmt.Errorf("micro service: %w", err)
	}
	var work []task
	purge, err := spec.Setup(Deps{
		Table:     table,
		NATS:      nc,
		JetStream: js,
		Client:    natsrpc.NewClient(nc),
		Server:    srv,
		Micro:     ms,
		Log:       log,
		Metrics:   reg,
		Go:        func(name string, fn func(ctx context.Context) error) { work = append(work, task{name, fn}) },
		Replicas:  replicas,
	})
	if err == nil && purge == nil {
		err = fmt.Errorf("%s service: Setup returned no purge for the tenant-deletion cascade", spec.Name)
	}
	if err != nil {
		_ = ms.Stop()
		return err
	}
	consumer := cascade.New(js, spec.Name, purge, log)
	work = append([]task{{"tenant cascade", consumer.Run}}, work...)

	return run.Until(ctx, log,
		func(ctx context.Context) error { return metrics.Serve(ctx, cfg.MetricsAddr, reg, log) },
		func(ctx context.Context) error { return serveRequests(ctx, ms, srv, work, log) },
	)
}

// task is long-running work beside the micro service: the cascade and what Setup added
// with Deps.Go.
type task struct {
	name string
	run  func(ctx context.Context) error
}

// serveRequests runs the tasks (the cascade first) beside the micro service and, on
// stop, shuts down in order: no new requests, requests in flight answered, the tasks
// stopped; Serve then drains NATS and closes the store. A failing task stops the
// process; its error is returned.
func serveRequests(ctx context.Context, ms micro.Service, srv *natsrpc.Server, work []task, log zerolog.Logger) error {
	tctx, stopTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTasks()
	errc := make(chan error, len(work))
	for _, w := range work {
		go func() {
			err := w.run(tctx)
			switch {
			case err == nil && tctx.Err() == nil:
				err = fmt.Errorf("%s stopped by itself", w.name)
			case err != nil && !errors.Is(err, context.Canceled):
				err = fmt.Errorf("%s: %w", w.name, err)
			}
			errc <- err
		}()
	}

	var first error
	running := len(work)
	select {
	case <-ctx.Done():
	case first = <-errc:
		running--
	}
	if err := ms.Stop(); err != nil {
		log.Warn().Err(err).Msg("stopping the micro service")
	}
	wctx, cancel := context.WithTimeout(context.Background(), inflightTimeout)
	defer cancel()
	if err := srv.Wait(wctx); err != nil {
		log.Warn().Msg("requests still in flight at shutdown")
	}
	stopTasks()
	for ; running > 0; running-- {
		if err := <-errc; first == nil || errors.Is(first, context.Canceled) {
			first = err
		}
	}
	return first
}

// ensureStream creates the platform stream, waiting for NATS when the service started
// first (the connection retries in the background). A stop signal while waiting is a
// clean stop (context.Canceled).
func ensureStream(ctx context.Context, js jetstream.JetStream, replicas int, log zerolog.Logger) error {
	wctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		actx, acancel := context.WithTimeout(wctx, 2*time.Second)
		_, err := platform.EnsureStream(actx, js, replicas)
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
