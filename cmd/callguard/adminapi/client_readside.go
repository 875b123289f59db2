package adminapi

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
)

// listValues turns a list query into query parameters.
func listValues(q lists.Query) url.Values {
	v := url.Values{}
	set := func(name, value string) {
		if value != "" {
			v.Set(name, value)
		}
	}
	set("prefix", q.Prefix)
	set("after", q.After)
	set("kind", string(q.Kind))
	set("rule", string(q.Rule))
	if q.Level != 0 {
		v.Set("level", strconv.Itoa(q.Level))
	}
	if q.Limit != 0 && q.Limit != lists.Unlimited { // an export asks for CSV, which is never paged
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.IncludeExpired {
		v.Set("expired", "true")
	}
	return v
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// ListBlacklist returns a page of the blacklist (GET /v1/blacklist).
func (c *Client) ListBlacklist(ctx context.Context, q lists.Query) (lists.Page[lists.BlacklistEntry], error) {
	var p lists.Page[lists.BlacklistEntry]
	err := c.do(ctx, http.MethodGet, withQuery("/v1/blacklist", listValues(q)), nil, "", &p)
	return p, err
}

// ListWhitelist returns a page of the whitelist (GET /v1/whitelist).
func (c *Client) ListWhitelist(ctx context.Context, q lists.Query) (lists.Page[lists.WhitelistEntry], error) {
	var p lists.Page[lists.WhitelistEntry]
	err := c.do(ctx, http.MethodGet, withQuery("/v1/whitelist", listValues(q)), nil, "", &p)
	return p, err
}

// ExportBlacklist returns the blacklist entries q's filters match as CSV
// (paging ignored).
func (c *Client) ExportBlacklist(ctx context.Context, q lists.Query) ([]byte, error) {
	return c.csv(ctx, withQuery("/v1/blacklist", listValues(q)))
}

// ExportWhitelist returns the whitelist as CSV; ImportWhitelist takes it
// back.
func (c *Client) ExportWhitelist(ctx context.Context, q lists.Query) ([]byte, error) {
	return c.csv(ctx, withQuery("/v1/whitelist", listValues(q)))
}

func (c *Client) csv(ctx context.Context, path string) ([]byte, error) {
	return c.exchange(ctx, http.MethodGet, path, "text/csv, "+ProblemMediaType, "", nil, "")
}

// ImportWhitelist posts a whitelist CSV (POST /v1/whitelist/import); by
// and reason are the defaults for rows without them.
func (c *Client) ImportWhitelist(ctx context.Context, csv []byte, def importer.Defaults) (importer.Result, error) {
	v := url.Values{}
	if def.By != "" {
		v.Set("by", def.By)
	}
	if def.Reason != "" {
		v.Set("reason", def.Reason)
	}
	var res importer.Result
	data, err := c.exchange(ctx, http.MethodPost, withQuery("/v1/whitelist/import", v), "application/json, "+ProblemMediaType,
		CSVMediaType, bytes.NewReader(csv), "")
	if err != nil {
		return res, err
	}
	return res, decodeAnswer(data, &res, "POST /v1/whitelist/import")
}

func reportValues(from, to string) url.Values {
	v := url.Values{}
	if from != "" {
		v.Set("from", from)
	}
	if to != "" {
		v.Set("to", to)
	}
	return v
}

// Daily returns the report per day and callee (GET /v1/reports/daily).
func (c *Client) Daily(ctx context.Context, q reports.Query) (reports.Daily, error) {
	v := reportValues(q.From, q.To)
	if q.Callee != "" {
		v.Set("callee", q.Callee)
	}
	var d reports.Daily
	err := c.do(ctx, http.MethodGet, withQuery("/v1/reports/daily", v), nil, "", &d)
	return d, err
}

// DailyCSV returns the same report as CSV.
func (c *Client) DailyCSV(ctx context.Context, q reports.Query) ([]byte, error) {
	v := reportValues(q.From, q.To)
	if q.Callee != "" {
		v.Set("callee", q.Callee)
	}
	return c.csv(ctx, withQuery("/v1/reports/daily", v))
}

// Top returns the top callers (GET /v1/reports/top).
func (c *Client) Top(ctx context.Context, q reports.TopQuery) (reports.Top, error) {
	v := reportValues(q.From, q.To)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var t reports.Top
	err := c.do(ctx, http.MethodGet, withQuery("/v1/reports/top", v), nil, "", &t)
	return t, err
}

// TopCSV returns the top callers as CSV.
func (c *Client) TopCSV(ctx context.Context, q reports.TopQuery) ([]byte, error) {
	v := reportValues(q.From, q.To)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return c.csv(ctx, withQuery("/v1/reports/top", v))
}

// Callers searches the caller profiles by number prefix (GET /v1/callers).
func (c *Client) Callers(ctx context.Context, q profiles.Query) (profiles.Page, error) {
	v := url.Values{}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p profiles.Page
	err := c.do(ctx, http.MethodGet, withQuery("/v1/callers", v), nil, "", &p)
	return p, err
}

// Projections returns the projections' status and lag (GET /v1/projections).
func (c *Client) Projections(ctx context.Context) (ProjectionsView, error) {
	var v ProjectionsView
	err := c.do(ctx, http.MethodGet, "/v1/projections", nil, "", &v)
	return v, err
}

// Rebuild rebuilds projection name, or every one for "all"
// (POST /v1/projections/{name}/rebuild).
func (c *Client) Rebuild(ctx context.Context, name string) (ProjectionsView, error) {
	var v ProjectionsView
	err := c.do(ctx, http.MethodPost, "/v1/projections/"+url.PathEscape(name)+"/rebuild", nil, "", &v)
	return v, err
}
