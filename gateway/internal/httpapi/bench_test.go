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
	base := e.serve()
	auth := "Bearer " + e.userToken("alice")
	url := base + "/api/v1/tenants/" + tenantID
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	get := func() error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", auth)
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
	if err := get(); err != nil { // warm the membership cache
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
