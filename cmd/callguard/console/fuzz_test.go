package console

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzFormUntil: whatever is typed in an expiry field, the answer is
// empty, an error, or an RFC 3339 time CallerCommand can read.
func FuzzFormUntil(f *testing.F) {
	for _, s := range []string{"", "2026-12-31T18:00", "2026-12-31", "2026-12-31T18:00:00Z", "2026-12-31 18:00", "tomorrow", "2026-02-30"} {
		f.Add(s)
	}
	s := &Server{d: Deps{Zone: time.FixedZone("MSK", 3*3600)}}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := s.formUntil(in)
		if err != nil || out == "" {
			return
		}
		if _, perr := time.Parse(time.RFC3339, out); perr != nil {
			t.Fatalf("formUntil(%q) = %q, not RFC 3339: %v", in, out, perr)
		}
	})
}

// FuzzPickLang: any Accept-Language or cookie gives en or ru.
func FuzzPickLang(f *testing.F) {
	for _, s := range []string{"", "ru-RU,ru;q=0.9,en;q=0.8", "de", "*", "en;q=0", "ru;q=abc", "zz-ZZ-x-private"} {
		f.Add(s, "")
	}
	f.Add("en", "ru")
	f.Fuzz(func(t *testing.T, accept, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/console/", nil)
		r.Header.Set("Accept-Language", accept)
		if cookie != "" && !strings.ContainsAny(cookie, ";\r\n\x00") {
			r.Header.Set("Cookie", langCookie+"="+cookie)
		}
		if got := pickLang(r); got != "en" && got != "ru" {
			t.Fatalf("pickLang(%q, %q) = %q", accept, cookie, got)
		}
	})
}

func TestServeOwnListener(t *testing.T) {
	r := newRig(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.srv.Serve(ctx, ln) }()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	res, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/" {
		t.Errorf("GET /: %d to %q, want 303 to /console/", res.StatusCode, res.Header.Get("Location"))
	}
	res, err = c.Get("http://" + ln.Addr().String() + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Security-Policy") != CSP {
		t.Errorf("sign-in on the own listener: %d", res.StatusCode)
	}
	if res, err := c.Get("http://" + ln.Addr().String() + "/v1/whitelist"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET /v1/whitelist on the console's listener: %d, want 404", res.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// FuzzStaticHeaders: whatever a browser sends as Accept-Encoding and
// If-None-Match, reading them does not panic, an explicit gzip;q=0 is
// never gzip, and a header that names the content's tag matches.
func FuzzStaticHeaders(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip;q=0", "*;q=0, gzip;q=0.5", `W/"abc", "def"`, ";;,=q", "gzip;q=NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if acceptsGzip(in+", gzip;q=0") && !strings.Contains(strings.ToLower(in), "gzip") {
			t.Errorf("acceptsGzip(%q + gzip;q=0) = true", in)
		}
		if !matchesETag(in+`, "abc"`, "abc") {
			t.Errorf("matchesETag(%q + \"abc\") = false", in)
		}
		_ = matchesETag(in, "abc")
	})
}
