package adminapi

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/users"
	"github.com/callguard/callguard/events/embedded"
)

func TestUserCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	quiet := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	// Cheap parameters: the test is about the API, not the KDF.
	h := users.NewHasher(users.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader, 2)
	book := users.NewBook(st, h, quiet)
	if err := book.Start(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	var ids atomic.Int64
	s, err := New(Config{Token: testToken}, Deps{
		Callers: &fakeCallers{}, Normalizer: testNormalizer(t),
		Users: UsersDeps{
			Commands: &users.Writer{Store: st, Book: book, Hasher: h, Clock: func() time.Time { return testNow }, Node: "n1"},
			List:     book.List,
		},
		Clock:  func() time.Time { return testNow },
		NewID:  func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	key := func(k string) map[string]string { return map[string]string{HeaderIdempotencyKey: k} }
	admin := map[string]string{HeaderAdmin: "root"}
	const pw = "correct horse battery staple"
	tests := []struct {
		name   string
		r      req
		status int
		code   string
		want   string
	}{
		{name: "first user, with the token", r: req{method: "POST", path: "/v1/users", header: key("u1"),
			body: `{"name":"alice","role":"admin","password":"` + pw + `","by":"root","why":"first admin"}`},
			status: http.StatusCreated, want: `"user":{"name":"alice","role":"admin","disabled":false,"created":"2026-11-02T10:00:00Z","createdBy":"root"`},
		{name: "the same request again", r: req{method: "POST", path: "/v1/users", header: key("u1"),
			body: `{"name":"alice","role":"admin","password":"` + pw + `","by":"root","why":"first admin"}`},
			status: http.StatusOK, want: `"commandId":"user-create:u1","events":[],"revision":0,"repeated":true`},
		{name: "by from the X-Admin header", r: req{method: "POST", path: "/v1/users", header: admin,
			body: `{"name":"bob","role":"operator","password":"` + pw + `"}`},
			status: http.StatusCreated, want: `"createdBy":"root"`},
		{name: "duplicate", r: req{method: "POST", path: "/v1/users", header: admin,
			body: `{"name":"bob","role":"viewer","password":"` + pw + `"}`},
			status: http.StatusConflict, code: CodeUserExists, want: `bob (operator, enabled, created by root)`},
		{name: "every field wrong at once", r: req{method: "POST", path: "/v1/users", header: admin,
			body: `{"name":"Bob Smith","role":"root","password":"short"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `"errors":[{"field":"name","in":"body","detail":"is \"Bob Smith\": want 1 to 64 of a-z, 0-9, '.', '_' and '-'"},{"field":"role","in":"body","detail":"is \"root\": want viewer, operator or admin"},{"field":"password","in":"body","detail":"it has 5 characters, at least 12 are needed"}]`},
		{name: "no by", r: req{method: "POST", path: "/v1/users", body: `{"name":"zed","role":"viewer","password":"` + pw + `"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `by is required`},
		{name: "unknown member", r: req{method: "POST", path: "/v1/users", header: admin, body: `{"name":"zed","role":"viewer","password":"` + pw + `","hash":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `hash is not a member of this request`},
		{name: "role", r: req{method: "PUT", path: "/v1/users/bob/role", header: admin, body: `{"role":"viewer","why":"moved to the call centre"}`},
			status: http.StatusOK, want: `"user":{"name":"bob","role":"viewer"`},
		{name: "role of nobody", r: req{method: "PUT", path: "/v1/users/nobody/role", header: admin, body: `{"role":"viewer"}`},
			status: http.StatusNotFound, code: CodeUnknownUser, want: `no such user: nobody`},
		{name: "bad name in the path", r: req{method: "PUT", path: "/v1/users/Bob/role", header: admin, body: `{"role":"viewer"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `{"field":"name","in":"path"`},
		{name: "demote the last admin", r: req{method: "PUT", path: "/v1/users/alice/role", header: admin, body: `{"role":"operator"}`},
			status: http.StatusConflict, code: CodeLastAdmin, want: `alice is the only enabled admin`},
		{name: "disable the last admin", r: req{method: "POST", path: "/v1/users/alice/disable", header: admin},
			status: http.StatusConflict, code: CodeLastAdmin, want: `make another user admin first`},
		{name: "password", r: req{method: "PUT", path: "/v1/users/bob/password", header: admin, body: `{"password":"another long password"}`},
			status: http.StatusOK, want: `"events":["UserPasswordChanged"]`},
		{name: "short password", r: req{method: "PUT", path: "/v1/users/bob/password", header: admin, body: `{"password":"x"}`},
			status: http.StatusBadRequest, code: CodeInvalidRequest, want: `password it has 1 characters`},
		{name: "disable, no body", r: req{method: "POST", path: "/v1/users/bob/disable", header: admin},
			status: http.StatusOK, want: `"disabled":true`},
		{name: "disable again", r: req{method: "POST", path: "/v1/users/bob/disable", header: admin},
			status: http.StatusOK, want: `"events":[],"revision":4,"repeated":true`},
		{name: "enable, with a body", r: req{method: "POST", path: "/v1/users/bob/enable", body: `{"by":"carol","why":"back from leave"}`},
			status: http.StatusOK, want: `"disabled":false,"created":"2026-11-02T10:00:00Z","createdBy":"root","changed":"2026-11-02T10:00:00Z","changedBy":"carol"`},
		{name: "no token", r: req{method: "GET", path: "/v1/users", noAuth: true}, status: http.StatusUnauthorized, code: CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(t, s, tt.r)
			body := rec.Body.String()
			if rec.Code != tt.status {
				t.Fatalf("%v: %d %s, want %d", tt.r, rec.Code, body, tt.status)
			}
			if tt.code != "" {
				if p := problemOfRecorder(t, rec); p.Code() != tt.code {
					t.Fatalf("problem %s, want %s", p.Code(), tt.code)
				}
			}
			if !strings.Contains(body, tt.want) {
				t.Fatalf("%v: body %s\nwant it to contain %s", tt.r, body, tt.want)
			}
			if strings.Contains(body, "argon2") || strings.Contains(body, pw) {
				t.Fatalf("the answer shows a password or hash: %s", body)
			}
		})
	}
	rec := serve(t, s, req{method: "GET", path: "/v1/users"})
	list := decodeJSON[UsersView](t, rec)
	if len(list.Users) != 2 || list.Users[0].Name != "alice" || list.Users[1].Name != "bob" || list.Users[1].Role != "viewer" {
		t.Fatalf("GET /v1/users: %s", rec.Body)
	}
	if strings.Contains(rec.Body.String(), "argon2") || strings.Contains(rec.Body.String(), "assword") {
		t.Fatalf("the list shows a password or hash: %s", rec.Body)
	}
	if _, err := book.Authenticate(ctx, "bob", "another long password"); err != nil {
		t.Fatalf("bob signs in with the password set through the API: %v", err)
	}
	out := logs.String()
	if strings.Contains(out, "argon2") || strings.Contains(out, pw) || strings.Contains(out, "another long password") {
		t.Fatalf("the log holds a password or hash:\n%s", out)
	}
	if !strings.Contains(out, `verb=user-create user=alice by=root`) {
		t.Fatalf("the log does not record the command:\n%s", out)
	}
}

func TestUsersAbsent(t *testing.T) {
	s := newTestServer(t, &fakeCallers{}, nil)
	rec := serve(t, s, req{method: "GET", path: "/v1/users"})
	if p := problemOfRecorder(t, rec); p.Code() != CodeNotImplemented {
		t.Fatalf("without users: %s", rec.Body)
	}
}
