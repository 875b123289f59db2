package console

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// UserAdmin manages the console's users, for the Users page (admins
// only). cmd adapts actors/users to it; every change is a command
// recorded as an event with By, the signed-in admin. Nil shows the page
// as not available on this node.
type UserAdmin interface {
	List(ctx context.Context) ([]UserInfo, error)
	// Create adds a user; errors say what is wrong (a taken or malformed
	// name, a role that is none, a password too weak) in words the page
	// shows as they are.
	Create(ctx context.Context, name, role, password, by string) error
	SetRole(ctx context.Context, name, role, by string) error
	SetPassword(ctx context.Context, name, password, by string) error
	Disable(ctx context.Context, name, by string) error
	Enable(ctx context.Context, name, by string) error
}

// UserInfo is one user as the Users page lists it.
type UserInfo struct {
	Name, Role string
	Disabled   bool
	// Since is when the user was created; zero when unknown.
	Since time.Time
}

// usersData is the Users page's Data.
type usersData struct {
	Users       []UserInfo
	Roles       []string
	Me          string
	Err         string
	Unavailable bool
}

var roles = []string{RoleViewer, RoleOperator, RoleAdmin}

// users serves GET /console/users.
func (s *Server) users(w http.ResponseWriter, r *http.Request, c *visit) {
	d := usersData{Roles: roles, Me: c.user, Unavailable: s.d.UserAdmin == nil}
	if s.d.UserAdmin != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		list, err := s.d.UserAdmin.List(ctx)
		if err != nil {
			s.d.Logger.Warn("console: list users", "err", err)
			d.Err = translate(c.lang, "common.failed", "users")
		}
		d.Users = list
	}
	s.render(w, r, c, http.StatusOK, "users", d)
}

// userCommand serves the Users page's POSTs: create (POST /console/users)
// and, per user, role, password, disable and enable.
func (s *Server) userCommand(w http.ResponseWriter, r *http.Request, c *visit) {
	if s.d.UserAdmin == nil {
		s.renderError(w, r, c, http.StatusNotFound, "")
		return
	}
	name, action := r.PathValue("name"), r.PathValue("action")
	if name == "" {
		name, action = strings.TrimSpace(r.PostFormValue("name")), "create"
	}
	role := r.PostFormValue("role")
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	var err error
	switch action {
	case "create":
		err = s.d.UserAdmin.Create(ctx, name, role, r.PostFormValue("password"), c.user)
	case "role", "disable":
		// An admin cannot demote or lock out themselves: the last admin
		// would leave nobody to undo it but the admin token.
		if name == c.user {
			s.flash(c, translate(c.lang, "users.self"), true)
			http.Redirect(w, r, "/console/users", http.StatusSeeOther)
			return
		}
		if action == "role" {
			err = s.d.UserAdmin.SetRole(ctx, name, role, c.user)
		} else {
			err = s.d.UserAdmin.Disable(ctx, name, c.user)
		}
	case "enable":
		err = s.d.UserAdmin.Enable(ctx, name, c.user)
	case "password":
		err = s.d.UserAdmin.SetPassword(ctx, name, r.PostFormValue("password"), c.user)
	default:
		s.renderError(w, r, c, http.StatusNotFound, "")
		return
	}
	if err != nil {
		s.d.Logger.Warn("console user command refused", "action", action, "user", clip(name), "by", c.user, "err", err)
		s.flash(c, translate(c.lang, "caller.refused", err.Error()), true)
		http.Redirect(w, r, "/console/users", http.StatusSeeOther)
		return
	}
	if action == "disable" {
		s.sessions.destroyUser(name)
	}
	s.d.Logger.Info("console user command", "action", action, "user", name, "role", role, "by", c.user)
	s.flash(c, translate(c.lang, "users.done."+action, name), false)
	http.Redirect(w, r, "/console/users", http.StatusSeeOther)
}
