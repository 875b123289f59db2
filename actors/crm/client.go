package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/callguard/callguard/events/schema"
)

// Config is the CRM lookup. Each env tag names the field's environment
// variable under the binary's GUARD_ prefix; cmd reads them.
type Config struct {
	// URL is the CRM's lookup endpoint; empty disables the lookup. It may
	// carry a token in its query, so it is a secret.
	URL string `env:"CRM_URL" secret:"true" desc:"the bank's CRM lookup endpoint, asked GET URL?number=+7... before each decision (see \"The CRM's VIPs\"); empty: no lookup"`
	// Token, when set, is sent as a bearer token.
	Token string `env:"CRM_TOKEN" secret:"true" desc:"bearer token sent to GUARD_CRM_URL (optional)"`
	// Timeout is the lookup's budget; past it the call is decided without
	// the CRM.
	Timeout time.Duration `env:"CRM_TIMEOUT" envDefault:"150ms" desc:"time budget of a CRM lookup, within GUARD_DECIDE_TIMEOUT; past it the call is decided without the CRM (counted as a timeout)"`
	// CacheTTL is how long a customer's answer is reused; NegativeTTL the
	// same for "no customer" (shorter: a new customer is seen soon).
	CacheTTL    time.Duration `env:"CRM_CACHE_TTL" envDefault:"5m" desc:"how long a CRM answer about a customer is reused without asking again (0: no cache)"`
	NegativeTTL time.Duration `env:"CRM_NEGATIVE_TTL" envDefault:"1m" desc:"how long the CRM's \"no customer\" (404) is reused (0: not cached); failures and timeouts are never cached"`
	// CacheSize bounds the cache's entries.
	CacheSize int `env:"CRM_CACHE_SIZE" envDefault:"100000" desc:"CRM answers kept in the cache at most (about 200 bytes each)"`
	// BreakAfter failed lookups in a row take the CRM out of the
	// decisions for BreakFor: a CRM that is down would otherwise add its
	// whole timeout to every call's decision and get a request per call
	// while it tries to recover.
	BreakAfter int           `env:"CRM_BREAK_AFTER" envDefault:"5" desc:"failed CRM lookups (timeouts, errors) in a row after which calls are decided without asking it for GUARD_CRM_BREAK_FOR (cached answers still serve); 0: always ask"`
	BreakFor   time.Duration `env:"CRM_BREAK_FOR" envDefault:"10s" desc:"how long the CRM stays out after GUARD_CRM_BREAK_AFTER failures in a row; then one lookup tries it, and its success brings it back"`
}

// ErrConfig is the sentinel of every Config.Validate error.
var ErrConfig = errors.New("crm settings")

// Enabled reports whether a CRM is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate reports what is wrong with c. It never repeats the URL, which
// may hold a token.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%w: URL is not an http or https URL", ErrConfig))
	}
	if c.Timeout < time.Millisecond || c.Timeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("%w: timeout %v, want 1ms to 10s", ErrConfig, c.Timeout))
	}
	if c.CacheTTL < 0 || c.NegativeTTL < 0 {
		errs = append(errs, fmt.Errorf("%w: negative cache TTL", ErrConfig))
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("%w: cache size %d is negative", ErrConfig, c.CacheSize))
	}
	if c.BreakAfter < 0 {
		errs = append(errs, fmt.Errorf("%w: break after %d failures is negative", ErrConfig, c.BreakAfter))
	}
	if c.BreakAfter > 0 && (c.BreakFor < time.Second || c.BreakFor > time.Hour) {
		errs = append(errs, fmt.Errorf("%w: break for %v, want 1s to 1h", ErrConfig, c.BreakFor))
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		errs = append(errs, fmt.Errorf("%w: token holds a line break", ErrConfig))
	}
	return errors.Join(errs...)
}

// Bounds of what is taken from the CRM.
const (
	// MaxBody is the largest answer read; a larger one is an error.
	MaxBody = 8 << 10
	// MaxName and MaxSegment bound the name and segment kept, in runes.
	MaxName    = 64
	MaxSegment = 32
)

