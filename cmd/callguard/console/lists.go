package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
)

// listLimit is a list page's length.
const listLimit = 100

// blockRules are the rules a blacklist entry can have, for the filter.
var blockRules = []schema.Rule{schema.RuleHourlyLimit, schema.RuleDailyLimit, schema.RuleEscalation, schema.RuleManual}

// listData is the Data of the blacklist and whitelist pages.
type listData struct {
	List   string // "blacklist" or "whitelist"
	Filter listFilter
	Black  []lists.BlacklistEntry
	White  []lists.WhitelistEntry
	Total  int
	Next   string
	CSV    string
	Err    string
	// Unavailable: the node has no lists.
	Unavailable bool
	CanImport   bool
	// Import is the report of the import just done, if any.
	Import *importData
	Levels []int
	Rules  []schema.Rule
}

// listFilter is the filter form as typed.
type listFilter struct {
	Prefix, Level, Kind, Rule string
	Expired                   bool
}

// query returns the filter as URL parameters (without paging).
func (f listFilter) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"prefix": f.Prefix, "level": f.Level, "kind": f.Kind, "rule": f.Rule} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Expired {
		q.Set("expired", "true")
	}
	return q
}

// list serves GET /console/lists/{blacklist|whitelist}; with
// format=csv, every entry the filter matches as a CSV download.
func (s *Server) list(w http.ResponseWriter, r *http.Request, c *visit) {
	name := r.PathValue("list")
	if name != "blacklist" && name != "whitelist" {
		s.renderError(w, r, c, http.StatusNotFound, "")
		return
	}
	s.listPage(w, r, c, name, r.URL.Query(), nil)
}

// listPage renders a list page for the query q, with an import's report
// on top when imp is set.
func (s *Server) listPage(w http.ResponseWriter, r *http.Request, c *visit, name string, q url.Values, imp *importData) {
	d := listData{
		List: name, Import: imp, Unavailable: s.d.Lists == nil, Rules: blockRules,
		CanImport: name == "whitelist" && roleRank(c.acct.Role) >= roleRank(RoleOperator) && s.d.Import != nil,
		Filter: listFilter{
			Prefix: strings.TrimSpace(q.Get("prefix")), Level: q.Get("level"), Kind: q.Get("kind"), Rule: q.Get("rule"),
			Expired: q.Get("expired") == "true" || q.Get("expired") == "on",
		},
	}
	for l := schema.MinLevel; l <= schema.MaxLevel; l++ {
		d.Levels = append(d.Levels, l)
	}
	if name == "whitelist" {
		d.Filter.Level, d.Filter.Kind, d.Filter.Rule = "", "", ""
	}
	if s.d.Lists == nil {
		s.render(w, r, c, http.StatusOK, "lists", d)
		return
	}
	lq, err := s.listQuery(c.lang, d.Filter)
	if err != nil {
		d.Err = err.Error()
		s.render(w, r, c, http.StatusBadRequest, "lists", d)
		return
	}
	csv := q.Get("format") == "csv"
	if csv {
		lq.Limit = lists.Unlimited
	} else {
		lq.After, lq.Limit = q.Get("after"), listLimit
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	s.fresh(ctx, c, lists.Name)
	var (
		next string
		out  bytes.Buffer
	)
	if name == "blacklist" {
		var p lists.Page[lists.BlacklistEntry]
		if p, err = s.d.Lists.Blacklist(ctx, lq); err == nil {
			d.Black, d.Total, next = p.Items, p.Total, p.Next
			if csv {
				err = lists.WriteBlacklistCSV(&out, p.Items)
			}
		}
	} else {
		var p lists.Page[lists.WhitelistEntry]
		if p, err = s.d.Lists.Whitelist(ctx, lq); err == nil {
			d.White, d.Total, next = p.Items, p.Total, p.Next
			if csv {
				err = lists.WriteWhitelistCSV(&out, p.Items)
			}
		}
	}
	switch {
	case errors.Is(err, lists.ErrQuery):
		d.Err = err.Error()
		s.render(w, r, c, http.StatusBadRequest, "lists", d)
		return
	case err != nil:
		s.d.Logger.Warn("console: read a list", "list", name, "err", err)
		d.Err = translate(c.lang, "common.failed", name)
		s.render(w, r, c, http.StatusServiceUnavailable, "lists", d)
		return
	}
	if csv {
		h := w.Header()
		h.Set("Content-Type", adminapi.CSVMediaType)
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".csv"))
		h.Set("Cache-Control", "no-store")
		_, _ = w.Write(out.Bytes()) // a write error means the browser left
		return
	}
	fq := d.Filter.query()
	if next != "" {
		nq := d.Filter.query()
		nq.Set("after", next)
		d.Next = "/console/lists/" + name + "?" + nq.Encode()
	}
	fq.Set("format", "csv")
	d.CSV = "/console/lists/" + name + "?" + fq.Encode()
	s.render(w, r, c, http.StatusOK, "lists", d)
}

