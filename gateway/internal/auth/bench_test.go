package auth

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The request path of a user with a warm membership cache: verify an HS256 token, then
// resolve the tenant from the header.
func BenchmarkAuthenticateAndResolveHS256(b *testing.B) {
	l := newFakeLookups()
	l.addMember(tenantA, "alice", "admin", "active")
	a, err := New(Config{JWTSecret: testSecret}, l, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok, err := a.MintUserToken("alice", "alice@example.com", "", nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	header := "Bearer " + tok
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			p, err := a.Authenticate(ctx, header, "")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.Resolve(ctx, p, tenantA); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The request path of an API key with a warm cache.
func BenchmarkAuthenticateAPIKey(b *testing.B) {
	l := newFakeLookups()
	l.addKey("art_bench", tenantA, "active")
	a, err := New(Config{JWTSecret: testSecret}, l, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			p, err := a.Authenticate(ctx, "", "art_bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.Resolve(ctx, p, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