// Customer is what the CRM says of a caller.
type Customer struct {
	VIP     bool
	Name    string
	Segment string
}

// Answer is a lookup's result.
type Answer struct {
	Status schema.CRMStatus
	// Customer is set on a hit.
	Customer Customer
	// Cached says the answer came from the cache.
	Cached bool
}

// Record is what the call's CallReceived keeps of a: status, VIP flag and
// segment; never the name.
func (a Answer) Record() *schema.CRMAnswer {
	return &schema.CRMAnswer{Status: a.Status, VIP: a.Customer.VIP, Segment: a.Customer.Segment}
}

// Observer counts lookups (projections/metrics satisfies it).
type Observer interface {
	// CRMLookup counts one call's lookup by result; cached answers have
	// took 0 and are not requests to the CRM.
	CRMLookup(result schema.CRMStatus, cached bool, took time.Duration)
	// CRMOut says the CRM was taken out of the decisions (true) or is
	// back (false).
	CRMOut(out bool)
}

// Client asks the CRM. It is safe for concurrent use.
type Client struct {
	cfg   Config
	url   *url.URL
	http  *http.Client
	cache *cache
	clock func() time.Time
	obs   Observer
	log   *slog.Logger
	// lastWarn rate-limits the failure log (UnixNano).
	lastWarn atomic.Int64
	brk      breaker
}

// breaker counts failed lookups in a row and keeps the CRM out of the
// decisions for a while after too many.
type breaker struct {
	mu       sync.Mutex
	failures int
	// outUntil is when the CRM may be tried again; zero while it is in.
	outUntil time.Time
	// probing: one lookup is trying the CRM that is out; the others skip.
	probing bool
}

// New returns a client of cfg, which must be enabled and valid; clock is
// the cache's clock, obs and log may be nil.
func New(cfg Config, clock func() time.Time, obs Observer, log *slog.Logger) (*Client, error) {
	if !cfg.Enabled() {
		return nil, fmt.Errorf("%w: no URL", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := url.Parse(cfg.URL)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		MaxConnsPerHost:       512, // a hung CRM cannot take every socket
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		ForceAttemptHTTP2:     true,
	}
	hc := &http.Client{
		Transport: tr,
		// A redirect is not part of the contract (and would carry the
		// token elsewhere).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Client{cfg: cfg, url: u, http: hc, cache: newCache(cfg.CacheSize), clock: clock, obs: obs, log: log}, nil
}

// Close frees the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Lookup asks about the E.164 number, within the budget and ctx. It never
// fails: a CRM that is slow, down or answers garbage gives an Answer with
// status timeout or error.
func (c *Client) Lookup(ctx context.Context, number string) Answer {
	now := c.clock()
	if a, ok := c.cache.get(number, now); ok {
		a.Cached = true
		c.count(a.Status, true, 0)
		return a
	}
	ask, probe := c.admit(now)
	if !ask {
		a := Answer{Status: schema.CRMSkipped}
		c.count(a.Status, false, 0)
		return a
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	a, err := c.ask(ctx, number)
	took := time.Since(start)
	if err != nil {
		a = Answer{Status: schema.CRMError}
		var ne net.Error
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			a.Status = schema.CRMTimeout
		}
		c.warn(a.Status, err)
	}
	// A lookup the call gave up on (its own deadline, a hang-up) says
	// nothing of the CRM.
	c.settle(c.clock(), err == nil, err != nil && parent.Err() == nil, probe)
	switch a.Status {
	case schema.CRMHit:
		c.cache.put(number, a, now, c.cfg.CacheTTL)
	case schema.CRMMiss:
		c.cache.put(number, a, now, c.cfg.NegativeTTL)
	}
	c.count(a.Status, false, took)
	return a
}

// admit says whether a lookup may ask the CRM now, and whether it is the
// one lookup trying a CRM that is out.
func (c *Client) admit(now time.Time) (ask, probe bool) {
	if c.cfg.BreakAfter == 0 {
		return true, false
	}
	b := &c.brk
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.outUntil.IsZero():
		return true, false
	case now.Before(b.outUntil) || b.probing:
		return false, false
	}
	b.probing = true
	return true, true
}

// settle counts a lookup's end: an answer brings the CRM back; the
// BreakAfter-th failure in a row, or a failed try, takes it out for
// BreakFor.
func (c *Client) settle(now time.Time, answered, failed, probe bool) {
	if c.cfg.BreakAfter == 0 {
		return
	}
	b := &c.brk
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		b.probing = false
	}
	switch {
	case answered:
		if !b.outUntil.IsZero() {
			c.log.Info("CRM answers again; calls are decided with it")
			c.out(false)
		}
		b.failures, b.outUntil = 0, time.Time{}
	case failed:
		b.failures++
		switch {
		case b.outUntil.IsZero() && b.failures >= c.cfg.BreakAfter:
			c.log.Warn("CRM taken out: calls are decided without it until a lookup succeeds",
				"failures_in_a_row", b.failures, "retry_every", c.cfg.BreakFor)
			c.out(true)
			b.outUntil = now.Add(c.cfg.BreakFor)
		case probe:
			b.outUntil = now.Add(c.cfg.BreakFor)
		}
	}
}

