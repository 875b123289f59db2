package adminapi

import (
	"context"
	"net/http"
	"net/url"
)

// SetLineSettings sets a called line's settings (PUT /v1/lines/{number}/settings).
func (c *Client) SetLineSettings(ctx context.Context, number string, req LineSettingsRequest) (SettingsResult, error) {
	var res SettingsResult
	err := c.do(ctx, http.MethodPut, "/v1/lines/"+url.PathEscape(number)+"/settings", req, req.IdempotencyKey, &res)
	return res, err
}

// ClearLineSettings returns a line to the global settings.
func (c *Client) ClearLineSettings(ctx context.Context, number string, req RemoveRequest) (SettingsResult, error) {
	var res SettingsResult
	err := c.do(ctx, http.MethodDelete, "/v1/lines/"+url.PathEscape(number)+"/settings", req, req.IdempotencyKey, &res)
	return res, err
}

// LineSettings lists the lines' settings (GET /v1/lines/settings).
func (c *Client) LineSettings(ctx context.Context) (SettingsView, error) {
	var v SettingsView
	err := c.do(ctx, http.MethodGet, "/v1/lines/settings", nil, "", &v)
	return v, err
}

// AddSchedule adds a schedule (POST /v1/schedules).
func (c *Client) AddSchedule(ctx context.Context, req ScheduleRequest) (SettingsResult, error) {
	var res SettingsResult
	err := c.do(ctx, http.MethodPost, "/v1/schedules", req, req.IdempotencyKey, &res)
	return res, err
}

// RemoveSchedule removes a schedule (DELETE /v1/schedules/{name}).
func (c *Client) RemoveSchedule(ctx context.Context, name string, req RemoveRequest) (SettingsResult, error) {
	var res SettingsResult
	err := c.do(ctx, http.MethodDelete, "/v1/schedules/"+url.PathEscape(name), req, req.IdempotencyKey, &res)
	return res, err
}

// Schedules lists the schedules (GET /v1/schedules).
func (c *Client) Schedules(ctx context.Context) (SettingsView, error) {
	var v SettingsView
	err := c.do(ctx, http.MethodGet, "/v1/schedules", nil, "", &v)
	return v, err
}
