package adminapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// The read side's routes: lists, import, reports, profiles and the
// projections behind them. Each reads a projection (package projections/*)
// through an interface of Deps, so the API does not care how a node
// assembles its read side; *lists.Lists, *importer.Importer,
// *reports.Reports, *profiles.Profiles and *runner.Runner implement them.

// Lists answers GET /v1/blacklist and GET /v1/whitelist.
type Lists interface {
	Blacklist(ctx context.Context, q lists.Query) (lists.Page[lists.BlacklistEntry], error)
	Whitelist(ctx context.Context, q lists.Query) (lists.Page[lists.WhitelistEntry], error)
}

// WhitelistImporter answers POST /v1/whitelist/import.
type WhitelistImporter interface {
	ImportWhitelist(ctx context.Context, csv io.Reader, def importer.Defaults) (importer.Result, error)
}

// Reports answers GET /v1/reports/daily and GET /v1/reports/top.
type Reports interface {
	Daily(ctx context.Context, q reports.Query) (reports.Daily, error)
	Top(ctx context.Context, q reports.TopQuery) (reports.Top, error)
}

// Profiles answers GET /v1/callers.
type Profiles interface {
	Search(ctx context.Context, q profiles.Query) (profiles.Page, error)
}

// Projections answers GET /v1/projections and rebuilds, and says how
// current a read of the lists, profiles or reports is.
type Projections interface {
	Status(ctx context.Context) ([]runner.Status, error)
	Rebuild(ctx context.Context, names ...string) error
	// Await waits, as long as ctx allows, until the named projections
	// have applied the log up to its head as it is when Await is called,
	// and says how current they are (see runner.Runner.Await).
	Await(ctx context.Context, names ...string) (runner.Freshness, error)
}

// HeaderProjectionStatus is set on every answer of the lists, profiles and
// reports: current, lagging or failed (see "Read side" in the package
// documentation). JSON answers carry the same in their "projection"
// member.
const HeaderProjectionStatus = "X-Projection-Status"

// freshness makes a read consistent with the writes before it: it waits,
// at most ReadWait, until the named projections have caught up with the
// head of the log as it is now — so a command answered before this read
// began, on this node or any node of the same log, is in the answer — and
// says how current the answer is, in the header and in what it returns
// for the JSON body. It returns nil on a node without projections.
func (s *Server) freshness(w http.ResponseWriter, r *http.Request, names ...string) *runner.Freshness {
	if s.d.Projections == nil {
		return nil
	}
	fr := AwaitRead(r.Context(), s.d.Projections, s.cfg.ReadWait, names...)
	if fr.Status != runner.ReadCurrent {
		s.d.Logger.Warn("admin API: read served from a projection that is not current", "request_id", requestID(r),
			"projections", names, "status", fr.Status, "reason", fr.Reason)
	}
	w.Header().Set(HeaderProjectionStatus, string(fr.Status))
	return &fr
}

// AwaitRead is the wait behind every read of the read side, the admin
// API's and the console's: it waits, at most wait, until the named
// projections have caught up with the head of the log as it is now, and
// says how current a read of them is. A failure to wait (an unknown name,
// a closed runner) reads as lagging, with the error as its reason.
func AwaitRead(ctx context.Context, p Projections, wait time.Duration, names ...string) runner.Freshness {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	fr, err := p.Await(ctx, names...)
	if err != nil {
		return runner.Freshness{Status: runner.ReadLagging, Reason: err.Error()}
	}
	return fr
}

// Answers of the read side: the read model's page or report, and how
// current it is.
type (
	listAnswer[T any] struct {
		lists.Page[T]
		Projection *runner.Freshness `json:"projection,omitempty"`
	}
	profilesAnswer struct {
		profiles.Page
		Projection *runner.Freshness `json:"projection,omitempty"`
	}
	dailyAnswer struct {
		reports.Daily
		Projection *runner.Freshness `json:"projection,omitempty"`
	}
	topAnswer struct {
		reports.Top
		Projection *runner.Freshness `json:"projection,omitempty"`
	}
)

var (
	_ Lists             = (*lists.Lists)(nil)
	_ WhitelistImporter = (*importer.Importer)(nil)
	_ Reports           = (*reports.Reports)(nil)
	_ Profiles          = (*profiles.Profiles)(nil)
	_ Projections       = (*runner.Runner)(nil)
)

