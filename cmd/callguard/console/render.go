package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/callguard/callguard/actors/policy"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageNames are the templates that render a whole page in the layout.
var pageNames = []string{"signin", "error", "today", "numbers", "caller", "lists", "reports", "whatif", "users"}

// pages holds each page's template set: the layout plus the page.
type pages struct{ sets map[string]*template.Template }

var funcs = template.FuncMap{
	"add": func(a, b int) int { return a + b },
}

func loadPages() (*pages, error) {
	p := &pages{sets: make(map[string]*template.Template)}
	for _, name := range pageNames {
		file := "templates/" + name + ".html"
		if _, err := fs.Stat(templateFS, file); err != nil {
			continue // a page not written yet
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", file)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// view is what every page template gets: the layout's parts and the
// page's own Data.
type view struct {
	Lang string
	// User is nil on the sign-in and some error pages: no nav then.
	User  *Account
	CSRF  string
	Flash string
	// FlashError marks Flash as an error (role="alert").
	FlashError bool
	// Nav is the current page, for aria-current in the nav.
	Nav string
	// Charts adds uPlot and the console's script.
	Charts bool
	// Lagging says the page's read-side figures may miss the latest
	// writes: its projection had not caught up in time.
	Lagging string
	// Path is the current path, for the language links' target.
	Path string
	Data any
	zone *time.Location
}

// When shows a time in the console's zone; zero shows as nothing.
func (v *view) When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(v.zone).Format("2006-01-02 15:04:05")
}

// TimeZone names the zone When shows times in (GUARD_TIMEZONE), so a
// page's times say where they were taken.
func (v *view) TimeZone() string { return v.zone.String() }

// WhenPtr is When for an optional time.
func (v *view) WhenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return v.When(*t)
}

// T returns a text of the catalogue in the page's language.
func (v *view) T(key string, args ...any) string { return translate(v.Lang, key, args...) }

// W shows a word of the domain (a verdict, an outcome, a block's kind)
// in the page's language; one the catalogue lacks shows as it is.
func (v *view) W(word any) string {
	w := fmt.Sprint(word)
	if _, ok := catalogue["w."+w]; ok {
		return v.T("w." + w)
	}
	return w
}

// In shows a word of a group of the catalogue ("state", "rule",
// "field"): the text of key group.word in the page's language, or the
// word as it is when the catalogue lacks it (a rule added later).
func (v *view) In(group string, word any) string {
	key := group + "." + fmt.Sprint(word)
	if _, ok := catalogue[key]; ok {
		return v.T(key)
	}
	return fmt.Sprint(word)
}

// Standing sums up a caller's standing in a what-if row: whitelisted, or
// the verdict its next call gets with its block's level and rule.
func (v *view) Standing(st policy.Status) string {
	switch {
	case st.Whitelisted:
		return v.T("caller.whitelisted")
	case st.Level > 0 && st.Rule != "":
		return fmt.Sprintf("%s (%s %d, %s)", v.W(st.Next), v.T("tl.level"), st.Level, v.In("rule", st.Rule))
	case st.Level > 0:
		return fmt.Sprintf("%s (%s %d)", v.W(st.Next), v.T("tl.level"), st.Level)
	}
	return v.W(st.Next)
}

// CanAct says the user may post commands (operator and admin).
func (v *view) CanAct() bool { return v.User != nil && roleRank(v.User.Role) >= roleRank(RoleOperator) }

// IsAdmin says the user may manage users.
func (v *view) IsAdmin() bool { return v.User != nil && v.User.Role == RoleAdmin }

// RoleName is the user's role in the page's language.
func (v *view) RoleName() string {
	if v.User == nil {
		return ""
	}
	return v.T("role." + v.User.Role)
}

// render writes a page in the layout with status. It renders into a
// buffer first so that a template error gives a 500, not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, c *visit, status int, page string, data any) {
	t, ok := s.pages.sets[page]
	if !ok {
		s.d.Logger.Error("console: no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v := &view{Lang: c.lang, Nav: page, Path: r.URL.Path, Data: data, zone: s.d.Zone, Lagging: c.lagging}
	if c.acct != nil {
		v.User = c.acct
		v.CSRF = c.sess.csrf
		v.Flash, v.FlashError = s.sessions.takeFlash(c.sess.id)
	}
	if c.signinCSRF != "" {
		v.CSRF = c.signinCSRF
	}
	if c.flash != "" {
		v.Flash, v.FlashError = c.flash, c.flashError
	}
	if cd, ok := data.(interface{ charts() bool }); ok {
		v.Charts = cd.charts()
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		s.d.Logger.Error("console: render", "page", page, "err", err)
		if page != "error" {
			s.renderError(w, r, c, http.StatusInternalServerError, "")
			return
		}
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", c.lang)
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes()) // a write error means the browser left
}

// errorData is the error page's Data.
type errorData struct {
	Status  int
	Message string
}

// renderError shows an error page in the layout; detail, when given, is
// a catalogue key that replaces the status's general message.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, c *visit, status int, detail string) {
	if detail == "" {
		detail = fmt.Sprintf("error.%d", status)
		if _, ok := catalogue[detail]; !ok {
			detail = "error.500"
		}
	}
	s.render(w, r, c, status, "error", errorData{Status: status, Message: translate(c.lang, detail)})
}

// flashKey keeps a flash for the session's next page.
func (s *Server) flash(c *visit, text string, isError bool) {
	if c.sess.id != "" {
		s.sessions.setFlash(c.sess.id, text, isError)
	}
}
