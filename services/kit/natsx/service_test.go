package natsx_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

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