// CSVMediaType is the media type of CSV answers and import bodies.
const CSVMediaType = "text/csv; charset=utf-8"

// absent answers 501 when a read-side dependency is missing.
func absent(w http.ResponseWriter, r *http.Request, missing bool, what string) bool {
	if missing {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node runs without "+what))
	}
	return missing
}

// wantsCSV reports whether the answer should be CSV: ?format=csv, or an
// Accept header that ranks text/csv above application/json (RFC 9110
// §12.5.1; a range's most specific match gives its quality).
func wantsCSV(r *http.Request) bool {
	switch strings.ToLower(r.URL.Query().Get("format")) {
	case "csv":
		return true
	case "json":
		return false
	}
	csvQ, jsonQ := -1.0, -1.0
	csvSpec, jsonSpec := -1, -1
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		match := func(full, family string, spec *int, qv *float64) {
			s := -1
			switch mt {
			case full:
				s = 2
			case family:
				s = 1
			case "*/*":
				s = 0
			}
			if s > *spec {
				*spec, *qv = s, q
			}
		}
		match("text/csv", "text/*", &csvSpec, &csvQ)
		match("application/json", "application/*", &jsonSpec, &jsonQ)
	}
	// A tie (*/*, or no Accept at all) answers JSON.
	return csvQ > 0 && csvQ > jsonQ
}

// writeCSV sends a CSV answer as an attachment named name.
func (s *Server) writeCSV(w http.ResponseWriter, r *http.Request, name string, write func(io.Writer) error) {
	var b bytes.Buffer
	if err := write(&b); err != nil {
		s.fail(w, r, fmt.Errorf("encode %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", CSVMediaType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, name))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes()) // a write error means the client left
}

// readFail answers a read-side error as the problem it calls for.
func (s *Server) readFail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, lists.ErrQuery), errors.Is(err, profiles.ErrQuery), errors.Is(err, reports.ErrQuery):
		writeProblem(w, r, newProblem(CodeInvalidRequest, err.Error()))
	case errors.Is(err, reports.ErrDate):
		writeProblem(w, r, newProblem(CodeInvalidDate, err.Error()))
	case errors.Is(err, importer.ErrCSV):
		writeProblem(w, r, newProblem(CodeInvalidCSV, err.Error()))
	case errors.Is(err, runner.ErrUnknownProjection):
		writeProblem(w, r, newProblem(CodeUnknownProjection, err.Error()))
	case errors.Is(err, runner.ErrClosed), errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		s.d.Logger.Warn("admin API: read side failed", "request_id", requestID(r), "err", err)
		writeProblem(w, r, newProblem(CodeReadSideFailed, "the read side could not be read; retry later"))
	default:
		s.fail(w, r, err)
	}
}

// queryInt reads an optional integer query parameter.
func (v *validation) queryInt(q url.Values, name string) int {
	raw := q.Get(name)
	if raw == "" {
		return 0
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		v.add(name, inQuery, fmt.Sprintf("%q is not an integer", clip(raw)))
	}
	return n
}

// queryBool reads an optional boolean query parameter.
func (v *validation) queryBool(q url.Values, name string) bool {
	raw := q.Get(name)
	if raw == "" {
		return false
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		v.add(name, inQuery, fmt.Sprintf("%q is not true or false", clip(raw)))
	}
	return b
}

// prefix reads a number prefix, normalised like a number (phone.Prefix):
// "8999123" finds what "+7999123" finds.
func (v *validation) prefix(n *phone.Normalizer, q url.Values) string {
	p, err := n.Prefix(q.Get("prefix"))
	if err != nil {
		v.add("prefix", inQuery, fmt.Sprintf("%q is not the start of a phone number such as +7999 or 8999", clip(q.Get("prefix"))))
	}
	return p
}

// limit reads a page size. One rule for every route: absent means the
// route's default, else it must be 1 to most; a limit of zero, below zero
// or above the most is refused, never clamped, so that a client learns
// the bound instead of getting a page it did not ask for.
func (v *validation) limit(q url.Values, most, def int) int {
	if !q.Has("limit") {
		return 0
	}
	n := v.queryInt(q, "limit")
	if v.failedOn("limit") {
		return 0
	}
	if n < 1 || n > most {
		v.add("limit", inQuery, fmt.Sprintf("is %d, want 1 to %d (%d when absent)", n, most, def))
		return 0
	}
	return n
}

