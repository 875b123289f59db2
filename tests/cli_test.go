package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliRun is one run of the callguard binary as an operator would make
// it: in a working directory of its own, with only the GUARD_ variables
// the test gives (none inherited).
type cliRun struct {
	stdout, stderr string
	code           int
}

func runIn(t *testing.T, dir string, env []string, args ...string) cliRun {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GUARD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errOut.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r cliRun) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// deadAddr is a loopback address nothing listens on (free a moment ago).
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A guard runs with its data elsewhere and its admin API on a
// non-default port. Read commands find it, and the right store, by one
// rule: GUARD_ADMIN_URL when set (and only there), else the data
// directory when it holds a store no guard has open, else the default
// guard address; they never create a data directory, and say what they
// tried when nothing answers.
func TestReadCommandsReadTheRightStore(t *testing.T) {
	data := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+data)
	admin := adminAddr(t, g)
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	remote := []string{"GUARD_ADMIN_URL=http://" + admin, "GUARD_ADMIN_TOKEN=" + strings.TrimSpace(string(token))}
	elsewhere := t.TempDir() // another directory, no ./data in it
	for _, n := range []string{"+79990005001", "+79990005002"} {
		if r := runIn(t, elsewhere, remote, "block", n, "--level", "7", "--reason", "fraud"); r.code != 0 {
			t.Fatalf("block %s: %v", n, r)
		}
	}
	noDataDir := func(when string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(elsewhere, "data")); err == nil {
			t.Fatalf("%s: a read command created ./data", when)
		}
	}

	// 1. GUARD_ADMIN_URL: the guard there, though ./data is absent; and
	// no chatter on stderr.
	r := runIn(t, elsewhere, remote, "blacklist")
	if r.code != 0 || !strings.Contains(r.stdout, "2 numbers") || r.stderr != "" {
		t.Fatalf("blacklist with GUARD_ADMIN_URL: want the guard's 2 numbers and a quiet stderr:\n%v", r)
	}
	noDataDir("blacklist with GUARD_ADMIN_URL")
	r = runIn(t, elsewhere, remote, "audit", "+79990005001")
	if r.code != 0 || !strings.Contains(r.stdout, "level 7 manual") {
		t.Fatalf("audit with GUARD_ADMIN_URL:\n%v", r)
	}
	noDataDir("audit with GUARD_ADMIN_URL")

	// 2. The guard's own data directory, no GUARD_ADMIN_URL: the guard
	// holds it, so it is asked at GUARD_ADMIN_LISTEN's address.
	local := []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_LISTEN=" + admin}
	if r := runIn(t, elsewhere, local, "blacklist"); r.code != 0 || !strings.Contains(r.stdout, "2 numbers") || r.stderr != "" {
		t.Fatalf("blacklist of the guard's data directory:\n%v", r)
	}

	// 3. Nothing here and nothing at the default address: say what was
	// tried; create nothing.
	dead := deadAddr(t)
	r = runIn(t, elsewhere, []string{"GUARD_ADMIN_LISTEN=" + dead}, "blacklist")
	if r.code != 1 || !strings.Contains(r.stderr, "no event store in ./data (GUARD_DATA_DIR)") ||
		!strings.Contains(r.stderr, "no guard answers at http://"+dead) || !strings.Contains(r.stderr, "GUARD_ADMIN_URL=") {
		t.Fatalf("blacklist with neither a store nor a guard: want both named:\n%v", r)
	}
	noDataDir("blacklist with neither")
	for _, cmd := range [][]string{{"audit", "+79990005001"}, {"report"}, {"callers"}, {"projections"}, {"whitelist", "list"}, {"replay"}} {
		if r := runIn(t, elsewhere, []string{"GUARD_ADMIN_LISTEN=" + dead}, cmd...); r.code != 1 || !strings.Contains(r.stderr, "no guard answers") {
			t.Fatalf("%s with neither a store nor a guard:\n%v", cmd, r)
		}
		noDataDir(cmd[0] + " with neither")
	}

	g.stop(t)
	// 4. An explicit GUARD_ADMIN_URL is used even when a readable store
	// is at hand, and its silence is an error that names it.
	r = runIn(t, elsewhere, append([]string{"GUARD_DATA_DIR=" + data}, remote...), "blacklist")
	if r.code != 1 || !strings.Contains(r.stderr, "no guard answers at http://"+admin+" (GUARD_ADMIN_URL)") {
		t.Fatalf("blacklist with GUARD_ADMIN_URL of a stopped guard: want an error naming it:\n%v", r)
	}
	// 5. No GUARD_ADMIN_URL, a store no guard holds: read it.
	r = runIn(t, elsewhere, []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_LISTEN=" + dead}, "blacklist")
	if r.code != 0 || !strings.Contains(r.stdout, "2 numbers") || r.stderr != "" {
		t.Fatalf("blacklist of a stopped guard's store:\n%v", r)
	}
}

