package crm

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events/schema"
)

type lookups struct {
	mu  sync.Mutex
	got []string
	out []bool
}

func (l *lookups) CRMOut(out bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(l.out, out)
}

func (l *lookups) CRMLookup(r schema.CRMStatus, cached bool, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(r)
	if cached {
		s += "/cached"
	}
	l.got = append(l.got, s)
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newClient(t *testing.T, h http.HandlerFunc, mod func(*Config)) (*Client, *lookups, *fakeClock) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{URL: srv.URL + "/customers?token=s3cret", Token: "tok", Timeout: 150 * time.Millisecond,
		CacheTTL: time.Minute, NegativeTTL: 10 * time.Second, CacheSize: 100}
	if mod != nil {
		mod(&cfg)
	}
	obs := &lookups{}
	clk := &fakeClock{now: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	c, err := New(cfg, clk.Now, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, obs, clk
}

func TestLookup(t *testing.T) {
	jsonAnswer := func(status int, ct, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want Answer
	}{
		{"vip", jsonAnswer(200, "application/json; charset=utf-8", `{"vip":true,"name":"Ivan Petrov","segment":"private"}`),
			Answer{Status: schema.CRMHit, Customer: Customer{VIP: true, Name: "Ivan Petrov", Segment: "private"}}},
		{"customer not vip", jsonAnswer(200, "application/json", `{"segment":"retail","extra":[1,2]}`),
			Answer{Status: schema.CRMHit, Customer: Customer{Segment: "retail"}}},
		{"control characters cleaned", jsonAnswer(200, "application/json", `{"vip":true,"name":"Ivan\r\nX-Evil: 1\u202e","segment":"  gold  "}`),
			Answer{Status: schema.CRMHit, Customer: Customer{VIP: true, Name: "Ivan X-Evil: 1", Segment: "gold"}}},
		{"not found", jsonAnswer(404, "text/plain", "no such customer"), Answer{Status: schema.CRMMiss}},
		{"500", jsonAnswer(500, "application/json", `{"vip":true}`), Answer{Status: schema.CRMError}},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.com/", http.StatusFound)
		}, Answer{Status: schema.CRMError}},
		{"malformed JSON", jsonAnswer(200, "application/json", `{"vip": tru`), Answer{Status: schema.CRMError}},
		{"vip not a boolean", jsonAnswer(200, "application/json", `{"vip":"yes"}`), Answer{Status: schema.CRMError}},
		{"not an object", jsonAnswer(200, "application/json", `[true]`), Answer{Status: schema.CRMError}},
		{"wrong content type", jsonAnswer(200, "text/html", `{"vip":true}`), Answer{Status: schema.CRMError}},
		{"no content type", jsonAnswer(200, "", `{"vip":true}`), Answer{Status: schema.CRMError}},
		{"oversize body", jsonAnswer(200, "application/json", `{"vip":true,"name":"`+strings.Repeat("a", MaxBody)+`"}`), Answer{Status: schema.CRMError}},
		{"slow beyond budget", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, Answer{Status: schema.CRMTimeout}},
		{"slow body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"vip":`))
			w.(http.Flusher).Flush()
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, Answer{Status: schema.CRMTimeout}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, obs, _ := newClient(t, tc.h, nil)
			start := time.Now()
			got := c.Lookup(context.Background(), "+79991234567")
			if took := time.Since(start); took > 150*time.Millisecond+2*time.Second {
				t.Errorf("lookup took %v, budget 150ms", took)
			}
			if got != tc.want {
				t.Errorf("Lookup = %+v, want %+v", got, tc.want)
			}
			if len(obs.got) != 1 || obs.got[0] != string(tc.want.Status) {
				t.Errorf("counted %v, want [%s]", obs.got, tc.want.Status)
			}
		})
	}
}

func TestLookupRequest(t *testing.T) {
	var got *http.Request
	c, _, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.WriteHeader(404)
	}, nil)
	c.Lookup(context.Background(), "+79991234567")
	switch {
	case got == nil:
		t.Fatal("no request")
	case got.Method != http.MethodGet || got.URL.Path != "/customers":
		t.Errorf("request %s %s", got.Method, got.URL.Path)
	case got.URL.Query().Get("number") != "+79991234567" || got.URL.Query().Get("token") != "s3cret":
		t.Errorf("query %q: want the number and the URL's own parameters", got.URL.RawQuery)
	case got.Header.Get("Authorization") != "Bearer tok":
		t.Errorf("Authorization %q", got.Header.Get("Authorization"))
	case got.Header.Get("Accept") != "application/json":
		t.Errorf("Accept %q", got.Header.Get("Accept"))
	}
}