// failedOn reports whether field has an error already.
func (v *validation) failedOn(field string) bool {
	for _, e := range v.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// listQuery reads the common parameters of the list routes.
func (v *validation) listQuery(n *phone.Normalizer, q url.Values) lists.Query {
	return lists.Query{
		Prefix: v.prefix(n, q), After: q.Get("after"), Limit: v.limit(q, lists.MaxLimit, lists.DefaultLimit),
		IncludeExpired: v.queryBool(q, "expired"),
	}
}

func (s *Server) blacklist(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Lists == nil, "the lists") {
		return
	}
	var v validation
	q := r.URL.Query()
	lq := v.listQuery(s.d.Normalizer, q)
	lq.Level = v.queryInt(q, "level")
	lq.Kind = schema.BlockKind(q.Get("kind"))
	lq.Rule = schema.Rule(q.Get("rule"))
	if v.failed(w, r) {
		return
	}
	serveList(s, w, r, lq, "blacklist", s.d.Lists.Blacklist, lists.WriteBlacklistCSV)
}

func (s *Server) whitelistList(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Lists == nil, "the lists") {
		return
	}
	var v validation
	lq := v.listQuery(s.d.Normalizer, r.URL.Query())
	if v.failed(w, r) {
		return
	}
	serveList(s, w, r, lq, "whitelist", s.d.Lists.Whitelist, lists.WriteWhitelistCSV)
}

// serveList answers a list query with a page as JSON or, when the client
// asks for CSV, with every entry the filters match (an export ignores
// paging).
func serveList[T any](s *Server, w http.ResponseWriter, r *http.Request, lq lists.Query, name string,
	fetch func(context.Context, lists.Query) (lists.Page[T], error), writeCSV func(io.Writer, []T) error) {
	csv := wantsCSV(r)
	if csv {
		lq.After, lq.Limit = "", lists.Unlimited
	}
	fr := s.freshness(w, r, lists.Name)
	page, err := fetch(r.Context(), lq)
	if err != nil {
		s.readFail(w, r, fmt.Errorf("%s: %w", name, err))
		return
	}
	if csv {
		s.writeCSV(w, r, name+".csv", func(out io.Writer) error { return writeCSV(out, page.Items) })
		return
	}
	s.writeJSON(w, r, http.StatusOK, listAnswer[T]{Page: page, Projection: fr})
}

// importWhitelist reads a whitelist CSV and sends one whitelist command
// per row through the grains. It answers 200 with what happened to each
// row, even when some were refused; a body that is not a whitelist CSV
// at all is a 400 with nothing applied.
func (s *Server) importWhitelist(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Import == nil, "the whitelist import") {
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "text/csv" && mt != "text/plain") {
		writeProblem(w, r, newProblem(CodeUnsupportedMediaType, fmt.Sprintf("Content-Type is %q; send the whitelist as text/csv", clip(r.Header.Get("Content-Type")))))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		writeProblem(w, r, newProblem(CodeBodyTooLarge, fmt.Sprintf("the body is %d bytes; the limit is %d", r.ContentLength, MaxBodyBytes)))
		return
	}
	var v validation
	q := r.URL.Query()
	var def importer.Defaults
	if by := firstNonEmpty(q.Get("by"), r.Header.Get(HeaderAdmin)); by != "" {
		def.By = v.text("by", inQuery, by)
	}
	if reason := q.Get("reason"); reason != "" {
		def.Reason = v.text("reason", inQuery, reason)
	}
	if v.failed(w, r) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, newProblem(CodeBodyTooLarge, fmt.Sprintf("the body is over the limit of %d bytes", tooBig.Limit)))
		return
	case err != nil:
		s.fail(w, r, fmt.Errorf("read the import: %w", err))
		return
	}
	// The whole file gets the request's own time, not one command's: a
	// file of thousands of rows takes seconds.
	res, err := s.d.Import.ImportWhitelist(r.Context(), bytes.NewReader(body), def)
	if err != nil {
		s.readFail(w, r, fmt.Errorf("import: %w", err))
		return
	}
	s.d.Logger.Info("admin whitelist import", "request_id", requestID(r), "file", res.File, "rows", res.Rows,
		"applied", res.Applied, "repeated", res.Repeated, "failed", res.Failed, "by", def.By)
	s.writeJSON(w, r, http.StatusOK, res)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// callee reads the callee filter: a number in any spelling the