// With the guard down, or without a token, write commands say what to
// do, not only what failed.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	dead := deadAddr(t)
	r := runIn(t, dir, []string{"GUARD_ADMIN_LISTEN=" + dead}, "block", "+79990005003", "--level", "7", "--reason", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "is the guard running") || !strings.Contains(r.stderr, "GUARD_ADMIN_URL=http://HOST:PORT") {
		t.Fatalf("block with the guard down: want a hint:\n%v", r)
	}
	r = runIn(t, dir, []string{"GUARD_ADMIN_URL=http://" + dead, "GUARD_ADMIN_TOKEN=" + strings.Repeat("t", 32)}, "whitelist", "add", "+79990005003", "--reason", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "no guard answers at http://"+dead+" (GUARD_ADMIN_URL)") || !strings.Contains(r.stderr, "is the guard running") {
		t.Fatalf("whitelist add to a GUARD_ADMIN_URL where nothing listens:\n%v", r)
	}

	data := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+data)
	admin := adminAddr(t, g)
	r = runIn(t, dir, []string{"GUARD_ADMIN_URL=http://" + admin}, "block", "+79990005003", "--level", "7", "--reason", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "set GUARD_ADMIN_TOKEN") {
		t.Fatalf("block without a token: want the variable to set:\n%v", r)
	}
	r = runIn(t, dir, []string{"GUARD_ADMIN_LISTEN=" + admin}, "block", "+79990005003", "--level", "7", "--reason", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "GUARD_DATA_DIR") || !strings.Contains(r.stderr, "GUARD_ADMIN_TOKEN") {
		t.Fatalf("block from another directory without a token: want what to do:\n%v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Fatal("a CLI command created ./data")
	}
}

