// Package config loads a binary's settings from the environment (SPEC §2 names) with
// envconfig. Each binary declares one struct, embeds the parts it needs, and calls Load
// once in main; nothing else reads the environment.
package config

import (
	"fmt"

	"github.com/kelseyhightower/envconfig"
)

// Log is the logging part every binary embeds.
type Log struct {
	Level  string `envconfig:"LOG_LEVEL" default:"info"`
	Format string `envconfig:"LOG_FORMAT" default:"json"`
}

// NATS is the NATS connection part every binary embeds.
type NATS struct {
	URL     string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222"`
	Creds   string `envconfig:"NATS_CREDS"`
	TLSCA   string `envconfig:"NATS_TLS_CA"`
	TLSCert string `envconfig:"NATS_TLS_CERT"`
	TLSKey  string `envconfig:"NATS_TLS_KEY"`
	// JSReplicas is the replica count of every JetStream stream and KV bucket a
	// component creates (1 on one server, 3 on a three-node cluster). Existing streams
	// are never scaled down (contracts/replication).
	JSReplicas int `envconfig:"NATS_JS_REPLICAS" default:"1"`
}

// Store is the storage part of services.
type Store struct {
	Backend          string `envconfig:"STORE" default:"embedded"`
	DataDir          string `envconfig:"DATA_DIR" default:".data"`
	DynamoDBEndpoint string `envconfig:"DYNAMODB_ENDPOINT"`
	AWSRegion        string `envconfig:"AWS_REGION" default:"us-east-1"`
	TablePrefix      string `envconfig:"DYNAMODB_TABLE_PREFIX" default:"artcafe-"`
}

// Service is what every service binary reads.
type Service struct {
	Log
	NATS
	Store
	MetricsAddr string `envconfig:"METRICS_ADDR" default:"127.0.0.1:9090"`
}

// Load fills cfg (a pointer to a struct of tagged fields) from the environment.
func Load(cfg any) error {
	if err := envconfig.Process("", cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
