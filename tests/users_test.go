package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runCLIWithStdin is runCLI with stdin.
func runCLIWithStdin(t *testing.T, env []string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// The admin token's holder creates the console's first user with the CLI
// against a running guard, lists it (no password or hash anywhere in the
// answers or the guard's log), changes its role, disables it, and sees
// wrong commands refused with a problem that says what is wrong. After a
// restart the users are read back from the store.
func TestConsoleUsersFromTheCLI(t *testing.T) {
	dir := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+dir)
	env := []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
	const pw = "first admin's long password"

	out, stderr, code := runCLIWithStdin(t, env, pw+"\n", "user", "add", "alice", "--role", "admin", "--password-stdin", "--by", "root", "--reason", "first admin")
	if code != 0 || !strings.Contains(out, "alice: UserCreated; now admin, enabled") {
		t.Fatalf("user add: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLIWithStdin(t, env, "bob's long password\n", "user", "add", "bob", "--password-stdin", "--role", "operator")
	if code != 0 || !strings.Contains(out, "bob: UserCreated; now operator, enabled") {
		t.Fatalf("user add bob: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, env, "user", "list")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || !strings.Contains(out, "operator") {
		t.Fatalf("user list: exit %d, %q %q", code, out, stderr)
	}
	out, _, code = runCLI(t, env, "user", "list", "--json")
	var list struct {
		Users []map[string]any `json:"users"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Users) != 2 || list.Users[0]["createdBy"] != "root" {
		t.Fatalf("user list --json: exit %d, %s", code, out)
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, "assword") {
		t.Fatalf("the list shows a password or hash: %s", out)
	}

	out, stderr, code = runCLI(t, env, "user", "role", "bob", "viewer", "--reason", "moved to the call centre")
	if code != 0 || !strings.Contains(out, "bob: UserRoleChanged; now viewer, enabled") {
		t.Fatalf("user role: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, env, "user", "disable", "bob")
	if code != 0 || !strings.Contains(out, "bob: UserDisabled; now viewer, disabled") {
		t.Fatalf("user disable: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLIWithStdin(t, env, "bob's new long password\n", "user", "password", "bob", "--password-stdin")
	if code != 0 || !strings.Contains(out, "UserPasswordChanged") {
		t.Fatalf("user password: exit %d, %q %q", code, out, stderr)
	}

	// Wrong commands, each refused with what is wrong.
	refusals := []struct {
		args  []string
		stdin string
		code  int
		says  string
	}{
		{[]string{"user", "disable", "alice"}, "", 1, "alice is the only enabled admin; make another user admin first"},
		{[]string{"user", "role", "alice", "viewer"}, "", 1, "alice is the only enabled admin"},
		{[]string{"user", "add", "bob", "--role", "viewer", "--password-stdin"}, "another long password\n", 1, "user exists: bob (viewer, disabled, created by"},
		{[]string{"user", "role", "nobody", "viewer"}, "", 1, "no such user: nobody"},
		{[]string{"user", "role", "bob", "root"}, "", 1, `role is "root": want viewer, operator or admin`},
		{[]string{"user", "add", "Bob Smith", "--role", "viewer", "--password-stdin"}, "another long password\n", 1, `name is "Bob Smith"`},
		{[]string{"user", "add", "carol", "--role", "viewer", "--password-stdin"}, "short\n", 2, "it has 5 characters, at least 12 are needed"},
		{[]string{"user", "add", "carol", "--role", "viewer"}, "", 2, "no terminal to ask the password on"},
		{[]string{"user", "add", "carol", "--password-stdin"}, "another long password\n", 2, "--role is required"},
	}
	for _, r := range refusals {
		_, stderr, code := runCLIWithStdin(t, env, r.stdin, r.args...)
		if code != r.code || !strings.Contains(stderr, r.says) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d saying %q", r.args, code, stderr, r.code, r.says)
		}
	}
	// Through the API itself the problem is typed.
	out, stderr, code = runCLIWithStdin(t, env, "", "user", "disable", "alice", "--json")
	if code != 1 || out != "" || !strings.Contains(stderr, "last enabled admin") {
		t.Errorf("disable of the last admin, --json: exit %d, %q %q", code, out, stderr)
	}

	// The users stream is no caller's: replays and projections pass it by.
	if out, stderr, code := runCLI(t, env, "replay", "--limit-hour", "2"); code != 0 {
		t.Errorf("replay over a log with users: exit %d, %q %q", code, out, stderr)
	}
	if out, stderr, code := runCLI(t, env, "projections", "status", "--format", "json"); code != 0 || strings.Contains(out, `"failure"`) || strings.Contains(out, `"failed"`) {
		t.Errorf("projections over a log with users: exit %d, %q %q", code, out, stderr)
	}

	g.stop(t)
	if log := g.output(); strings.Contains(log, pw) || strings.Contains(log, "long password") || strings.Contains(log, "argon2") {
		t.Fatalf("the guard's log holds a password or hash:\n%s", log)
	}
	if !strings.Contains(g.output(), "verb=user-create user=alice by=root") {
		t.Fatalf("the guard's log does not record the command:\n%s", g.output())
	}

	// A restarted guard reads its users back from the store.
	g = startGuard(t, "GUARD_DATA_DIR="+dir)
	env = []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
	out, _, code = runCLI(t, env, "user", "list", "--json")
	if code != 0 || !strings.Contains(out, `"name":"bob","role":"viewer","disabled":true`) {
		t.Fatalf("after a restart: exit %d, %s", code, out)
	}
	if !regexp.MustCompile(`msg="console users loaded".* users=2`).MatchString(g.output()) {
		t.Errorf("the guard does not say it loaded its users:\n%s", g.output())
	}
}