// listQuery reads the filter as the API reads its query; its errors are
// in the page's language.
func (s *Server) listQuery(lang string, f listFilter) (lists.Query, error) {
	var lq lists.Query
	p, err := s.d.Normalizer.Prefix(f.Prefix)
	if err != nil {
		return lq, errors.New(translate(lang, "numbers.badprefix", f.Prefix))
	}
	lq.Prefix, lq.IncludeExpired = p, f.Expired
	if f.Level != "" {
		if lq.Level, err = strconv.Atoi(f.Level); err != nil {
			return lq, errors.New(translate(lang, "lists.badlevel", f.Level))
		}
	}
	lq.Kind, lq.Rule = schema.BlockKind(f.Kind), schema.Rule(f.Rule)
	return lq, nil
}

// importData is the import report page's Data.
type importData struct {
	Result importer.Result
	// Rows are Result.Errors in the page's language.
	Rows []importRow
	Err  string
}

// importRow is a row the import did not apply, as the report shows it.
type importRow struct {
	Line           int
	Number, Column string
	Problem        string
	Retry          bool
}

// importRows says each row's problem in the page's language, from its
// code; the importer's English words stand beside a detail no catalogue
// holds (a grain's refusal).
func (s *Server) importRows(lang string, errs []importer.RowError) []importRow {
	out := make([]importRow, len(errs))
	for i, e := range errs {
		r := importRow{Line: e.Line, Number: e.Number, Retry: e.Retry, Problem: e.Error}
		if e.Field != "" {
			r.Column = translate(lang, "import.col."+e.Field)
		}
		switch e.Code {
		case importer.RowNumber:
			if e.Number == "" {
				r.Problem = translate(lang, "import.row.nonumber")
			} else {
				r.Problem = translate(lang, "import.row.number", s.d.Normalizer.Region())
			}
		case importer.RowDuplicate:
			r.Problem = translate(lang, "import.row.duplicate", e.DuplicateOf)
		case importer.RowText:
			r.Problem = translate(lang, "import.row.text", schema.MaxText)
		case importer.RowUntil:
			r.Problem = translate(lang, "import.row.until", e.Value)
		case importer.RowPast:
			r.Problem = translate(lang, "import.row.past", e.Value)
		case importer.RowRefused:
			r.Problem = translate(lang, "import.row.refused", e.Error)
		case importer.RowRetry:
			r.Problem = translate(lang, "import.row.retry")
		}
		out[i] = r
	}
	return out
}

// fileProblem says why a file is not a whitelist in the page's language.
func fileProblem(lang string, err error) string {
	var fe *importer.FileError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	switch fe.Code {
	case importer.FileEncoding:
		return translate(lang, "import.file.encoding")
	case importer.FileEmpty:
		return translate(lang, "import.file.empty")
	case importer.FileColumnTwice:
		return translate(lang, "import.file.twice", fe.Column)
	case importer.FileNoNumber:
		return translate(lang, "import.file.nonumber", fe.Header)
	case importer.FileTooManyRows:
		return translate(lang, "import.file.toomany", fe.Max)
	case importer.FileSyntax:
		return translate(lang, "import.file.syntax", fe.Detail)
	}
	return fe.Error()
}

// importWhitelist serves POST /console/lists/whitelist/import: the
// uploaded CSV through the same importer as the API's, by the signed-in
// user, then the report of the rows that were not applied.
func (s *Server) importWhitelist(w http.ResponseWriter, r *http.Request, c *visit) {
	if s.d.Import == nil {
		s.renderError(w, r, c, http.StatusNotFound, "")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		s.flash(c, translate(c.lang, "import.nofile"), true)
		http.Redirect(w, r, "/console/lists/whitelist", http.StatusSeeOther)
		return
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxUploadBytes+1))
	if err != nil || len(body) > maxUploadBytes {
		s.renderError(w, r, c, http.StatusRequestEntityTooLarge, "")
		return
	}
	def := importer.Defaults{By: c.acct.Name, Reason: strings.TrimSpace(r.PostFormValue("why"))}
	// The whole file gets the request's time, not one page's: a file of
	// thousands of rows takes seconds.
	res, err := s.d.Import.ImportWhitelist(r.Context(), bytes.NewReader(body), def)
	d := importData{Result: res, Rows: s.importRows(c.lang, res.Errors)}
	switch {
	case errors.Is(err, importer.ErrCSV):
		d.Err = fileProblem(c.lang, err)
	case err != nil:
		s.d.Logger.Warn("console: whitelist import", "err", err)
		d.Err = translate(c.lang, "common.failed", "CSV")
	default:
		s.d.Logger.Info("console whitelist import", "by", def.By, "file", res.File, "name", clip(hdr.Filename),
			"rows", res.Rows, "applied", res.Applied, "repeated", res.Repeated, "failed", res.Failed)
	}
	s.listPage(w, r, c, "whitelist", url.Values{}, &d)
}