// normaliser accepts, or as the trunk presented it.
func (s *Server) callee(q url.Values) string {
	c := strings.TrimSpace(q.Get("callee"))
	if c == "" {
		return ""
	}
	if n := s.d.Normalizer.Normalize(c); n.Kind == phone.KindE164 {
		return n.Key
	}
	return c
}

func (s *Server) dailyReport(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Reports == nil, "the reports") {
		return
	}
	q := r.URL.Query()
	fr := s.freshness(w, r, reports.Name)
	d, err := s.d.Reports.Daily(r.Context(), reports.Query{From: q.Get("from"), To: q.Get("to"), Callee: s.callee(q)})
	if err != nil {
		s.readFail(w, r, fmt.Errorf("daily report: %w", err))
		return
	}
	if wantsCSV(r) {
		s.writeCSV(w, r, fmt.Sprintf("calls-%s-%s.csv", d.From, d.To), d.WriteCSV)
		return
	}
	s.writeJSON(w, r, http.StatusOK, dailyAnswer{Daily: d, Projection: fr})
}

func (s *Server) topReport(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Reports == nil, "the reports") {
		return
	}
	var v validation
	q := r.URL.Query()
	limit := v.limit(q, reports.MaxTop, reports.DefaultTop)
	if v.failed(w, r) {
		return
	}
	fr := s.freshness(w, r, reports.Name)
	top, err := s.d.Reports.Top(r.Context(), reports.TopQuery{From: q.Get("from"), To: q.Get("to"), Limit: limit})
	if err != nil {
		s.readFail(w, r, fmt.Errorf("top callers: %w", err))
		return
	}
	if wantsCSV(r) {
		s.writeCSV(w, r, fmt.Sprintf("top-%s-%s.csv", top.From, top.To), top.WriteCSV)
		return
	}
	s.writeJSON(w, r, http.StatusOK, topAnswer{Top: top, Projection: fr})
}

func (s *Server) searchCallers(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Profiles == nil, "the caller profiles") {
		return
	}
	var v validation
	q := r.URL.Query()
	pq := profiles.Query{Prefix: v.prefix(s.d.Normalizer, q), After: q.Get("after"), Limit: v.limit(q, profiles.MaxLimit, profiles.DefaultLimit)}
	if v.failed(w, r) {
		return
	}
	fr := s.freshness(w, r, profiles.Name)
	page, err := s.d.Profiles.Search(r.Context(), pq)
	if err != nil {
		s.readFail(w, r, fmt.Errorf("search callers: %w", err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, profilesAnswer{Page: page, Projection: fr})
}

// ProjectionsView answers GET /v1/projections and rebuilds.
type ProjectionsView struct {
	// Rebuilding names the projections a rebuild started (rebuild only).
	Rebuilding  []string        `json:"rebuilding,omitempty"`
	Projections []runner.Status `json:"projections"`
}

func (s *Server) projections(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Projections == nil, "projections") {
		return
	}
	sts, err := s.d.Projections.Status(r.Context())
	if err != nil {
		s.readFail(w, r, fmt.Errorf("projections: %w", err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, ProjectionsView{Projections: sts})
}

// rebuild drops a projection (or all) and replays it from the start of
// the log. It answers 202 as soon as the read model is dropped: the
// replay goes on in the background, and GET /v1/projections shows it.
func (s *Server) rebuild(w http.ResponseWriter, r *http.Request) {
	if absent(w, r, s.d.Projections == nil, "projections") {
		return
	}
	name := r.PathValue("name")
	var names []string
	if name != "all" {
		names = []string{name}
	}
	if err := s.d.Projections.Rebuild(r.Context(), names...); err != nil {
		s.readFail(w, r, fmt.Errorf("rebuild %s: %w", clip(name), err))
		return
	}
	s.d.Logger.Info("admin projection rebuild", "request_id", requestID(r), "projection", name)
	sts, err := s.d.Projections.Status(r.Context())
	if err != nil {
		s.readFail(w, r, fmt.Errorf("projections: %w", err))
		return
	}
	view := ProjectionsView{Projections: sts}
	for _, st := range sts {
		if name == "all" || st.Name == name {
			view.Rebuilding = append(view.Rebuilding, st.Name)
		}
	}
	s.writeJSON(w, r, http.StatusAccepted, view)
}
