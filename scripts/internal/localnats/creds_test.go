package localnats

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
)

// Seeds are made once per data dir (0600), even by concurrent callers, and kept.
func TestEnsureCredentials(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	got := make([]Credentials, 4)
	errs := make([]error, 4)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = EnsureCredentials(dir) })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for _, c := range natsperm.Components() {
			if got[i].Public[c] == "" || got[i].Public[c] != got[0].Public[c] {
				t.Fatalf("caller %d: %s key %q, caller 0: %q", i, c, got[i].Public[c], got[0].Public[c])
			}
		}
	}
	for _, c := range natsperm.Components() {
		fi, err := os.Stat(got[0].SeedFile(c))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s seed mode %v", c, fi.Mode().Perm())
		}
	}
	again, err := EnsureCredentials(dir)
	if err != nil || again.Public[natsperm.Gateway] != got[0].Public[natsperm.Gateway] {
		t.Fatalf("second call: %v %v", again.Public, err)
	}
	if err := os.WriteFile(again.SeedFile(natsperm.Tenant), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCredentials(dir); err == nil {
		t.Fatal("a corrupt seed file was accepted")
	}
}

// With Users, a component connects with its seed file and keeps to its permissions;
// anonymous connections are the ops user.
func TestStartWithAuth(t *testing.T) {
	dataDir := t.TempDir()
	creds, err := EnsureCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	s, err := Start(Config{URL: url, StoreDir: t.TempDir(), Users: creds.Public})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()

	seed, err := nats.NkeyOptionFromSeed(creds.SeedFile(natsperm.Tenant))
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 4)
	nc, err := nats.Connect(url, seed, nats.CustomInboxPrefix(natsperm.InboxPrefix(natsperm.Tenant)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("tenant with its seed: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("svc.agent.v1.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		t.Logf("as expected: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the tenant user subscribed to the agent service's subjects")
	}

	anon, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("anonymous (ops) connection: %v", err)
	}
	defer anon.Close()
	if _, err := nats.Connect(url, nats.UserInfo("gateway", "")); err == nil {
		t.Fatal("a user name without a key was accepted")
	}
}
