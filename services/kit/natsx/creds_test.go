package natsx_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
	"github.com/artcafe-ai/pubsub/services/kit/config"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

// TestConnectWithNKey: NATS_CREDS as a seed file and as the seed itself both
// authenticate against a server that knows only the public key; replies arrive under the
// component's inbox prefix, which is all its user may subscribe to.
func TestConnectWithNKey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	inbox := natsperm.InboxPrefix("tenant") + ".>"
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"echo"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"echo", inbox}},
			Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)

	file := filepath.Join(t.TempDir(), "tenant.nk")
	if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, creds := range map[string]string{"seed file": file, "inline seed": string(seed)} {
		t.Run(name, func(t *testing.T) {
			nc, err := natsx.Connect(config.NATS{URL: ns.ClientURL(), Creds: creds}, "tenant", zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub, err := nc.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			reply, err := nc.Request("echo", []byte("hi"), 5*time.Second)
			if err != nil {
				t.Fatalf("request through the permitted inbox: %v", err)
			}
			if string(reply.Data) != "hi" {
				t.Fatalf("reply %q", reply.Data)
			}
		})
	}

	t.Run("unknown key", func(t *testing.T) {
		other, _ := nkeys.CreateUser()
		otherSeed, _ := other.Seed()
		// RetryOnFailedConnect: the connection is handed back and never authenticates.
		nc, err := natsx.Connect(config.NATS{URL: ns.ClientURL(), Creds: string(otherSeed)}, "tenant", zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		time.Sleep(300 * time.Millisecond)
		if nc.IsConnected() {
			t.Fatal("a seed the server does not know connected")
		}
	})
	for name, creds := range map[string]string{"missing file": filepath.Join(t.TempDir(), "nope"), "bad seed": "SUnotaseed"} {
		t.Run(name, func(t *testing.T) {
			if _, err := natsx.Credentials(creds); err == nil {
				t.Fatalf("Credentials(%q) accepted", creds)
			}
		})
	}
}

// NATS_TLS_CA may be the PEM itself; a PEM value without a certificate is refused.
func TestConnectRejectsEmptyPEMCA(t *testing.T) {
	_, err := natsx.Connect(config.NATS{URL: "tls://127.0.0.1:1", TLSCA: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}, "tenant", zerolog.Nop())
	if err == nil {
		t.Fatal("a PEM value without a certificate was accepted")
	}
}
