package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/users"
	"github.com/callguard/callguard/events"
)

// UserCommands applies the console users' commands (users.Writer).
type UserCommands interface {
	Create(ctx context.Context, name string, role users.Role, password string, c users.Command) (users.Applied, error)
	SetRole(ctx context.Context, name string, role users.Role, c users.Command) (users.Applied, error)
	SetPassword(ctx context.Context, name, password string, c users.Command) (users.Applied, error)
	Disable(ctx context.Context, name string, c users.Command) (users.Applied, error)
	Enable(ctx context.Context, name string, c users.Command) (users.Applied, error)
}

var _ UserCommands = (*users.Writer)(nil)

// UsersDeps are what the /v1/users routes need.
type UsersDeps struct {
	Commands UserCommands
	// List is the node's book of users (users.Book.List).
	List func() []users.User
}

// Verbs of the user commands, in command IDs.
const (
	VerbUserCreate   = "user-create"
	VerbUserRole     = "user-role"
	VerbUserPassword = "user-password"
	VerbUserDisable  = "user-disable"
	VerbUserEnable   = "user-enable"
)

// UserView is a console user as the API shows it: never its password or
// hash.
type UserView struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"createdBy"`
	Changed   time.Time `json:"changed"`
	ChangedBy string    `json:"changedBy"`
}

// UsersView answers GET /v1/users.
type UsersView struct {
	Users []UserView `json:"users"`
}

// UserRequest is the body of POST /v1/users.
type UserRequest struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password"`
	By       string `json:"by,omitempty"`
	Why      string `json:"why,omitempty"`
	// IdempotencyKey is sent as the Idempotency-Key header.
	IdempotencyKey string `json:"-"`
}

// RoleRequest is the body of PUT /v1/users/{name}/role.
type RoleRequest struct {
	Role           string `json:"role"`
	By             string `json:"by,omitempty"`
	Why            string `json:"why,omitempty"`
	IdempotencyKey string `json:"-"`
}

// PasswordRequest is the body of PUT /v1/users/{name}/password.
type PasswordRequest struct {
	Password       string `json:"password"`
	By             string `json:"by,omitempty"`
	Why            string `json:"why,omitempty"`
	IdempotencyKey string `json:"-"`
}

// UserCommandRequest is the (optional) body of POST
// /v1/users/{name}/disable and /enable.
type UserCommandRequest struct {
	By             string `json:"by,omitempty"`
	Why            string `json:"why,omitempty"`
	IdempotencyKey string `json:"-"`
}

// UserResult answers a user command.
type UserResult struct {
	// User is the user after the command, as this node's book has it.
	User      UserView `json:"user"`
	CommandID string   `json:"commandId"`
	// Events are the types of the events appended; empty when Repeated.
	Events []string `json:"events"`
	// Revision is the users stream's revision after the command.
	Revision uint64 `json:"revision"`
	// Repeated: nothing was written (the same command before, or the
	// user already stood so).
	Repeated bool `json:"repeated"`
}

func userView(u users.User) UserView {
	return UserView{Name: u.Name, Role: string(u.Role), Disabled: u.Disabled, Created: u.Created, CreatedBy: u.CreatedBy,
		Changed: u.Changed, ChangedBy: u.ChangedBy}
}

func (s *Server) usersAbsent(w http.ResponseWriter, r *http.Request) bool {
	return absent(w, r, s.d.Users.Commands == nil || s.d.Users.List == nil, "console users")
}

