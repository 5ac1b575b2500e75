// Package natsx connects a binary to NATS the way every component should: reconnect
// forever, buffer while disconnected, log connection events, optional credentials
// (NKey seed or creds file) and TLS, its own inbox prefix, and drain on stop.
package natsx

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/services/kit/config"
)

// ReconnectBuffer is how much outgoing data is kept while disconnected (8 MiB).
const ReconnectBuffer = 8 << 20

// Connect dials cfg.URL as name. The first connection attempt also retries in the
// background (RetryOnFailedConnect), so a binary may start before NATS does. Replies
// come to name's own inbox prefix (natsperm.InboxPrefix), the only inboxes its NATS user
// may read when the server enforces permissions.
func Connect(cfg config.NATS, name string, log zerolog.Logger) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.CustomInboxPrefix(natsperm.InboxPrefix(name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(ReconnectBuffer),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats connected")
		}),
		nats.ClosedHandler(func(_ *nats.Conn) {
			log.Info().Msg("nats connection closed")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats async error")
		}),
	}
	if cfg.Creds != "" {
		opt, err := Credentials(cfg.Creds)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCA != "" {
		opt, err := rootCAs(cfg.TLSCA)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", cfg.URL, err)
	}
	return nc, nil
}

// Credentials turns NATS_CREDS into a connect option (SPEC §2: a credentials file or an
// NKey seed). The value is either a user seed itself (SU…, as a secret store injects
// it) or a path: a file holding an NKey seed authenticates with that NKey, any other
// file is read as a JWT .creds file.
func Credentials(v string) (nats.Option, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "SU") && !strings.ContainsAny(v, `/\`) {
		kp, err := nkeys.FromSeed([]byte(v))
		if err != nil {
			return nil, errors.New("NATS_CREDS: the value looks like an NKey seed but is not a valid one")
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("NATS_CREDS: %w", err)
		}
		return nats.Nkey(pub, kp.Sign), nil
	}
	data, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("NATS_CREDS: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("SU")) {
		opt, err := nats.NkeyOptionFromSeed(v)
		if err != nil {
			return nil, fmt.Errorf("NATS_CREDS %s: %w", v, err)
		}
		return opt, nil
	}
	return nats.UserCredentials(v), nil
}

// rootCAs trusts the CA of NATS_TLS_CA: a file, or the PEM itself (as a secret store
// injects it into a container that has no file for it).
func rootCAs(v string) (nats.Option, error) {
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		return nats.RootCAs(v), nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(v)) {
		return nil, errors.New("NATS_TLS_CA: no certificate in the PEM value")
	}
	return nats.ClientTLSConfig(nil, func() (*x509.CertPool, error) { return pool, nil }), nil
}

// Drain drains nc (pending messages are handled, then the connection closes) and waits
// up to timeout for it to close.
func Drain(nc *nats.Conn, timeout time.Duration) {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		nc.Close()
	}
}
