package adminapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ProblemTypeBase prefixes every problem code to make the problem's type
// URI (RFC 9457 §3.1.1). The URIs identify the codes; they are not served.
// GET /v1/problems returns the catalogue they name.
const ProblemTypeBase = "https://callguard.dev/problems/"

// ProblemMediaType is the media type of an error response (RFC 9457 §3).
const ProblemMediaType = "application/problem+json"

// retryAfterSeconds is the Retry-After (RFC 9110 §10.2.3) sent with 503
// answers. The grain's own store timeout is 5 s and a cluster topology
// change settles in a few seconds, so retrying sooner mostly meets the
// same failure.
const retryAfterSeconds = 5

// Problem codes: the stable part of every error the API returns. Clients
// and the CLI branch on these, never on titles or details.
const (
	CodeUnauthorized         = "unauthorized"
	CodeNotFound             = "not-found"
	CodeMethodNotAllowed     = "method-not-allowed"
	CodeInvalidNumber        = "invalid-number"
	CodeInvalidRequest       = "invalid-request"
	CodeMalformedJSON        = "malformed-json"
	CodeUnsupportedMediaType = "unsupported-media-type"
	CodeBodyTooLarge         = "body-too-large"
	CodeStateConflict        = "state-conflict"
	CodeCommandRefused       = "command-refused"
	CodeUnknownCaller        = "unknown-caller"
	CodeStoreFailed          = "store-failed"
	CodeCallerUnavailable    = "caller-unavailable"
	CodeNotImplemented       = "not-implemented"
	CodeInternal             = "internal"
	CodeInvalidDate          = "invalid-date"
	CodeInvalidCSV           = "invalid-csv"
	CodeUnknownProjection    = "unknown-projection"
	CodeReadSideFailed       = "read-side-failed"
	CodeRangeExists          = "range-exists"
	CodeUnknownRange         = "unknown-range"
	CodeScheduleExists       = "schedule-exists"
	CodeUnknownSettings      = "unknown-settings"
	CodeUserExists           = "user-exists"
	CodeUnknownUser          = "unknown-user"
	CodeLastAdmin            = "last-admin"
)