// A context shorter than the budget (the decision's own deadline) wins.
func TestLookupParentDeadline(t *testing.T) {
	c, _, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, func(c *Config) { c.Timeout = 5 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if a := c.Lookup(ctx, "+79991234567"); a.Status != schema.CRMTimeout {
		t.Errorf("status %s, want timeout", a.Status)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}

func TestLookupCache(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{}
	fail := false
	c, obs, clk := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		n := r.URL.Query().Get("number")
		mu.Lock()
		asked[n]++
		f := fail
		mu.Unlock()
		switch {
		case f:
			w.WriteHeader(503)
		case n == "+79990000001":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"vip":true,"segment":"gold"}`))
		default:
			w.WriteHeader(404)
		}
	}, nil)
	ctx := context.Background()
	count := func(n string) int { mu.Lock(); defer mu.Unlock(); return asked[n] }
	vip, other := "+79990000001", "+79990000002"

	c.Lookup(ctx, vip)
	c.Lookup(ctx, other)
	clk.Add(9 * time.Second)
	if a := c.Lookup(ctx, vip); !a.Cached || !a.Customer.VIP {
		t.Errorf("second lookup %+v, want the cached VIP", a)
	}
	if a := c.Lookup(ctx, other); !a.Cached || a.Status != schema.CRMMiss {
		t.Errorf("second lookup %+v, want the cached miss", a)
	}
	if count(vip) != 1 || count(other) != 1 {
		t.Fatalf("asked %v, want once each", asked)
	}
	// The negative TTL (10s) is over, the positive one (1m) is not.
	clk.Add(2 * time.Second)
	c.Lookup(ctx, vip)
	c.Lookup(ctx, other)
	if count(vip) != 1 || count(other) != 2 {
		t.Errorf("after 11s asked %v, want the VIP once, the miss twice", asked)
	}
	// Failures are not cached: each call asks again.
	mu.Lock()
	fail = true
	mu.Unlock()
	third := "+79990000003"
	c.Lookup(ctx, third)
	c.Lookup(ctx, third)
	if count(third) != 2 {
		t.Errorf("a failing number was asked %d times, want 2 (failures not cached)", count(third))
	}
	clk.Add(time.Minute)
	if a := c.Lookup(ctx, vip); a.Status != schema.CRMError || a.Cached {
		t.Errorf("after the TTL %+v, want asked again (and failing)", a)
	}
	want := "hit miss hit/cached miss/cached hit/cached miss error error error"
	if got := strings.Join(obs.got, " "); got != want {
		t.Errorf("counted %q, want %q", got, want)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(10)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		c.put(strings.Repeat("x", i%50)+string(rune('a'+i%26)), Answer{Status: schema.CRMHit}, now, time.Minute)
		if n := c.len(); n > 10 {
			t.Fatalf("cache holds %d entries, bound 10", n)
		}
	}
	// Expired entries make room first.
	c = newCache(3)
	c.put("a", Answer{Status: schema.CRMMiss}, now, time.Second)
	c.put("b", Answer{Status: schema.CRMHit}, now, time.Hour)
	c.put("c", Answer{Status: schema.CRMHit}, now, time.Hour)
	c.put("d", Answer{Status: schema.CRMHit}, now.Add(2*time.Second), time.Hour)
	for _, k := range []string{"b", "c", "d"} {
		if _, ok := c.get(k, now.Add(3*time.Second)); !ok {
			t.Errorf("%s evicted; the expired a should have gone", k)
		}
	}
	if _, ok := c.get("a", now); ok {
		t.Error("a still cached")
	}
	// A TTL of 0 keeps nothing.
	c.put("e", Answer{Status: schema.CRMHit}, now, 0)
	if _, ok := c.get("e", now); ok {
		t.Error("kept with TTL 0")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "https://crm.bank.example/lookup?key=abc", Timeout: 150 * time.Millisecond, CacheTTL: time.Minute, CacheSize: 10}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("disabled config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"not http":     func(c *Config) { c.URL = "ftp://crm/x?key=abc" },
		"no host":      func(c *Config) { c.URL = "http:///x?key=abc" },
		"zero timeout": func(c *Config) { c.Timeout = 0 },
		"negative ttl": func(c *Config) { c.NegativeTTL = -time.Second },
		"token break":  func(c *Config) { c.Token = "a\r\nb" },
		"break after":  func(c *Config) { c.BreakAfter = -1 },
		"break for":    func(c *Config) { c.BreakAfter, c.BreakFor = 5, 0 },
	} {
		c := ok
		mod(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if strings.Contains(err.Error(), "abc") {
			t.Errorf("%s: error %q repeats the URL's token", name, err)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Ivan Pet", "Ivan Pet"},
		{"  a\t\tb\r\nc  ", "a b c"},
		{"\x00\x1b[31mred", "[31mred"},
		{"bad\xffutf8", "bad utf8"},
		{"rtl\u202eok", "rtlok"},
		{`"quoted"`, `"quoted"`},
		{strings.Repeat("я", 100), strings.Repeat("я", 10)},
		{"abcdefghi jk", "abcdefghi"},
	} {
		if got := Clean(tc.in, 10); got != tc.want {
			t.Errorf("Clean(%q, 10) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"vip":true,"name":"a","segment":"b"}`, `{}`, `{"name":"\r\n"}`, `null`, `{"vip":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cu, err := Parse(b)
		if err != nil {
			return
		}
		for _, s := range []string{cu.Name, cu.Segment} {
			if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("control character kept: %q", s)
			}
		}
		if len([]rune(cu.Name)) > MaxName || len([]rune(cu.Segment)) > MaxSegment {
			t.Errorf("too long: %+v", cu)
		}
	})
}

// After BreakAfter failures in a row the CRM is out: lookups are skipped
// without a request (cached answers still serve) until, BreakFor later,
// one lookup tries it; a failed try keeps it out, an answer brings it back.
// A lookup the call gave up on says nothing of the CRM.
func TestBreaker(t *testing.T) {
	var (
		mu    sync.Mutex
		asked int
		fail  bool
	)
	c, obs, clk := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		f := fail
		mu.Unlock()
		switch {
		case f:
			w.WriteHeader(503)
		case r.URL.Query().Get("number") == "+79990000001":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"vip":true}`))
		default:
			w.WriteHeader(404)
		}
	}, func(cfg *Config) { cfg.BreakAfter, cfg.BreakFor = 3, 10*time.Second })
	ctx := context.Background()
	setFail := func(f bool) { mu.Lock(); fail = f; mu.Unlock() }
	requests := func() int { mu.Lock(); defer mu.Unlock(); return asked }
	outs := func() string { obs.mu.Lock(); defer obs.mu.Unlock(); return fmt.Sprint(obs.out) }
	vip := "+79990000001"

	c.Lookup(ctx, vip) // cached for a minute
	setFail(true)
	for i := range 3 {
		c.Lookup(ctx, fmt.Sprintf("+7999000010%d", i))
	}
	if outs() != "[true]" {
		t.Fatalf("after 3 failures out %s, want [true]", outs())
	}
	before := requests()
	if a := c.Lookup(ctx, "+79990000200"); a.Status != schema.CRMSkipped || requests() != before {
		t.Errorf("while out: %+v after %d requests, want skipped without one", a, requests()-before)
	}
	if a := c.Lookup(ctx, vip); a.Status != schema.CRMHit || !a.Cached {
		t.Errorf("while out, the cached VIP: %+v", a)
	}
	// BreakFor later one lookup tries it; it fails: out again.
	clk.Add(10 * time.Second)
	if a := c.Lookup(ctx, "+79990000201"); a.Status != schema.CRMError || requests() != before+1 {
		t.Errorf("the try: %+v, %d requests, want one failing", a, requests()-before)
	}
	if a := c.Lookup(ctx, "+79990000202"); a.Status != schema.CRMSkipped {
		t.Errorf("after a failed try: %s, want skipped", a.Status)
	}
	// Later still the CRM answers: it is back.
	clk.Add(10 * time.Second)
	setFail(false)
	if a := c.Lookup(ctx, "+79990000203"); a.Status != schema.CRMMiss {
		t.Errorf("the second try: %s, want miss", a.Status)
	}
	if outs() != "[true false]" {
		t.Errorf("out %s, want [true false]", outs())
	}
	// Two failures, then lookups the calls gave up on: still in.
	setFail(true)
	c.Lookup(ctx, "+79990000300")
	c.Lookup(ctx, "+79990000301")
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for range 3 {
		c.Lookup(gone, "+79990000302")
	}
	if outs() != "[true false]" {
		t.Errorf("cancelled lookups took the CRM out: %s", outs())
	}
	before = requests()
	if a := c.Lookup(ctx, "+79990000303"); a.Status != schema.CRMError || requests() != before+1 {
		t.Errorf("the third failure in a row: %s after %d requests, want asked", a.Status, requests()-before)
	}
	if outs() != "[true false true]" {
		t.Errorf("out %s, want [true false true]", outs())
	}
	want := "hit error error error skipped hit/cached error skipped miss error error timeout timeout timeout error"
	if got := strings.Join(obs.got, " "); got != want {
		t.Errorf("counted %q\nwant    %q", got, want)
	}
}
