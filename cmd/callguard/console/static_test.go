package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// getStatic fetches a static file with the given request headers, as is:
// no transparent decompression.
func getStatic(t *testing.T, r *rig, path string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestStaticFilesGzipAndETag(t *testing.T) {
	r := newRig(t, nil)
	for _, tc := range []struct{ path, file string }{
		{"/console/static/uPlot.iife.min.js", "assets/uPlot.iife.min.js"},
		{"/console/static/uPlot.min.css", "assets/uPlot.min.css"},
		{"/console/static/console.css", "static/console.css"},
		{"/console/static/console.js", "static/console.js"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			want, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			// A browser that takes gzip gets it, smaller, with the same content.
			res, body := getStatic(t, r, tc.path, map[string]string{"Accept-Encoding": "gzip, deflate, br"})
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("gzip-accepting GET: %d, Content-Encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
			}
			if !strings.Contains(res.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", res.Header.Get("Vary"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, want) {
				t.Fatalf("gunzipped body differs from %s (%v)", tc.file, err)
			}
			if len(body) >= len(want) {
				t.Errorf("gzip %d B, plain %d B", len(body), len(want))
			}
			t.Logf("%s: %d B, %d B gzipped on the wire", tc.file, len(want), len(body))
			etag := res.Header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) {
				t.Fatalf("ETag %q", etag)
			}

			// One that does not, or refuses it, gets the file as it is.
			for _, ae := range []string{"identity", "gzip;q=0, br", ""} {
				res, body = getStatic(t, r, tc.path, map[string]string{"Accept-Encoding": ae})
				if res.StatusCode != http.StatusOK || res.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
					t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, %d B", ae, res.StatusCode, res.Header.Get("Content-Encoding"), len(body))
				}
				if res.Header.Get("ETag") == "" || res.Header.Get("ETag") == etag {
					t.Errorf("Accept-Encoding %q: ETag %q, want its own beside the gzip's %q", ae, res.Header.Get("ETag"), etag)
				}
			}

			// A browser that has it: 304, no body, in either encoding.
			for _, ae := range []string{"gzip", "identity"} {
				res, body = getStatic(t, r, tc.path, map[string]string{"Accept-Encoding": ae, "If-None-Match": etag})
				if res.StatusCode != http.StatusNotModified || len(body) != 0 {
					t.Errorf("If-None-Match %s (%s): %d with %d B, want 304 and nothing", etag, ae, res.StatusCode, len(body))
				}
			}
			// Another content's tag does not match.
			res, _ = getStatic(t, r, tc.path, map[string]string{"If-None-Match": `"0123"`})
			if res.StatusCode != http.StatusOK {
				t.Errorf("stale If-None-Match: %d", res.StatusCode)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                     false,
		"gzip":                 true,
		"GZIP":                 true,
		"gzip, deflate, br":    true,
		"br;q=1.0, gzip;q=0.8": true,
		"gzip;q=0":             false,
		"gzip; q=0.0, *":       false,
		"*":                    true,
		"*;q=0":                false,
		"identity":             false,
		"x-gzip":               true,
		"deflate, br":          false,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}
