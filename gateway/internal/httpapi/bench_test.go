package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/artcafe-ai/pubsub/contracts/plans"
)

// BenchmarkGetTenant measures GET /api/v1/tenants/{id} over a real listener: token
// verification, cached membership, one NATS request to a tenant endpoint, JSON out.
// Run: go test -run '^$' -bench GetTenant -benchtime 5s ./internal/httpapi/
func BenchmarkGetTenant(b *testing.B) {
	e := newEnv(b)
	tenantID, _ := e.seedTenant("alice")
	benchmarkGet(b, e, "/api/v1/tenants/"+tenantID, map[string]string{"Authorization": "Bearer " + e.userToken("alice")})
}

// BenchmarkGetAgent measures GET /api/v1/agents/{id} over a real listener: user token,
// tenant resolved from x-tenant-id (cached membership), path id normalised, one NATS
// request to an agent endpoint, the agent relayed as it came.
// Run: go test -run '^$' -bench GetAgent -benchtime 5s ./internal/httpapi/
func BenchmarkGetAgent(b *testing.B) {
	e := newEnv(b, withMetering())
	tenantID, _ := e.seedTenant("alice")
	e.setTier(tenantID, plans.Enterprise) // metered; the per-minute limit would refuse a bench
	agentID := e.seedAgent(tenantID, "", "bench")
	benchmarkGet(b, e, "/api/v1/agents/"+agentID, map[string]string{
		"Authorization": "Bearer " + e.userToken("alice"),
		"X-Tenant-Id":   tenantID,
	})
}

// BenchmarkPublish measures POST /api/v1/channels/{id}/messages with a 200-byte body
// over a real listener: user token, tenant from x-tenant-id (cached membership), the
// channel from the gateway's cache, one JetStream publish to the real MESSAGES stream,
// stored (file storage) before the reply. No service is called once the caches are warm.
// Run: go test -run '^$' -bench Publish -benchtime 5s ./internal/httpapi/
func BenchmarkPublish(b *testing.B) {
	e := newEnv(b, withMetering())
	tenantID, _ := e.seedTenant("alice")
	e.setTier(tenantID, plans.Enterprise) // metered; the quotas would refuse a bench
	channelID := e.seedChannel(tenantID, "public", 3600)
	prefix := `{"kind":"reading","sensor":"s-0042","value":21.5,"unit":"C","tags":["lab","north"],"seq":1234567,"note":"`
	body := prefix + strings.Repeat("x", 200-len(prefix)-2) + `"}` // 200 bytes
	benchmarkRequest(b, e, http.MethodPost, "/api/v1/channels/"+channelID+"/messages", []byte(body), map[string]string{
		"Authorization": "Bearer " + e.userToken("alice"),
		"X-Tenant-Id":   tenantID,
		"Content-Type":  "application/json",
	})
}

// benchmarkGet runs GETs of path with headers, ~64 at a time, each expecting 200.
func benchmarkGet(b *testing.B, e *env, path string, headers map[string]string) {
	b.Helper()
	benchmarkRequest(b, e, http.MethodGet, path, nil, headers)
}

// benchmarkRequest runs requests of method on path with body and headers, ~64 at a
// time, each expecting 200.
func benchmarkRequest(b *testing.B, e *env, method, path string, body []byte, headers map[string]string) {
	b.Helper()
	url := e.serve() + path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	get := func() error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil { // warm the caches
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32) // ~64 concurrent requests on 2 cores, like the wrk comparison
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
