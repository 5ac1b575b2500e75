package natsx_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/artcafe-ai/pubsub/contracts/natsrpc"
	"github.com/artcafe-ai/pubsub/contracts/natsrpc/natsrpctest"
	"github.com/artcafe-ai/pubsub/services/kit/buildinfo"
	"github.com/artcafe-ai/pubsub/services/kit/natsx"
)

func TestAddServiceReportsVersionAndMetadata(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	svc, err := natsx.AddService(nc, natsx.ServiceInfo{Name: "demo", Description: "a demo", ContractVersion: "1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()

	reply, err := nc.Request("$SRV.INFO.demo", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "demo" || info.Version != buildinfo.Version || info.Description != "a demo" {
		t.Fatalf("info %+v", info.ServiceIdentity)
	}
	md := info.Metadata
	if md["contract_version"] != "1.2.3" || md["git_sha"] != buildinfo.GitSHA || md["go_version"] == "" {
		t.Fatalf("metadata %v", md)
	}
}

type echo struct {
	Text string `json:"text"`
}

func echoText(_ context.Context, req *echo) (*echo, error) { return req, nil }

func TestAddEndpoints(t *testing.T) {
	ns := natsrpctest.Server(t)
	nc := natsrpctest.Connect(t, ns)
	ms, err := natsx.AddService(nc, natsx.ServiceInfo{Name: "demo", ContractVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ms.Stop() }()
	srv := natsrpc.NewServer(nc, zerolog.Nop())
	if err := natsx.AddEndpoints(ms, "svc.demo.v1",
		natsx.Handle(srv, "one", echoText),
		natsx.Handle(srv, "two", echoText),
	); err != nil {
		t.Fatal(err)
	}

	var out echo
	if err := natsrpc.NewClient(nc).Call(context.Background(), "svc.demo.v1.two", echo{Text: "hi"}, &out); err != nil || out.Text != "hi" {
		t.Fatalf("call: %+v, %v", out, err)
	}
	var subjects []string
	for _, e := range ms.Info().Endpoints {
		subjects = append(subjects, e.Name+" "+e.Subject)
	}
	slices.Sort(subjects)
	if want := []string{"one svc.demo.v1.one", "two svc.demo.v1.two"}; !slices.Equal(subjects, want) {
		t.Fatalf("endpoints %q, want %q", subjects, want)
	}

	// micro refuses an invalid name; the error says which endpoint.
	err = natsx.AddEndpoints(ms, "svc.demo.v1", natsx.Handle(srv, "three", echoText), natsx.Handle(srv, "bad name!", echoText))
	if err == nil || !strings.Contains(err.Error(), "bad name!") {
		t.Fatalf("invalid endpoint: %v", err)
	}
}
