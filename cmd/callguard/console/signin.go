package console

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
)

// maxNameLen and maxPasswordLen bound what a sign-in form may send; the
// users package allows names of 1 to 64 characters.
const (
	maxNameLen     = 64
	maxPasswordLen = 1024
)

// signinData is the sign-in page's Data.
type signinData struct{ User string }

// signinPage shows the form, with a fresh double-submit token in a
// cookie. A signed-in user goes to Today.
func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	c := visitOf(r)
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if sess, ok := s.sessions.get(ck.Value); ok {
			if _, live := s.d.Users.Account(r.Context(), sess.user); live {
				http.Redirect(w, r, Prefix, http.StatusSeeOther)
				return
			}
		}
	}
	s.showSignin(w, r, c, http.StatusOK, "", "")
}

func (s *Server) showSignin(w http.ResponseWriter, r *http.Request, c *visit, status int, user, errKey string) {
	tok, err := token(s.d.Random)
	if err != nil {
		s.d.Logger.Error("console: sign-in token", "err", err)
		s.renderError(w, r, c, http.StatusInternalServerError, "")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: signinCookie, Value: tok, Path: Prefix, HttpOnly: true, Secure: s.cfg.TLS,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.IdleTimeout.Seconds()),
	})
	c.signinCSRF = tok
	if errKey != "" {
		c.flash, c.flashError = translate(c.lang, errKey), true
	}
	s.render(w, r, c, status, "signin", signinData{User: user})
}

// clientAddr is the peer's address without its port: the limiter's key.
// X-Forwarded-For is not trusted, since anybody can send it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// signin checks the form's token, the rate limits and the password, then
// starts a session. Failures are logged with the name and address, never
// the password.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	c := visitOf(r)
	if !s.parseForm(w, r, c) {
		return
	}
	ck, err := r.Cookie(signinCookie)
	if err != nil || !tokensEqual(r.PostFormValue("csrf"), ck.Value) {
		s.d.Logger.Warn("console: sign-in without a valid form token refused", "remote", r.RemoteAddr)
		s.showSignin(w, r, c, http.StatusForbidden, "", "signin.expired")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("user"))
	password := r.PostFormValue("password")
	addr := clientAddr(r)
	if name == "" || len(name) > maxNameLen || password == "" || len(password) > maxPasswordLen {
		s.showSignin(w, r, c, http.StatusUnauthorized, clip(name), "signin.bad")
		return
	}
	if !s.limiter.allowed(name, addr) {
		s.d.Logger.Warn("console: sign-in refused, too many failures", "user", clip(name), "remote", addr)
		s.showSignin(w, r, c, http.StatusTooManyRequests, name, "signin.limited")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	acct, err := s.d.Users.Authenticate(ctx, name, password)
	cancel()
	if err != nil || roleRank(acct.Role) == 0 {
		s.limiter.failed(name, addr)
		reason := "bad credentials"
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			reason = err.Error()
		}
		s.d.Logger.Warn("console: sign-in failed", "user", clip(name), "remote", addr, "reason", reason)
		s.showSignin(w, r, c, http.StatusUnauthorized, name, "signin.bad")
		return
	}
	s.limiter.succeeded(name)
	// A fresh ID at every sign-in: a session ID planted before it is
	// worth nothing.
	if old, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.destroy(old.Value)
	}
	sess, err := s.sessions.create(acct.Name)
	if err != nil {
		s.d.Logger.Error("console: start a session", "err", err)
		s.renderError(w, r, c, http.StatusInternalServerError, "")
		return
	}
	c.user = acct.Name
	s.d.Logger.Info("console: signed in", "user", acct.Name, "role", acct.Role, "remote", addr)
	s.setSession(w, sess.id)
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: s.cfg.TLS, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// signout ends the session and shows the sign-in form.
func (s *Server) signout(w http.ResponseWriter, r *http.Request, c *visit) {
	s.sessions.destroy(c.sess.id)
	s.clearSession(w)
	s.d.Logger.Info("console: signed out", "user", c.user)
	c.acct, c.sess = nil, session{}
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
