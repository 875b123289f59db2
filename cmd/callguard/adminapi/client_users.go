package adminapi

import (
	"context"
	"net/http"
	"net/url"
)

// Users lists the console users (GET /v1/users).
func (c *Client) Users(ctx context.Context) (UsersView, error) {
	var res UsersView
	err := c.do(ctx, http.MethodGet, "/v1/users", nil, "", &res)
	return res, err
}

// CreateUser creates a console user (POST /v1/users).
func (c *Client) CreateUser(ctx context.Context, req UserRequest) (UserResult, error) {
	var res UserResult
	err := c.do(ctx, http.MethodPost, "/v1/users", req, req.IdempotencyKey, &res)
	return res, err
}

// SetUserRole gives the user name another role (PUT /v1/users/{name}/role).
func (c *Client) SetUserRole(ctx context.Context, name string, req RoleRequest) (UserResult, error) {
	var res UserResult
	err := c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(name)+"/role", req, req.IdempotencyKey, &res)
	return res, err
}

// SetUserPassword sets the user name's password (PUT
// /v1/users/{name}/password).
func (c *Client) SetUserPassword(ctx context.Context, name string, req PasswordRequest) (UserResult, error) {
	var res UserResult
	err := c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(name)+"/password", req, req.IdempotencyKey, &res)
	return res, err
}

// DisableUser disables the user name (POST /v1/users/{name}/disable).
func (c *Client) DisableUser(ctx context.Context, name string, req UserCommandRequest) (UserResult, error) {
	var res UserResult
	err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/disable", req, req.IdempotencyKey, &res)
	return res, err
}

// EnableUser enables the user name again (POST /v1/users/{name}/enable).
func (c *Client) EnableUser(ctx context.Context, name string, req UserCommandRequest) (UserResult, error) {
	var res UserResult
	err := c.do(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(name)+"/enable", req, req.IdempotencyKey, &res)
	return res, err
}
