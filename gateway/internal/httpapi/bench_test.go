package httpapi

import (
	"io"
	"net/http"
	"testing"
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
	e := newEnv(b)
	tenantID, _ := e.seedTenant("alice")
	agentID := e.seedAgent(tenantID, "", "bench")
	benchmarkGet(b, e, "/api/v1/agents/"+agentID, map[string]string{
		"Authorization": "Bearer " + e.userToken("alice"),
		"X-Tenant-Id":   tenantID,
	})
}

// benchmarkGet runs GETs of path with headers, ~64 at a time, each expecting 200.
func benchmarkGet(b *testing.B, e *env, path string, headers map[string]string) {
	b.Helper()
	url := e.serve() + path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	get := func() error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
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
