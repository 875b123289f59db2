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
	switch a.Status {
	case schema.CRMHit:
		c.cache.put(number, a, now, c.cfg.CacheTTL)
	case schema.CRMMiss:
		c.cache.put(number, a, now, c.cfg.NegativeTTL)
	}
	c.count(a.Status, false, took)
	return a
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
