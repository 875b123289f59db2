package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
)

// The vendored chart library (assets/, see assets/VENDORED.md) and the
// console's own stylesheet and script (static/), both served under
// /console/static/.
//
//go:embed assets/uPlot.iife.min.js assets/uPlot.min.css
var assetsFS embed.FS

//go:embed static/*
var staticFS embed.FS

// CSP is the Content-Security-Policy of every answer: only the console's
// own files, no inline script or style, no framing, forms post only here.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// visit is what the console knows of one request.
type visit struct {
	lang string
	sess session
	// acct is the signed-in user's current account; nil when signed out.
	acct *Account
	// signinCSRF is the sign-in form's token (signed out).
	signinCSRF string
	// flash set for this very render (not kept in the session).
	flash      string
	flashError bool
	// lagging is the note of a read that did not catch up (see fresh).
	lagging string
	// status for the access log.
	user string
}

type visitKey struct{}

func visitOf(r *http.Request) *visit {
	if c, ok := r.Context().Value(visitKey{}).(*visit); ok {
		return c
	}
	return &visit{lang: "en"}
}

// pageFunc serves one page for a signed-in user.
type pageFunc func(w http.ResponseWriter, r *http.Request, c *visit)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", s.static)
	mux.HandleFunc("GET /console/signin", s.signinPage)
	mux.HandleFunc("POST /console/signin", s.signin)
	mux.Handle("POST /console/signout", s.signed(RoleViewer, s.signout))

	mux.Handle("GET /console/{$}", s.signed(RoleViewer, s.today))
	mux.Handle("GET /console/numbers", s.signed(RoleViewer, s.numbers))
	mux.Handle("GET /console/numbers/{number}", s.signed(RoleViewer, s.caller))
	mux.Handle("POST /console/numbers/{number}/{verb}", s.signed(RoleOperator, s.callerCommand))
	mux.Handle("GET /console/lists/{list}", s.signed(RoleViewer, s.list))
	mux.Handle("POST /console/lists/whitelist/import", s.signed(RoleOperator, s.importWhitelist))
	mux.Handle("GET /console/reports", s.signed(RoleViewer, s.reports))
	mux.Handle("GET /console/whatif", s.signed(RoleViewer, s.whatif))
	mux.Handle("GET /console/users", s.signed(RoleAdmin, s.users))
	mux.Handle("POST /console/users", s.signed(RoleAdmin, s.userCommand))
	mux.Handle("POST /console/users/{name}/{action}", s.signed(RoleAdmin, s.userCommand))

	// Everything else under the prefix: the sign-in redirect for a
	// stranger, a 404 (or 405) in the layout for a user.
	mux.Handle(Prefix, s.signed(RoleViewer, func(w http.ResponseWriter, r *http.Request, c *visit) {
		if _, pattern := mux.Handler(withMethod(r, http.MethodGet)); pattern != Prefix && r.Method != http.MethodGet {
			s.renderError(w, r, c, http.StatusMethodNotAllowed, "")
			return
		}
		s.renderError(w, r, c, http.StatusNotFound, "")
	}))

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.d.Logger.Warn("console: cross-origin request refused", "method", r.Method, "path", clip(r.URL.Path),
			"origin", clip(r.Header.Get("Origin")), "remote", r.RemoteAddr)
		s.renderError(w, r, visitOf(r), http.StatusForbidden, "error.403csrf")
	}))
	return s.secured(s.logged(s.recovered(s.language(cop.Handler(mux)))))
}

// withMethod returns a shallow copy of r with another method, to ask the
// mux whether the path exists at all.
func withMethod(r *http.Request, m string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Method = m
	return r2
}

// mergedStatic serves assets/ and static/ as one folder.
type mergedStatic struct{}

func (mergedStatic) Open(name string) (fs.File, error) {
	if f, err := staticFS.Open("static/" + name); err == nil {
		return f, nil
	}
	if strings.HasPrefix(name, "uPlot.") {
		return assetsFS.Open("assets/" + name)
	}
	return nil, fs.ErrNotExist
}

