// Package adminapi is the guard's admin HTTP API: the commands admins post
// (whitelist, unwhitelist, block at a level, unblock) and the views ops
// read (a caller's standing and live counters, its audit timeline), plus a
// typed Client for the CLI. Standard library net/http, JSON in and out.
//
// # Routes
//
//	POST   /v1/whitelist                    {number, by?, reason, until?}   201 CommandResult
//	DELETE /v1/whitelist/{number}           {by?, reason}? or ?reason=      200 CommandResult
//	PUT    /v1/blocks/{number}              {level, by?, reason, until?}    200 CommandResult
//	DELETE /v1/blocks/{number}              {by?, reason}? or ?reason=      200 CommandResult
//	GET    /v1/callers/{number}                                             200 CallerView
//	GET    /v1/callers/{number}/history                                     200 audit timeline
//	GET    /v1/replay?limit-hour=...                                        200 replay report
//	GET    /v1/blacklist?prefix&level&kind&rule&expired&after&limit        200 page, or CSV
//	GET    /v1/whitelist?prefix&expired&after&limit                        200 page, or CSV
//	POST   /v1/whitelist/import?by&reason    text/csv                       200 import result
//	GET    /v1/reports/daily?from&to&callee                                 200 report, or CSV
//	GET    /v1/reports/top?from&to&limit                                    200 top callers, or CSV
//	GET    /v1/callers?prefix&after&limit                                   200 caller profiles
//	GET    /v1/projections                                                  200 projection status and lag
//	POST   /v1/projections/{name}/rebuild    (name or "all")                202 rebuilding
//	GET    /v1/problems                                                     200 {problems: [...]}
//	GET    /openapi.json  (no auth)                                         200 OpenAPI 3.1
//	GET    /healthz       (no auth)                                         200 "ok"
//
// GET /openapi.json is the reference; a test keeps it and the routes in
// step. {number} is any spelling the phone normaliser accepts, percent-
// encoded in a path ("%2B79990001122", "79990001122", "8%20999%20000-11-22"),
// or the literal "anonymous" for the shared key of callers without a
// number.
//
// # Read side
//
// The lists, reports, caller profiles and projections are read from the
// node's projections (package projections/...), which follow the event
// log on a cadence (a tenth of a second by default) when live; GET
// /v1/projections says how far behind each one is. A read waits, at most
// GUARD_ADMIN_READ_WAIT, until its projection has applied the log up to
// the head as it was when the read began (the wait has the projection
// commit at once): so a command answered before the read began is in
// the answer, on this node or any node of the same log. Every such
// answer says how current it is in the X-Projection-Status header —
// current; lagging (not caught up in time, or its writes fail and it
// retries by itself); failed (stopped on an event; rebuild it) — and a
// JSON answer in its "projection" member, with the reason. A list or report route answers CSV instead of JSON
// when the Accept header ranks text/csv above application/json, or with
// ?format=csv; a CSV export holds every entry the filters match, without
// paging. The whitelist import takes a CSV body (the whitelist export's
// columns: number, until, by, reason) and sends one whitelist command per
// row through the caller grains: invalid rows are reported by line and
// the rest applied, and importing the same file again writes nothing
// twice.
//
// # Authentication
//
// Every /v1 request carries "Authorization: Bearer <GUARD_ADMIN_TOKEN>";
// the token is compared in constant time and never logged. New refuses a
// configuration without a token even when the API listens on loopback.
// Loopback is not a trust boundary: every local user and process can
// connect to it, and so can any web page open in a browser on the machine
// (a cross-origin "simple" POST needs no preflight, and DNS rebinding
// defeats same-origin checks). A browser never adds an Authorization
// header by itself, so a required bearer token also rules out cross-site
// requests. Listening beyond loopback without a token gets its own
// refusal, as GUARD_ADMIN_LISTEN's documentation promises.
//
// # Who did it
//
// There is one token, shared by the admins, so it cannot say who sent a
// command. Each command therefore names its admin: the "by" member of the
// body or, for clients that send no body (a DELETE from curl), the X-Admin
// header. One of them is required; when both are given they must agree.
// "by" is recorded in the event and shown in the audit as given: it is
// attribution, not authentication. Use the body for names outside ASCII,
// which HTTP headers do not carry reliably.
//
// # Idempotency
//
// Every command has an ID, and the caller grain derives the ID of the
// event it writes from it, so a command written twice under one ID is
// stored once (the second answer says repeated: true). The ID is
// "<verb>:<Idempotency-Key>" when the request has an Idempotency-Key
// header (a bare or quoted string of 1–128 visible ASCII characters), so
// a client that retries after a timeout or a 503 with the same key cannot
// write twice, and a key reused by mistake for another kind of command is
// not silently swallowed. Without the header the ID is the request's own
// random UUID, which also appears as the problem instance and in the log.
//
// # Errors
//
// Every error is an RFC 9457 problem details object (application/
// problem+json) whose type is ProblemTypeBase + a code from one catalogue
// (see Catalogue and GET /v1/problems). Field errors come in an "errors"
// list. The caller grain's errors map as: caller.ErrInvalid 422
// command-refused, caller.ErrState 409 state-conflict, caller.ErrStore 503
// store-failed, caller.ErrUnavailable 503 caller-unavailable; 503s carry
// Retry-After.
//
// # Where it stands
//
// The API composes the write side (the caller grains, for commands and
// live counters) and the read side (the projections' lists, reports and
// profiles, the audit and replay of the policy's history). Actors and
// projections never import each other, so the one place that may hold
// both is cmd, which is why the package lives under cmd/callguard; the
// binary wires its dependencies (Deps) and nothing below imports it.
package adminapi