// Every command takes its flags after its arguments, the way the README
// writes command lines (`callguard audit +79990003344 --json`), and gives
// what the flags-first spelling gives. The table must name every command
// `callguard help` lists.
func TestEveryCommandTakesFlagsAfterItsArguments(t *testing.T) {
	data := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+data)
	admin := adminAddr(t, g)
	env := []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_URL=http://" + admin}
	cwd := t.TempDir()
	demoDir := filepath.Join(t.TempDir(), "demo")

	type check int
	const (
		sameOutput check = iota // both spellings print the same
		bothWork                // both exit 0 (the output changes: a write, a clock)
	)
	cases := []struct {
		command     string
		after       []string // the README's spelling: flags after the arguments
		before      []string // flags first
		check       check
		contains    string // in the output of after
		noArguments bool   // the command takes flags only: the two spellings are one
	}{
		{command: "serve", after: []string{"serve", "--help"}, before: []string{"serve", "-h"}, check: sameOutput, noArguments: true},
		{command: "whitelist", after: []string{"whitelist", "add", "+79990006001", "--reason", "VIP", "--by", "alice"},
			before: []string{"whitelist", "add", "--reason", "VIP", "--by", "alice", "+79990006002"}, check: bothWork, contains: "Whitelisted"},
		{command: "blacklist", after: []string{"blacklist", "--format", "csv", "--prefix", "+7999"}, before: []string{"blacklist", "--prefix", "+7999", "--format", "csv"}, check: sameOutput, noArguments: true},
		{command: "report", after: []string{"report", "top", "--format", "json", "--limit", "3"}, before: []string{"report", "--format", "json", "--limit", "3", "top"}, check: sameOutput, contains: "{"},
		{command: "callers", after: []string{"callers", "--prefix", "+7999", "--format", "json"}, before: []string{"callers", "--format", "json", "--prefix", "+7999"}, check: bothWork, contains: "{", noArguments: true},
		{command: "projections", after: []string{"projections", "status", "--format", "json"}, before: []string{"projections", "--format", "json", "status"}, check: bothWork, contains: "lists"},
		{command: "block", after: []string{"block", "+79990006003", "--level", "7", "--reason", "fraud"},
			before: []string{"block", "--level", "7", "--reason", "fraud", "+79990006004"}, check: bothWork, contains: "BlockApplied"},
		{command: "unblock", after: []string{"unblock", "+79990006003", "--reason", "cleared"},
			before: []string{"unblock", "--reason", "cleared", "+79990006004"}, check: bothWork, contains: "BlockLifted"},
		{command: "ranges", after: []string{"ranges", "--format", "json", "--list", "block"}, before: []string{"ranges", "--list", "block", "--format", "json"}, check: bothWork, contains: `"items"`, noArguments: true},
		{command: "country", after: []string{"country", "block", "AZ", "--level", "3", "--reason", "fraud wave"},
			before: []string{"country", "block", "--level", "3", "--reason", "fraud wave", "GB"}, check: bothWork, contains: "OriginRuleSet"},
		{command: "numtype", after: []string{"numtype", "block", "premium-rate", "--level", "7", "--reason", "never a customer"},
			before: []string{"numtype", "block", "--level", "7", "--reason", "never a customer", "voip"}, check: bothWork, contains: "OriginRuleSet"},
		{command: "status", after: []string{"status", "+79990006001", "--json"}, before: []string{"status", "--json", "+79990006001"}, check: bothWork, contains: "+79990006001"},
		{command: "attack", after: []string{"attack", "status", "+78005553535", "--json"}, before: []string{"attack", "status", "--json", "+78005553535"}, check: sameOutput, contains: `"underAttack":false`},
		{command: "line", after: []string{"line", "set", "+78005553535", "--limit-hour", "3", "--reason", "card line"},
			before: []string{"line", "set", "--limit-hour", "3", "--reason", "card line", "+78001000000"}, check: bothWork, contains: "LineSettingsSet"},
		{command: "schedule", after: []string{"schedule", "add", "night", "--from", "22:00", "--to", "07:00", "--limit-hour", "2", "--reason", "bots"},
			before: []string{"schedule", "add", "--from", "22:00", "--to", "07:00", "--limit-hour", "2", "--reason", "bots", "night2"}, check: bothWork, contains: "ScheduleAdded"},
		{command: "schedules", after: []string{"schedules", "--json"}, before: []string{"schedules", "--json"}, check: sameOutput, contains: `"schedules"`, noArguments: true},
		{command: "user", after: []string{"user", "list", "--json"}, before: []string{"user", "list", "--json"}, check: sameOutput, contains: `"users"`, noArguments: true},
		{command: "audit", after: []string{"audit", "+79990006003", "--json", "--tz", "UTC"}, before: []string{"audit", "--json", "--tz", "UTC", "+79990006003"}, check: sameOutput, contains: `"kind": "block"`},
		{command: "replay", after: []string{"replay", "--limit-hour", "2", "--json"}, before: []string{"replay", "--json", "--limit-hour", "2"}, check: bothWork, contains: `"limitHour": 2`, noArguments: true},
		{command: "demo", after: []string{"demo", "--bots", "0", "--humans", "0", "--flagged", "0", "--dir", demoDir}, check: bothWork, contains: "all 0 calls done", noArguments: true},
		{command: "config", after: []string{"config", "--markdown"}, before: []string{"config", "--markdown"}, check: sameOutput, contains: "GUARD_DATA_DIR", noArguments: true},
		{command: "version", after: []string{"--version"}, before: []string{"version"}, check: sameOutput, contains: "callguard "},
	}

	help := runIn(t, cwd, nil, "help")
	listed := regexp.MustCompile(`(?m)^  ([a-z]+)  `).FindAllStringSubmatch(help.stdout, -1)
	if len(listed) < 10 {
		t.Fatalf("help lists %d commands:\n%s", len(listed), help.stdout)
	}
	for _, m := range listed {
		found := false
		for _, c := range cases {
			found = found || c.command == m[1]
		}
		if !found {
			t.Errorf("command %q is not in the table: add how it takes flags after its arguments", m[1])
		}
	}

	for _, c := range cases {
		t.Run(c.command, func(t *testing.T) {
			a := runIn(t, cwd, env, c.after...)
			if a.code != 0 || !strings.Contains(a.stdout+a.stderr, c.contains) {
				t.Fatalf("%q: want exit 0 and %q:\n%v", c.after, c.contains, a)
			}
			if c.before == nil {
				return
			}
			b := runIn(t, cwd, env, c.before...)
			if b.code != 0 {
				t.Fatalf("%q: want exit 0:\n%v", c.before, b)
			}
			if c.check == sameOutput && (a.stdout != b.stdout || a.stderr != b.stderr) {
				t.Fatalf("%q and %q differ:\n%v\n---\n%v", c.after, c.before, a, b)
			}
		})
	}
	// Flags-only commands still refuse a stray argument.
	if r := runIn(t, cwd, env, "blacklist", "+7999"); r.code != 2 {
		t.Fatalf("blacklist with an argument: want a usage error:\n%v", r)
	}
	// "--" ends the flags.
	if r := runIn(t, cwd, env, "audit", "--json", "--", "+79990006003"); r.code != 0 || !strings.Contains(r.stdout, `"kind": "block"`) {
		t.Fatalf("audit --json -- NUMBER:\n%v", r)
	}
}