// secured sets the security headers of every answer.
func (s *Server) secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.cfg.TLS {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// language picks the page's language, and handles ?lang= on a GET: it
// keeps the choice in a cookie and redirects to the same page without
// the parameter.
func (s *Server) language(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := visitOf(r)
		if q := r.URL.Query(); r.Method == http.MethodGet && q.Has("lang") {
			if l := q.Get("lang"); validLang(l) {
				http.SetCookie(w, &http.Cookie{
					Name: langCookie, Value: l, Path: Prefix, MaxAge: 365 * 24 * 3600,
					HttpOnly: true, Secure: s.cfg.TLS, SameSite: http.SameSiteStrictMode,
				})
			}
			q.Del("lang")
			u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
			http.Redirect(w, r, u.String(), http.StatusSeeOther)
			return
		}
		c.lang = pickLang(r)
		next.ServeHTTP(w, r)
	})
}

// logged puts a visit in the context and logs one line per request: the
// path (never the query, never a header or a form), the user and the
// outcome. Static files log at debug.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now() // duration for the log only
		c := &visit{lang: "en"}
		r = r.WithContext(context.WithValue(r.Context(), visitKey{}, c))
		sw := &adminapi.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		switch {
		case sw.Status >= 500:
			level = slog.LevelWarn
		case strings.HasPrefix(r.URL.Path, "/console/static/"):
			level = slog.LevelDebug
		}
		s.d.Logger.Log(r.Context(), level, "console request", "method", r.Method, "path", clip(r.URL.Path),
			"status", sw.Status, "user", c.user, "ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

// recovered turns a panic into a 500 page.
func (s *Server) recovered(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.d.Logger.Error("console handler panicked", "path", clip(r.URL.Path), "panic", fmt.Sprint(v))
			s.renderError(w, r, visitOf(r), http.StatusInternalServerError, "")
		}()
		next.ServeHTTP(w, r)
	})
}

// signed serves h to a signed-in user whose current role is at least
// min. A stranger is sent to sign in (a POST gets 403: there is no page
// to come back to); a viewer's POST is refused; every POST must carry
// the session's CSRF token in its form.
func (s *Server) signed(min string, h pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := visitOf(r)
		var id string
		if ck, err := r.Cookie(sessionCookie); err == nil {
			id = ck.Value
		}
		sess, ok := s.sessions.get(id)
		if ok {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
			acct, live := s.d.Users.Account(ctx, sess.user)
			cancel()
			if !live || roleRank(acct.Role) == 0 {
				// Disabled or deleted since sign-in: out at once.
				s.sessions.destroyUser(sess.user)
				s.d.Logger.Info("console: session ended, the user is gone or disabled", "user", sess.user)
				ok = false
			} else {
				c.sess, c.acct, c.user = sess, &acct, acct.Name
			}
		}
		if !ok {
			if id != "" {
				s.clearSession(w)
			}
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
				return
			}
			s.renderError(w, r, c, http.StatusForbidden, "error.403csrf")
			return
		}
		if r.Method == http.MethodPost {
			if !s.parseForm(w, r, c) {
				return
			}
			if !tokensEqual(r.PostFormValue("csrf"), c.sess.csrf) {
				s.d.Logger.Warn("console: POST without a valid CSRF token refused", "user", c.user, "path", clip(r.URL.Path), "remote", r.RemoteAddr)
				s.renderError(w, r, c, http.StatusForbidden, "error.403csrf")
				return
			}
		}
		if roleRank(c.acct.Role) < roleRank(min) {
			s.renderError(w, r, c, http.StatusForbidden, "")
			return
		}
		h(w, r, c)
	})
}

// parseForm reads a POST's form, bounded; it answers the error itself.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request, c *visit) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes+maxFormBytes)
		err = r.ParseMultipartForm(maxUploadBytes + maxFormBytes)
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		err = r.ParseForm()
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.renderError(w, r, c, http.StatusRequestEntityTooLarge, "")
		return false
	case err != nil:
		s.renderError(w, r, c, http.StatusBadRequest, "error.403csrf")
		return false
	}
	return true
}

func (s *Server) setSession(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: Prefix, HttpOnly: true, Secure: s.cfg.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.MaxAge / time.Second),
	})
}

func (s *Server) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: Prefix, HttpOnly: true, Secure: s.cfg.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: -1,
	})
}

// clip bounds client-supplied text in logs.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}