// ProblemInfo documents one problem code.
type ProblemInfo struct {
	Code        string `json:"code"`
	Type        string `json:"type"`
	Status      int    `json:"status"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

// catalogue is the one list of errors the admin API returns, in the spirit
// of nats-server's errors.json: every problem response is built from an
// entry here, GET /v1/problems serves it, and a test checks that the
// OpenAPI document names exactly these codes. It is never written to; Type
// is filled in on the copies handed out.
var catalogue = []ProblemInfo{
	{Code: CodeUnauthorized, Status: http.StatusUnauthorized, Title: "Authentication required",
		Description: "The request has no Authorization header, a scheme other than Bearer, or a token that is not GUARD_ADMIN_TOKEN. The WWW-Authenticate header says which (RFC 6750 §3)."},
	{Code: CodeNotFound, Status: http.StatusNotFound, Title: "No such endpoint",
		Description: "No route matches the request path. GET /openapi.json lists the routes."},
	{Code: CodeMethodNotAllowed, Status: http.StatusMethodNotAllowed, Title: "Method not allowed",
		Description: "The path exists but not with this method; the Allow header lists the methods it takes."},
	{Code: CodeInvalidNumber, Status: http.StatusBadRequest, Title: "Not a phone number",
		Description: "The number in the path or body does not normalise to an E.164 number (or the literal \"anonymous\"). Accepted spellings include +79990001122, %2B79990001122 in a path, 79990001122 and 8 999 000-11-22 (numbers without a country code are read in the guard's default region). Nothing was written."},
	{Code: CodeInvalidRequest, Status: http.StatusBadRequest, Title: "Invalid request",
		Description: "One or more fields are missing or out of range (a missing reason or by, a level outside 1 to 9, an expiry not in the future, an unknown field, a member given twice, text that is not valid UTF-8, a limit outside its range). The errors member lists each field and what is wrong with it. Nothing was written."},
	{Code: CodeMalformedJSON, Status: http.StatusBadRequest, Title: "Malformed JSON",
		Description: "The request body is empty where one is required, is not JSON, or holds more than one JSON value. Nothing was written."},
	{Code: CodeUnsupportedMediaType, Status: http.StatusUnsupportedMediaType, Title: "Unsupported media type",
		Description: "A request body must be sent with Content-Type: application/json (text/csv for POST /v1/whitelist/import)."},
	{Code: CodeBodyTooLarge, Status: http.StatusRequestEntityTooLarge, Title: "Request body too large",
		Description: "The request body is larger than the API accepts (1 MiB). Nothing was written."},
	{Code: CodeStateConflict, Status: http.StatusConflict, Title: "Command does not fit the caller's state",
		Description: "The command is valid but does not apply to the caller as it stands: unwhitelist of a caller not on the whitelist, unblock of a caller with no block, block of a whitelisted caller (unwhitelist it first). Nothing was written; GET /v1/callers/{number} shows the state."},
	{Code: CodeCommandRefused, Status: http.StatusUnprocessableEntity, Title: "Command refused by the policy",
		Description: "The request passed the API's checks but the caller's grain refused the command as invalid, for example an expiry that is not after the caller's latest event. Nothing was written."},
	{Code: CodeUnknownCaller, Status: http.StatusNotFound, Title: "No history for this number",
		Description: "The event store holds no events for the number, so there is no timeline to show."},
	{Code: CodeStoreFailed, Status: http.StatusServiceUnavailable, Title: "Event store failed",
		Description: "The event store could not be read or written. A command may or may not have been written; retry with the same Idempotency-Key and it is written at most once. Retry-After says when to try again."},
	{Code: CodeCallerUnavailable, Status: http.StatusServiceUnavailable, Title: "Caller grain unavailable",
		Description: "The caller's grain could not be reached in time (the cluster is starting, changing topology or overloaded). Retry with the same Idempotency-Key after Retry-After seconds."},
	{Code: CodeNotImplemented, Status: http.StatusNotImplemented, Title: "Not available on this node",
		Description: "The endpoint exists but this node was started without the component that serves it (the audit timeline, replay, backups, or the read side: lists, import, reports, profiles, projections)."},
	{Code: CodeInternal, Status: http.StatusInternalServerError, Title: "Internal error",
		Description: "An unexpected error; the instance member matches the request_id in the guard's log."},
	{Code: CodeInvalidDate, Status: http.StatusBadRequest, Title: "Invalid date or range",
		Description: "A report's from or to is not a date YYYY-MM-DD (in the reports' time zone), from is after to, or the range is longer than 366 days."},
	{Code: CodeInvalidCSV, Status: http.StatusBadRequest, Title: "Not a whitelist CSV",
		Description: "The import's body is not UTF-8 CSV, has no header row with a number column, has a quoting error, or more than 10,000 rows. Nothing was applied; the detail names the line. Rows that are CSV but invalid (a bad number, a missing reason) are not this problem: they are listed in the import's answer."},
	{Code: CodeUnknownProjection, Status: http.StatusNotFound, Title: "No such projection",
		Description: "The projection named in the path is not one of this node's (GET /v1/projections lists them; all rebuilds every one)."},
	{Code: CodeReadSideFailed, Status: http.StatusServiceUnavailable, Title: "Read side unavailable",
		Description: "The projections' database or the event store behind it could not be read. Retry after Retry-After seconds; GET /v1/projections and /readyz say more."},
	{Code: CodeRangeExists, Status: http.StatusConflict, Title: "Range rule exists",
		Description: "The list already has a rule in force for this very prefix or range (the detail says who set it and why). Remove it first to change it; nothing was written. Overlapping rules of other extents are allowed: the most specific one applies."},
	{Code: CodeUnknownRange, Status: http.StatusNotFound, Title: "No such range rule",
		Description: "The list has no rule for this prefix or range (GET /v1/ranges lists them). Nothing was written."},
	{Code: CodeScheduleExists, Status: http.StatusConflict, Title: "Schedule exists",
		Description: "A schedule of this name exists (the detail says who added it and why). Remove it first to change it; nothing was written."},
	{Code: CodeUnknownSettings, Status: http.StatusNotFound, Title: "No such settings or schedule",
		Description: "The line has no settings of its own, or there is no schedule of this name (GET /v1/lines/settings and GET /v1/schedules list them). Nothing was written."},
	{Code: CodeUserExists, Status: http.StatusConflict, Title: "User exists",
		Description: "A console user of this name exists, enabled or disabled (the detail says which and who created it). Names are never reused: enable the user, or choose another name. Nothing was written."},
	{Code: CodeUnknownUser, Status: http.StatusNotFound, Title: "No such user",
		Description: "There is no console user of this name (GET /v1/users lists them). Nothing was written."},
	{Code: CodeLastAdmin, Status: http.StatusConflict, Title: "Last enabled admin",
		Description: "The command would disable or demote the only enabled admin, leaving nobody to manage the console's users. Make another user admin first. Nothing was written."},
}

// Catalogue returns a copy of the problem catalogue, type URIs filled in.
func Catalogue() []ProblemInfo {
	out := make([]ProblemInfo, len(catalogue))
	for i, p := range catalogue {
		p.Type = ProblemTypeBase + p.Code
		out[i] = p
	}
	return out
}

func problemInfo(code string) ProblemInfo {
	for _, p := range catalogue {
		if p.Code == code {
			p.Type = ProblemTypeBase + p.Code
			return p
		}
	}
	// A code missing from the catalogue is a programming error; answer
	// with the internal problem rather than an undocumented one.
	return problemInfo(CodeInternal)
}

// FieldError names one invalid part of a request.
type FieldError struct {
	// Field is the JSON member, path parameter, query parameter or header.
	Field string `json:"field"`
	// In says where Field is: body, path, query or header.
	In     string `json:"in"`
	Detail string `json:"detail"`
}

// Problem is an RFC 9457 problem details object. It is the error type the
// Client returns for any answer that is not a success.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Errors lists the invalid fields of an invalid-request or
	// invalid-number problem (an extension member, RFC 9457 §3.2).
	Errors []FieldError `json:"errors,omitempty"`
}

// Code returns the problem's code: the last segment of its type URI.
func (p *Problem) Code() string {
	return strings.TrimPrefix(p.Type, ProblemTypeBase)
}

// Error says what is wrong in one sentence a person at the CLI can act
// on: each invalid field with what is wrong with it (the detail only
// summarises them), else the detail, else the title. It leaves out the
// HTTP status and the problem type: Code and Status carry them for
// programs.
func (p *Problem) Error() string {
	if len(p.Errors) > 0 {
		parts := make([]string, len(p.Errors))
		for i, fe := range p.Errors {
			parts[i] = fe.Field + " " + fe.Detail
		}
		return strings.Join(parts, "; ")
	}
	if p.Detail != "" {
		return p.Detail
	}
	if p.Title != "" {
		return p.Title
	}
	return fmt.Sprintf("the admin API answered %d", p.Status)
}

// newProblem builds the problem of code with detail.
func newProblem(code, detail string) *Problem {
	info := problemInfo(code)
	return &Problem{Type: info.Type, Title: info.Title, Status: info.Status, Detail: detail}
}

// writeProblem sends p. The instance is the request ID the log line of the
// request carries, so an operator can find the server side of an error a
// client reports.
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = "urn:uuid:" + requestID(r)
	}
	h := w.Header()
	h.Set("Content-Type", ProblemMediaType)
	h.Set("X-Content-Type-Options", "nosniff")
	if p.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	if st, ok := w.(*StatusWriter); ok {
		st.Code = p.Code()
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p) // the client went away; nothing to do
}