// The CLI's own words: --version, help without repeated names, singular
// and plural, a manual block named once, and a rebuild that says it is
// done instead of printing a table mid-way.
func TestCLIOutputReadsWell(t *testing.T) {
	cwd := t.TempDir()
	if r := runIn(t, cwd, nil, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "callguard ") {
		t.Fatalf("--version:\n%v", r)
	}
	help := runIn(t, cwd, nil, "help")
	// Each command's line: its name, then what it does, in one column;
	// the name is not repeated ("projections projections").
	column := map[int][]string{}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+)( +)(\S+)`).FindAllStringSubmatch(help.stdout, -1) {
		column[2+len(m[1])+len(m[2])] = append(column[2+len(m[1])+len(m[2])], m[1])
		if m[1] == m[3] && m[1] != "block" {
			t.Errorf("help repeats the name %q", m[1])
		}
	}
	if len(column) != 1 {
		t.Errorf("help's summaries start at different columns %v:\n%s", column, help.stdout)
	}

	data := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+data)
	env := []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_LISTEN=" + adminAddr(t, g)}
	r := runIn(t, cwd, env, "block", "+79990007001", "--level", "7", "--reason", "fraud")
	if r.code != 0 || strings.Contains(r.stdout, "revision") || !strings.Contains(r.stdout, "now holds 1 event)") {
		t.Fatalf("block: want the history's size in words:\n%v", r)
	}
	r = runIn(t, cwd, env, "blacklist")
	if r.code != 0 || !strings.HasSuffix(r.stdout, "\n1 number\n") {
		t.Fatalf("blacklist of one: want %q:\n%v", "1 number", r)
	}
	r = runIn(t, cwd, env, "audit", "+79990007001")
	if r.code != 0 || strings.Contains(r.stdout, "(manual, manual)") || !strings.Contains(r.stdout, "level 7 (manual)") {
		t.Fatalf("audit of a manual block: want it named once:\n%v", r)
	}
	for _, via := range []string{"the running guard", "the store directly"} {
		if via == "the store directly" {
			g.stop(t)
		}
		r = runIn(t, cwd, env, "projections", "rebuild")
		if r.code != 0 || !regexp.MustCompile(`^rebuilt lists \(1 event\), profiles \(1 event\), reports \(1 event\) from the start of the log\n$`).MatchString(r.stdout) {
			t.Fatalf("projections rebuild through %s: want one rebuilt line:\n%v", via, r)
		}
		r = runIn(t, cwd, env, "projections", "rebuild", "lists", "--format", "json")
		var v struct {
			Rebuilt     []string `json:"rebuilt"`
			Projections []struct {
				Name      string `json:"name"`
				LagEvents int    `json:"lagEvents"`
			} `json:"projections"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || fmt.Sprint(v.Rebuilt) != "[lists]" || len(v.Projections) != 3 || v.Projections[0].LagEvents != 0 {
			t.Fatalf("projections rebuild lists --format json through %s:\n%v", via, r)
		}
	}
}