func (c *Client) out(out bool) {
	if c.obs != nil {
		c.obs.CRMOut(out)
	}
}

func (c *Client) count(s schema.CRMStatus, cached bool, took time.Duration) {
	if c.obs != nil {
		c.obs.CRMLookup(s, cached, took)
	}
}

// warn logs a failure, at most once every 10 s, without the URL (it may
// hold a token).
func (c *Client) warn(s schema.CRMStatus, err error) {
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last < int64(10*time.Second) || !c.lastWarn.CompareAndSwap(last, now) {
		return
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	c.log.Warn("CRM lookup failed; deciding without it (logged once per 10s)", "result", s, "err", err)
}

// wire is the CRM's JSON answer.
type wire struct {
	VIP     *bool   `json:"vip"`
	Name    *string `json:"name"`
	Segment *string `json:"segment"`
}

func (c *Client) ask(ctx context.Context, number string) (Answer, error) {
	u := *c.url
	q := u.Query()
	q.Set("number", number)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Answer{}, fmt.Errorf("crm: request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("crm: %w", err)
	}
	defer func() {
		// Drain a little so the connection is reused; a large body is
		// not read to its end.
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, MaxBody))
		_ = res.Body.Close()
	}()
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return Answer{Status: schema.CRMMiss}, nil
	default:
		return Answer{}, fmt.Errorf("crm: status %d", res.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return Answer{}, fmt.Errorf("crm: content type %q, want application/json", res.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxBody+1))
	if err != nil {
		return Answer{}, fmt.Errorf("crm: read: %w", err)
	}
	if len(body) > MaxBody {
		return Answer{}, fmt.Errorf("crm: answer larger than %d bytes", MaxBody)
	}
	cu, err := Parse(body)
	if err != nil {
		return Answer{}, err
	}
	return Answer{Status: schema.CRMHit, Customer: cu}, nil
}

// Parse reads the CRM's JSON answer about a customer: an object whose
// vip (boolean), name and segment (strings) are all optional. Name and
// segment are cleaned (Clean).
func Parse(body []byte) (Customer, error) {
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return Customer{}, fmt.Errorf("crm: malformed answer: %w", err)
	}
	var cu Customer
	if w.VIP != nil {
		cu.VIP = *w.VIP
	}
	if w.Name != nil {
		cu.Name = Clean(*w.Name, MaxName)
	}
	if w.Segment != nil {
		cu.Segment = Clean(*w.Segment, MaxSegment)
	}
	return cu, nil
}

// Clean makes s safe to show and to record: valid UTF-8, control and
// format characters (line breaks, bidi overrides) replaced by spaces,
// spaces collapsed and trimmed, at most max runes.
func Clean(s string, max int) string {
	var b strings.Builder
	space, n := false, 0
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.Is(unicode.Cf, r) {
			continue // invisible: a bidi override must not reorder what agents see
		}
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == utf8.RuneError {
			space = b.Len() > 0
			continue
		}
		if n >= max {
			break
		}
		if space {
			if n+1 >= max {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
