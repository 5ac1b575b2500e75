package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/artcafe-ai/pubsub/contracts/natsperm"
)

// committedDir is infra/nats from this package's folder.
var committedDir = filepath.Join("..", "..", "infra", "nats")

// The committed configs are exactly what the permission source generates.
func TestCommittedConfigsHaveNoDrift(t *testing.T) {
	for name, want := range Files() {
		got, err := os.ReadFile(filepath.Join(committedDir, name))
		if err != nil {
			t.Fatalf("%v (run `go run ./scripts/natsconf write`)", err)
		}
		if string(got) != want {
			t.Errorf("infra/nats/%s differs from contracts/natsperm: run `go run ./scripts/natsconf write`", name)
		}
	}
	entries, err := os.ReadDir(committedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := Files()[e.Name()]; !ok && strings.HasSuffix(e.Name(), ".conf") {
			t.Errorf("infra/nats/%s is not generated", e.Name())
		}
	}
}

// setKeys puts a public key for every component in the environment, as compose does.
func setKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, c := range natsperm.Components() {
		kp, err := nkeys.CreateUser()
		if err != nil {
			t.Fatal(err)
		}
		keys[c], _ = kp.PublicKey()
		t.Setenv(natsperm.NKeyEnv(c), keys[c])
	}
	return keys
}

func checkUsers(t *testing.T, opts *server.Options, keys map[string]string) {
	t.Helper()
	byKey := map[string]*server.NkeyUser{}
	for _, u := range opts.Nkeys {
		byKey[u.Nkey] = u
	}
	for c, k := range keys {
		u := byKey[k]
		if u == nil || u.Permissions == nil || u.Permissions.Publish == nil || len(u.Permissions.Subscribe.Allow) == 0 {
			t.Fatalf("%s: no user with bounded permissions for its key: %+v", c, u)
		}
	}
	if opts.NoAuthUser != natsperm.Ops {
		t.Fatalf("no_auth_user = %q", opts.NoAuthUser)
	}
}

// The compose config parses with the keys from the environment and turns JetStream on.
func TestSingleServerConfig(t *testing.T) {
	keys := setKeys(t)
	dir := t.TempDir()
	if err := write(dir); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream || opts.HTTPPort != 8222 || opts.Port != 4222 {
		t.Fatalf("jetstream %v http %d port %d", opts.JetStream, opts.HTTPPort, opts.Port)
	}
	checkUsers(t, opts, keys)
}

// A cluster node's config parses with its environment: TLS for clients and routes
// (routes verify certificates), three routes, JetStream.
func TestClusterConfig(t *testing.T) {
	keys := setKeys(t)
	tlsDir := t.TempDir()
	writeTestPKI(t, tlsDir)
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	t.Setenv("NATS_SERVER_TLS_CERT", filepath.Join(tlsDir, "server.pem"))
	t.Setenv("NATS_SERVER_TLS_KEY", filepath.Join(tlsDir, "server-key.pem"))
	t.Setenv("NATS_SERVER_TLS_CA", filepath.Join(tlsDir, "ca.pem"))
	t.Setenv("NATS_JS_STORE_DIR", t.TempDir())
	for i := 1; i <= 3; i++ {
		n := strconv.Itoa(i)
		t.Setenv("NATS_ROUTE_"+n, "nats-route://nats-"+n+".artcafe.internal:6222")
	}
	dir := t.TempDir()
	if err := write(dir); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-cluster.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "nats-1" || !opts.JetStream || opts.TLSConfig == nil {
		t.Fatalf("server name %q jetstream %v tls %v", opts.ServerName, opts.JetStream, opts.TLSConfig != nil)
	}
	if opts.Cluster.Name != "artcafe" || opts.Cluster.TLSConfig == nil || len(opts.Routes) != 3 {
		t.Fatalf("cluster %q tls %v routes %v", opts.Cluster.Name, opts.Cluster.TLSConfig != nil, opts.Routes)
	}
	checkUsers(t, opts, keys)
}

// env prints a usable .env: a seed and its public key per component and a JWT secret.
func TestEnv(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"env"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	vals := map[string]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vals[k] = v
		}
	}
	if len(vals["AUTH_JWT_SECRET"]) < 32 {
		t.Fatalf("AUTH_JWT_SECRET %q", vals["AUTH_JWT_SECRET"])
	}
	for _, c := range natsperm.Components() {
		kp, err := nkeys.FromSeed([]byte(vals[SeedEnv(c)]))
		if err != nil {
			t.Fatalf("%s seed: %v", c, err)
		}
		if pub, _ := kp.PublicKey(); pub != vals[natsperm.NKeyEnv(c)] {
			t.Fatalf("%s: public key %q does not match its seed", c, vals[natsperm.NKeyEnv(c)])
		}
	}
	if code := run([]string{"nope"}, &out, &errOut); code == 0 {
		t.Fatal("an unknown command succeeded")
	}
}

// writeTestPKI writes a CA and a server certificate signed by it.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats-1"},
		DNSNames: []string{"nats-1.artcafe.internal"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{
		"ca.pem":         {Type: "CERTIFICATE", Bytes: caDER},
		"server.pem":     {Type: "CERTIFICATE", Bytes: der},
		"server-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
