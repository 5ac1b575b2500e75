// natsload measures NATS request-reply to one subject: C goroutines send requests for D
// and it prints requests per second and latency percentiles. `make bench` runs it next to
// wrk on the gateway, so the gateway's cost is a ratio measured in one run.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/nats-io/nats.go/micro"
)

type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ",") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", envOr("NATS_URL", nats.DefaultURL), "NATS URL")
	subject := flag.String("subject", "", "request subject (required)")
	data := flag.String("data", "", "request body")
	conc := flag.Int("c", 64, "concurrent requesters")
	dur := flag.Duration("d", 10*time.Second, "duration")
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout")
	creds := flag.String("creds", os.Getenv("NATS_CREDS"), "NKey seed or creds file (the fleet's: $DATA_DIR/nats/nkeys/gateway.nk)")
	as := flag.String("as", natsperm.Gateway, "component whose inbox prefix replies use (with -creds)")
	var headers headerFlags
	flag.Var(&headers, "H", "header as Name:value (repeatable)")
	flag.Parse()
	if *subject == "" {
		flag.Usage()
		os.Exit(2)
	}

	opts := []nats.Option{nats.Name("natsload")}
	if *creds != "" {
		seed, err := nats.NkeyOptionFromSeed(*creds)
		if err != nil {
			log.Fatal(err)
		}
		opts = append(opts, seed, nats.CustomInboxPrefix(natsperm.InboxPrefix(*as)))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	hdr := nats.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			log.Fatalf("header %q is not Name:value", h)
		}
		hdr.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	request := func() error {
		msg := &nats.Msg{Subject: *subject, Data: []byte(*data), Header: hdr}
		reply, err := nc.RequestMsg(msg, *timeout)
		if err != nil {
			return err
		}
		if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
			return fmt.Errorf("error reply %s: %s", code, reply.Header.Get(micro.ErrorHeader))
		}
		return nil
	}
	if err := request(); err != nil {
		log.Fatalf("warm-up request: %v", err)
	}

	var errs atomic.Int64
	lat := make([][]time.Duration, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for g := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<14)
			for t0 := time.Now(); t0.Before(deadline); t0 = time.Now() {
				if request() != nil {
					errs.Add(1)
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[g] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	fmt.Printf("natsload %s c=%d d=%s: %.0f req/s  p50=%s p99=%s max=%s  ok=%d errors=%d\n",
		*subject, *conc, *dur, float64(len(all))/elapsed.Seconds(),
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond),
		pct(1).Round(time.Microsecond), len(all), errs.Load())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
