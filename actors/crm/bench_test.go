package crm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLookup is the lookup path against a local HTTP CRM: every call
// asked (no cache) and every call answered from the cache.
//
//	go test ./actors/crm -run '^$' -bench Lookup -benchtime 2000x
func BenchmarkLookup(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"vip":true,"name":"Ivan Petrov","segment":"private"}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"asked", 0}, {"cached", time.Hour}} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := New(Config{URL: srv.URL, Timeout: time.Second, CacheTTL: tc.ttl, NegativeTTL: tc.ttl, CacheSize: 1000}, time.Now, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if a := c.Lookup(ctx, "+7999"+strconv.Itoa(1000000+i%500)); a.Status != "hit" {
						b.Errorf("lookup %+v", a)
						return
					}
				}
			})
		})
	}
}