func (s *Server) userList(w http.ResponseWriter, r *http.Request) {
	if s.usersAbsent(w, r) {
		return
	}
	out := UsersView{Users: []UserView{}}
	for _, u := range s.d.Users.List() {
		out.Users = append(out.Users, userView(u))
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

// optionalText checks an optional why: when given, by the rule of every
// command's text.
func (v *validation) optionalText(field, value string) string {
	if strings.TrimSpace(value) == "" {
		return ""
	}
	return v.text(field, inBody, value)
}

func (s *Server) userCreate(w http.ResponseWriter, r *http.Request) {
	if s.usersAbsent(w, r) {
		return
	}
	var body UserRequest
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	c := users.Command{By: v.by(r, body.By), Why: v.optionalText("why", body.Why)}
	c.ID = v.commandID(r, VerbUserCreate)
	if v.failed(w, r) {
		return
	}
	name := strings.TrimSpace(body.Name)
	s.userCommand(w, r, VerbUserCreate, name, inBody, c, func(ctx context.Context) (users.Applied, error) {
		return s.d.Users.Commands.Create(ctx, name, users.Role(body.Role), body.Password, c)
	}, "role", clip(body.Role))
}

func (s *Server) userRole(w http.ResponseWriter, r *http.Request) {
	if s.usersAbsent(w, r) {
		return
	}
	var body RoleRequest
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	c := users.Command{By: v.by(r, body.By), Why: v.optionalText("why", body.Why)}
	c.ID = v.commandID(r, VerbUserRole)
	if v.failed(w, r) {
		return
	}
	name := r.PathValue("name")
	s.userCommand(w, r, VerbUserRole, name, inPath, c, func(ctx context.Context) (users.Applied, error) {
		return s.d.Users.Commands.SetRole(ctx, name, users.Role(body.Role), c)
	}, "role", clip(body.Role))
}

func (s *Server) userPassword(w http.ResponseWriter, r *http.Request) {
	if s.usersAbsent(w, r) {
		return
	}
	var body PasswordRequest
	if !s.decode(w, r, &body, true) {
		return
	}
	var v validation
	c := users.Command{By: v.by(r, body.By), Why: v.optionalText("why", body.Why)}
	c.ID = v.commandID(r, VerbUserPassword)
	if v.failed(w, r) {
		return
	}
	name := r.PathValue("name")
	s.userCommand(w, r, VerbUserPassword, name, inPath, c, func(ctx context.Context) (users.Applied, error) {
		return s.d.Users.Commands.SetPassword(ctx, name, body.Password, c)
	})
}

func (s *Server) userDisable(w http.ResponseWriter, r *http.Request) {
	s.userSwitch(w, r, VerbUserDisable, UserCommands.Disable)
}

func (s *Server) userEnable(w http.ResponseWriter, r *http.Request) {
	s.userSwitch(w, r, VerbUserEnable, UserCommands.Enable)
}

func (s *Server) userSwitch(w http.ResponseWriter, r *http.Request, verb string,
	do func(UserCommands, context.Context, string, users.Command) (users.Applied, error)) {
	if s.usersAbsent(w, r) {
		return
	}
	var body UserCommandRequest
	if !s.decode(w, r, &body, false) {
		return
	}
	var v validation
	c := users.Command{By: v.by(r, body.By), Why: v.optionalText("why", body.Why)}
	c.ID = v.commandID(r, verb)
	if v.failed(w, r) {
		return
	}
	name := r.PathValue("name")
	s.userCommand(w, r, verb, name, inPath, c, func(ctx context.Context) (users.Applied, error) {
		return do(s.d.Users.Commands, ctx, name, c)
	})
}

// userCommand runs a validated user command and answers it. The password
// is in no log line and no answer; attrs are extra log attributes.
func (s *Server) userCommand(w http.ResponseWriter, r *http.Request, verb, name, nameIn string, c users.Command,
	do func(context.Context) (users.Applied, error), attrs ...any) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	a, err := do(ctx)
	if err != nil {
		s.usersFail(w, r, nameIn, fmt.Errorf("%s %s: %w", verb, clip(name), err))
		return
	}
	s.d.Logger.Info("admin command", append([]any{"request_id", requestID(r), "verb", verb, "user", name,
		"by", c.By, "command_id", c.ID, "revision", a.Revision, "repeated", a.Repeated}, attrs...)...)
	res := UserResult{CommandID: c.ID, Events: []string{}, Revision: a.Revision, Repeated: a.Repeated}
	if a.Event != "" {
		res.Events = append(res.Events, a.Event)
	}
	for _, u := range s.d.Users.List() {
		if u.Name == name {
			res.User = userView(u)
		}
	}
	status := http.StatusOK
	if verb == VerbUserCreate && !a.Repeated {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/users/"+url.PathEscape(name))
	}
	s.writeJSON(w, r, status, res)
}

func (s *Server) usersFail(w http.ResponseWriter, r *http.Request, nameIn string, err error) {
	if fes := users.FieldErrors(err); len(fes) > 0 {
		var v validation
		for _, fe := range fes {
			in := inBody
			if fe.Field == "name" {
				in = nameIn
			}
			v.add(fe.Field, in, fe.Problem)
		}
		v.failed(w, r)
		return
	}
	switch {
	case errors.Is(err, users.ErrExists):
		writeProblem(w, r, newProblem(CodeUserExists, err.Error()))
	case errors.Is(err, users.ErrNotFound):
		writeProblem(w, r, newProblem(CodeUnknownUser, err.Error()))
	case errors.Is(err, users.ErrLastAdmin):
		writeProblem(w, r, newProblem(CodeLastAdmin, err.Error()))
	case errors.Is(err, users.ErrInvalid):
		writeProblem(w, r, newProblem(CodeCommandRefused, err.Error()))
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, events.ErrUnavailable):
		// A hash waiting for its turn, or the store: not a caller grain.
		s.d.Logger.Warn("admin API: user command timed out", "request_id", requestID(r), "err", err)
		writeProblem(w, r, newProblem(CodeStoreFailed, "the user command did not finish in time; retry with the same idempotency key"))
	default:
		s.fail(w, r, err)
	}
}
