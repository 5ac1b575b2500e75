package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/services/kit/config"
)

// unset removes key for the duration of the test (t.Setenv restores it afterwards); an
// empty but set variable would count as set and hide the default.
func unset(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

var allKeys = []string{
	"LOG_LEVEL", "LOG_FORMAT", "NATS_URL", "NATS_CREDS", "NATS_TLS_CA", "NATS_TLS_CERT", "NATS_TLS_KEY", "NATS_JS_REPLICAS",
	"STORE", "DATA_DIR", "DYNAMODB_ENDPOINT", "AWS_REGION", "DYNAMODB_TABLE_PREFIX", "METRICS_ADDR",
}

func TestLoadDefaults(t *testing.T) {
	unset(t, allKeys...)
	var cfg config.Service
	if err := config.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	want := config.Service{
		Log:         config.Log{Level: "info", Format: "json"},
		NATS:        config.NATS{URL: "nats://127.0.0.1:4222", JSReplicas: 1},
		Store:       config.Store{Backend: "embedded", DataDir: ".data", AWSRegion: "us-east-1", TablePrefix: "artcafe-"},
		MetricsAddr: "127.0.0.1:9090",
	}
	if cfg != want {
		t.Errorf("defaults = %+v\nwant       %+v", cfg, want)
	}
}

// The SPEC §2 names are read as they are, with no prefix, through the embedded parts.
func TestLoadFromEnvironment(t *testing.T) {
	unset(t, allKeys...)
	env := map[string]string{
		"LOG_LEVEL":             "debug",
		"LOG_FORMAT":            "console",
		"NATS_URL":              "nats://nats.internal:4222",
		"NATS_CREDS":            "/run/secrets/svc.creds",
		"NATS_TLS_CA":           "/tls/ca.pem",
		"NATS_TLS_CERT":         "/tls/cert.pem",
		"NATS_TLS_KEY":          "/tls/key.pem",
		"NATS_JS_REPLICAS":      "3",
		"STORE":                 "dynamodb",
		"DATA_DIR":              "/var/lib/artcafe",
		"DYNAMODB_ENDPOINT":     "http://127.0.0.1:4567",
		"AWS_REGION":            "eu-west-1",
		"DYNAMODB_TABLE_PREFIX": "test-",
		"METRICS_ADDR":          "127.0.0.1:9191",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cfg config.Service
	if err := config.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	want := config.Service{
		Log: config.Log{Level: "debug", Format: "console"},
		NATS: config.NATS{URL: "nats://nats.internal:4222", Creds: "/run/secrets/svc.creds",
			TLSCA: "/tls/ca.pem", TLSCert: "/tls/cert.pem", TLSKey: "/tls/key.pem", JSReplicas: 3},
		Store: config.Store{Backend: "dynamodb", DataDir: "/var/lib/artcafe", DynamoDBEndpoint: "http://127.0.0.1:4567",
			AWSRegion: "eu-west-1", TablePrefix: "test-"},
		MetricsAddr: "127.0.0.1:9191",
	}
	if cfg != want {
		t.Errorf("loaded = %+v\nwant     %+v", cfg, want)
	}
}

// A binary embeds the parts it needs beside its own fields.
func TestLoadCustomStruct(t *testing.T) {
	unset(t, allKeys...)
	unset(t, "HTTP_ADDR", "MAX_CONNS")
	type gateway struct {
		config.Log
		config.NATS
		HTTPAddr string `envconfig:"HTTP_ADDR" default:":8000"`
		MaxConns int    `envconfig:"MAX_CONNS" default:"10"`
	}
	t.Setenv("NATS_URL", "nats://elsewhere:4222")
	t.Setenv("MAX_CONNS", "42")
	var cfg gateway
	if err := config.Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != ":8000" || cfg.MaxConns != 42 || cfg.URL != "nats://elsewhere:4222" || cfg.Level != "info" {
		t.Errorf("loaded = %+v", cfg)
	}

	t.Setenv("MAX_CONNS", "many")
	err := config.Load(&cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "config:") || !strings.Contains(err.Error(), "MAX_CONNS") {
		t.Errorf("bad integer: err = %v, want a config error naming MAX_CONNS", err)
	}

	if err := config.Load(cfg); err == nil {
		t.Error("Load of a non-pointer succeeded")
	}
}
