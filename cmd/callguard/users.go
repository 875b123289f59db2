package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/callguard/callguard/actors/users"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
)

// runUser: callguard user add|list|role|password|disable|enable — the
// operator console's users, through the running guard's admin API. A
// password is read from the terminal (twice) or, with --password-stdin,
// from standard input: never from an argument or the environment, which
// other users of the machine and the shell's history can read.
func runUser(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	return userCommand(ctx, args, environ, os.Stdin, stdout, stderr)
}

const userUsage = "usage: callguard user add NAME --role viewer|operator|admin [--password-stdin] | list | role NAME ROLE | password NAME [--password-stdin] | disable NAME | enable NAME  [--reason WHY] [--by WHO]"

func userCommand(ctx context.Context, args []string, environ []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, userUsage+"\n`callguard user VERB -h` lists a verb's flags.")
		return errHelp
	}
	verbs := map[string]string{
		"add": " NAME --role ROLE [--password-stdin]", "list": "", "role": " NAME ROLE",
		"password": " NAME [--password-stdin]", "disable": " NAME", "enable": " NAME",
	}
	if len(args) == 0 || verbs[args[0]] == "" && args[0] != "list" {
		return usageError{userUsage}
	}
	verb := args[0]
	f := newAdminFlags("user "+verb, "user "+verb+verbs[verb], stderr)
	f.fs.Lookup("reason").Usage = "why (optional; recorded in the event)"
	var role *string
	var fromStdin *bool
	if verb == "add" {
		role = f.fs.String("role", "", "viewer (reads every page), operator (also whitelists, blocks, imports, what-if) or admin (also manages users); required")
	}
	if verb == "add" || verb == "password" {
		fromStdin = f.fs.Bool("password-stdin", false, "read the password from standard input (one line) instead of a terminal prompt")
	}
	want := map[string]int{"list": 0, "role": 2}[verb]
	if verb != "list" && verb != "role" {
		want = 1
	}
	pos, err := f.parse(args[1:], want)
	if err != nil {
		return err
	}
	if verb == "add" && *role == "" {
		return usageError{"user add: --role is required: viewer, operator or admin"}
	}
	var password string
	if fromStdin != nil {
		if password, err = readPassword(stdin, *fromStdin, pos[0], stderr); err != nil {
			return err
		}
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	var res adminapi.UserResult
	switch verb {
	case "list":
		v, err := c.Users(ctx)
		if err != nil {
			return err
		}
		if *f.asJSON {
			return json.NewEncoder(stdout).Encode(v)
		}
		cfg, err := loadConfig(environ)
		if err != nil {
			return err
		}
		return printUsers(stdout, v, location(cfg))
	case "add":
		res, err = c.CreateUser(ctx, adminapi.UserRequest{Name: pos[0], Role: *role, Password: password, By: *f.by, Why: *f.reason, IdempotencyKey: *f.key})
	case "role":
		res, err = c.SetUserRole(ctx, pos[0], adminapi.RoleRequest{Role: pos[1], By: *f.by, Why: *f.reason, IdempotencyKey: *f.key})
	case "password":
		res, err = c.SetUserPassword(ctx, pos[0], adminapi.PasswordRequest{Password: password, By: *f.by, Why: *f.reason, IdempotencyKey: *f.key})
	case "disable":
		res, err = c.DisableUser(ctx, pos[0], adminapi.UserCommandRequest{By: *f.by, Why: *f.reason, IdempotencyKey: *f.key})
	case "enable":
		res, err = c.EnableUser(ctx, pos[0], adminapi.UserCommandRequest{By: *f.by, Why: *f.reason, IdempotencyKey: *f.key})
	}
	if err != nil {
		return err
	}
	if *f.asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	return printUserResult(stdout, pos[0], res)
}

// readPassword reads a new password: one line of stdin with
// --password-stdin, else twice from the terminal without echo. It checks
// the length here too, so that a short one is refused before the second
// prompt's effort is spent on the server.
func readPassword(stdin io.Reader, fromStdin bool, name string, stderr io.Writer) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(stdin, users.MaxPassword+3))
		if err != nil {
			return "", fmt.Errorf("read the password from standard input: %w", err)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if bytes.ContainsAny(b, "\r\n") {
			return "", usageError{"--password-stdin: give the password as one line"}
		}
		pw := string(b)
		if err := users.CheckPassword(pw); err != nil {
			return "", usageError{"--password-stdin: " + strings.TrimPrefix(err.Error(), users.ErrPassword.Error()+": ")}
		}
		return pw, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError{"no terminal to ask the password on: give it on standard input with --password-stdin"}
	}
	fd := int(f.Fd())
	fmt.Fprintf(stderr, "New password for %s (at least %d characters): ", name, users.MinPassword)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if err := users.CheckPassword(string(first)); err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), users.ErrPassword.Error()+": "))
	}
	fmt.Fprintf(stderr, "Again: ")
	again, err := term.ReadPassword(fd)
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	if !bytes.Equal(first, again) {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return string(first), nil
}

func printUserResult(stdout io.Writer, name string, res adminapi.UserResult) error {
	u := res.User
	state := "enabled"
	if u.Disabled {
		state = "disabled"
	}
	if res.Repeated {
		_, err := fmt.Fprintf(stdout, "%s: nothing new written (already applied, or already so): %s, %s\n", name, u.Role, state)
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s: %s; now %s, %s (users stream revision %d)\n", name, strings.Join(res.Events, ", "), u.Role, state, res.Revision)
	return err
}

func printUsers(stdout io.Writer, v adminapi.UsersView, loc *time.Location) error {
	if len(v.Users) == 0 {
		_, err := fmt.Fprintln(stdout, "no console users yet: create the first admin with `callguard user add NAME --role admin`")
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tCREATED\tBY\tCHANGED\tBY")
	for _, u := range v.Users {
		state := "enabled"
		if u.Disabled {
			state = "disabled"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, state,
			u.Created.In(loc).Format(time.DateTime), u.CreatedBy, u.Changed.In(loc).Format(time.DateTime), u.ChangedBy)
	}
	return tw.Flush()
}
