package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/callguard/callguard/projections/runner"
)

// maxResponseBytes bounds what the Client reads of an answer. A timeline
// of a caller with years of history is large but not this large; a
// misdirected BaseURL serving a file must not fill the CLI's memory.
const maxResponseBytes = 64 << 20

// Client is a typed client of the admin API, for the CLI and tests. The
// zero HTTP means http.DefaultClient. Methods return a *Problem for any
// answer the API gave as a problem (test with errors.As), and a wrapped
// transport or decoding error otherwise.
type Client struct {
	// BaseURL is the API's root, e.g. "http://127.0.0.1:8780".
	BaseURL string
	// Token is GUARD_ADMIN_TOKEN.
	Token string
	HTTP  *http.Client
	// Stale, when set, hears of every answer of the read side that says
	// it is not current (the X-Projection-Status header): the path asked
	// and what the answer said, with the reason when it was JSON. The CLI
	// prints a warning.
	Stale func(path string, fr runner.Freshness)
}

// Whitelist posts req to POST /v1/whitelist.
func (c *Client) Whitelist(ctx context.Context, req WhitelistRequest) (CommandResult, error) {
	var res CommandResult
	err := c.do(ctx, http.MethodPost, "/v1/whitelist", req, req.IdempotencyKey, &res)
	return res, err
}

// Unwhitelist removes number from the whitelist (DELETE /v1/whitelist/{number}).
func (c *Client) Unwhitelist(ctx context.Context, number string, req RemoveRequest) (CommandResult, error) {
	var res CommandResult
	err := c.do(ctx, http.MethodDelete, "/v1/whitelist/"+url.PathEscape(number), req, req.IdempotencyKey, &res)
	return res, err
}

// Block blocks number at req.Level (PUT /v1/blocks/{number}).
func (c *Client) Block(ctx context.Context, number string, req BlockRequest) (CommandResult, error) {
	var res CommandResult
	err := c.do(ctx, http.MethodPut, "/v1/blocks/"+url.PathEscape(number), req, req.IdempotencyKey, &res)
	return res, err
}

// Unblock lifts number's block (DELETE /v1/blocks/{number}).
func (c *Client) Unblock(ctx context.Context, number string, req RemoveRequest) (CommandResult, error) {
	var res CommandResult
	err := c.do(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(number), req, req.IdempotencyKey, &res)
	return res, err
}

// AttackOn switches the under-attack mode of the called number line on
// (PUT /v1/lines/{number}/attack).
func (c *Client) AttackOn(ctx context.Context, line string, req AttackRequest) (AttackView, error) {
	var res AttackView
	err := c.do(ctx, http.MethodPut, "/v1/lines/"+url.PathEscape(line)+"/attack", req, req.IdempotencyKey, &res)
	return res, err
}

// AttackOff switches line's under-attack mode off (DELETE
// /v1/lines/{number}/attack).
func (c *Client) AttackOff(ctx context.Context, line string, req RemoveRequest) (AttackView, error) {
	var res AttackView
	err := c.do(ctx, http.MethodDelete, "/v1/lines/"+url.PathEscape(line)+"/attack", req, req.IdempotencyKey, &res)
	return res, err
}

// Attack returns line's under-attack mode (GET /v1/lines/{number}/attack).
func (c *Client) Attack(ctx context.Context, line string) (AttackView, error) {
	var res AttackView
	err := c.do(ctx, http.MethodGet, "/v1/lines/"+url.PathEscape(line)+"/attack", nil, "", &res)
	return res, err
}

// Caller returns number's standing (GET /v1/callers/{number}).
func (c *Client) Caller(ctx context.Context, number string) (CallerView, error) {
	var res CallerView
	err := c.do(ctx, http.MethodGet, "/v1/callers/"+url.PathEscape(number), nil, "", &res)
	return res, err
}

// History returns number's audit timeline as the server encoded it
// (GET /v1/callers/{number}/history); decode it into the audit
// projection's type.
func (c *Client) History(ctx context.Context, number string) (json.RawMessage, error) {
	var res json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/callers/"+url.PathEscape(number)+"/history", nil, "", &res)
	return res, err
}

// Replay re-decides the whole log with settings overriding the server's
// policy (GET /v1/replay?limit-hour=3...) and returns the report as the
// server encoded it; decode it into the replay projection's type.
func (c *Client) Replay(ctx context.Context, settings map[string]string) (json.RawMessage, error) {
	q := url.Values{}
	for k, v := range settings {
		q.Set(k, v)
	}
	var res json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/replay?"+q.Encode(), nil, "", &res)
	return res, err
}

func (c *Client) do(ctx context.Context, method, path string, body any, idemKey string, into any) error {
	var (
		rd          io.Reader
		contentType string
	)
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("admin API: encode %s %s: %w", method, path, err)
		}
		rd, contentType = bytes.NewReader(b), "application/json"
	}
	data, err := c.exchange(ctx, method, path, "application/json, "+ProblemMediaType, contentType, rd, idemKey)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("admin API: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// exchange sends one request and returns the body of a success answer,
// or the answer's *Problem.
func (c *Client) exchange(ctx context.Context, method, path, accept, contentType string, body io.Reader, idemKey string) ([]byte, error) {
	u, err := url.Parse(strings.TrimRight(c.BaseURL, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("admin API: base URL %q is not an http(s) URL", c.BaseURL)
	}
	path, u.RawQuery, _ = strings.Cut(path, "?")
	// The number is already escaped; set RawPath so that "%2B" stays one.
	u.RawPath = u.EscapedPath() + path
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return nil, fmt.Errorf("admin API: path %q: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("admin API: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", accept)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if idemKey != "" {
		req.Header.Set(HeaderIdempotencyKey, idemKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		// The error names the URL, never the headers: no token in it.
		return nil, fmt.Errorf("admin API: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("admin API: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if st := resp.Header.Get(HeaderProjectionStatus); st != "" && st != string(runner.ReadCurrent) && c.Stale != nil {
			fr := runner.Freshness{Status: runner.Currency(st)}
			var body struct {
				Projection *runner.Freshness `json:"projection"`
			}
			if json.Unmarshal(data, &body) == nil && body.Projection != nil {
				fr = *body.Projection
			}
			c.Stale(path, fr)
		}
		return data, nil
	}
	return nil, problemOf(resp, data)
}

func decodeAnswer(data []byte, into any, what string) error {
	if err := json.Unmarshal(data, into); err != nil {
		return fmt.Errorf("admin API: %s: decode answer: %w", what, err)
	}
	return nil
}

// problemOf decodes an error answer. An answer that is not a problem (a
// proxy's HTML page) still becomes a *Problem with the status, so callers
// need only one error type.
func problemOf(resp *http.Response, data []byte) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	p := &Problem{}
	if mt == ProblemMediaType || mt == "application/json" {
		if err := json.Unmarshal(data, p); err != nil {
			p = &Problem{}
		}
	}
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if p.Detail == "" && p.Type == "" {
		p.Detail = fmt.Sprintf("unexpected answer %s: %s", resp.Status, clip(strings.TrimSpace(string(data))))
	}
	return p
}

// IsProblem reports whether err is a problem answer with code (one of
// the Code constants).
func IsProblem(err error, code string) bool {
	var p *Problem
	return errors.As(err, &p) && p.Code() == code
}
