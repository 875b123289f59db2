package adminapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
)

// RangeRequest is the body of POST /v1/ranges/whitelist and
// POST /v1/ranges/blocks: Prefix, or From and To.
type RangeRequest struct {
	Prefix string `json:"prefix,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	// Level is the block level (block rules only).
	Level  int    `json:"level,omitempty"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason"`
	// Until is the rule's expiry; zero for none.
	Until          time.Time `json:"until,omitzero"`
	IdempotencyKey string    `json:"-"`
}

func rangePath(list schema.RangeList) string {
	if list == schema.RangeBlock {
		return "/v1/ranges/blocks"
	}
	return "/v1/ranges/whitelist"
}

// AddRange adds a range rule to list.
func (c *Client) AddRange(ctx context.Context, list schema.RangeList, req RangeRequest) (RangeResult, error) {
	var res RangeResult
	err := c.do(ctx, http.MethodPost, rangePath(list), req, req.IdempotencyKey, &res)
	return res, err
}

// RemoveRange removes the rule of rng (a prefix or FROM-TO) from list.
func (c *Client) RemoveRange(ctx context.Context, list schema.RangeList, rng string, req RemoveRequest) (RangeResult, error) {
	var res RangeResult
	err := c.do(ctx, http.MethodDelete, rangePath(list)+"/"+url.PathEscape(rng), req, req.IdempotencyKey, &res)
	return res, err
}

// ListRanges returns a page of the range rules (GET /v1/ranges).
func (c *Client) ListRanges(ctx context.Context, q lists.RangeQuery) (lists.Page[lists.RangeEntry], error) {
	v := url.Values{}
	if q.List != "" {
		v.Set("list", string(q.List))
	}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 && q.Limit != lists.Unlimited {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.IncludeExpired {
		v.Set("expired", "true")
	}
	var p lists.Page[lists.RangeEntry]
	err := c.do(ctx, http.MethodGet, withQuery("/v1/ranges", v), nil, "", &p)
	return p, err
}
