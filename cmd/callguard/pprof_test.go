package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprofOnlyWhenEnabled: /debug/pprof is served with GUARD_PPROF on a
// loopback metrics listener only; off, the metrics listener does not know
// the path; on a non-loopback listener, start is refused.
func TestPprofOnlyWhenEnabled(t *testing.T) {
	base := http.NewServeMux()
	base.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "m") })
	get := func(t *testing.T, h http.Handler, path string) int {
		t.Helper()
		srv := httptest.NewServer(h)
		defer srv.Close()
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tc := range []struct {
		name   string
		pprof  bool
		listen string
		want   int // status of /debug/pprof/; 0: refused at start
	}{
		{"off", false, "127.0.0.1:9780", 404},
		{"off, public listener", false, "0.0.0.0:9780", 404},
		{"on, loopback", true, "127.0.0.1:9780", 200},
		{"on, IPv6 loopback", true, "[::1]:9780", 200},
		{"on, localhost", true, "localhost:0", 200},
		{"on, all interfaces", true, "0.0.0.0:9780", 0},
		{"on, empty host", true, ":9780", 0},
		{"on, a LAN address", true, "192.168.1.10:9780", 0},
		{"on, metrics off", true, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := metricsHandler(Config{Pprof: tc.pprof, MetricsListen: tc.listen}, base)
			if tc.want == 0 {
				if err == nil || !strings.Contains(err.Error(), "GUARD_PPROF") {
					t.Fatalf("metricsHandler: %v, want a refusal naming GUARD_PPROF", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, h, "/debug/pprof/"); got != tc.want {
				t.Errorf("/debug/pprof/: %d, want %d", got, tc.want)
			}
			if got := get(t, h, "/debug/pprof/goroutine?debug=1"); got != tc.want {
				t.Errorf("/debug/pprof/goroutine: %d, want %d", got, tc.want)
			}
			if got := get(t, h, "/metrics"); got != 200 {
				t.Errorf("/metrics: %d, want 200", got)
			}
		})
	}
}
