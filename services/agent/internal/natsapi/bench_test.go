package natsapi_test

import (
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/agentv1"
)

// BenchmarkGet measures the get round trip over in-process NATS on the test store: the
// gateway's hop for GET /api/v1/agents/{id} (one store read, the stored JSON relayed).
func BenchmarkGet(b *testing.B) {
	f := start(b)
	ctx := user(tenantA)
	a := f.create(b, ctx, agentv1.CreateBody{
		Name: "bench", Description: "an agent of typical size",
		Capabilities: []agentv1.Capability{{Name: "search", Version: "1.0"}, {Name: "summarize"}},
		Metadata:     map[string]any{"team": "data", "region": "eu-west-1"},
	}).Agent
	req := agentv1.GetRequest{AgentID: a.ID}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out agentv1.AgentResponse
			if err := f.client.Call(ctx, agentv1.Subject(agentv1.OpGet), req, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				var out agentv1.AgentResponse
				if err := f.client.Call(ctx, agentv1.Subject(agentv1.OpGet), req, &out); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
