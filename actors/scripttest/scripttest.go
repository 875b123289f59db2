// Package scripttest runs scenario scripts in the style of
// cockroachdb/datadriven, for the tests of the policy and of the call
// machine: a script is a sequence of cases
//
//	# comment
//	command args...
//	----
//	expected output
//	<blank line>
//
// and a test's -update flag rewrites the expected output from what the
// code prints now (commit it only once the diff is understood).
//
// A command line is words separated by spaces; a double-quoted part is a
// Go string literal (so a script can write \n or \x07), and
// "at T" is the option at=T. Words key=value with a plain lower-case key
// are options, the rest positional arguments.
package scripttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Run runs every script matching glob as a subtest. For each script it
// calls start once, then run for each case with the case's position
// ("file:line") and its parsed command, and compares the output with the
// expected one; with update set it rewrites the script instead.
func Run(t *testing.T, glob string, update bool, start func(t *testing.T) func(pos string, c *Command) string) {
	files, err := filepath.Glob(glob)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenario scripts match %s", glob)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runFile(t, file, update, start(t))
		})
	}
}

func runFile(t *testing.T, file string, update bool, run func(pos string, c *Command) string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		pos := fmt.Sprintf("%s:%d", file, i+1)
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s: command %q is not followed by ----", pos, line)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		i-- // the blank line is copied by the loop
		c, err := Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", pos, err)
		}
		got := run(pos, c)
		for _, k := range c.unused() {
			t.Fatalf("%s: option %s= is not used by %s", pos, k, c.Name)
		}
		if !update && got != strings.Join(want, "\n") {
			t.Errorf("%s: %s (run go test -update and review the diff)\n got:\n%s\nwant:\n%s", pos, line, Indent(got), Indent(strings.Join(want, "\n")))
		}
		out.WriteString(line + "\n----\n" + got + "\n")
	}
	if update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Indent indents every line of s by two spaces, for failure messages.
func Indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// Command is a parsed command line.
type Command struct {
	Name string
	// Args are the positional words after the name.
	Args []string
	opts map[string]string
	used map[string]bool
}

// Opt returns option k and whether it was given, and marks it used: an
// option no command reads fails the case.
func (c *Command) Opt(k string) (string, bool) {
	v, ok := c.opts[k]
	c.used[k] = true
	return v, ok
}

// Value is Opt's value alone ("" when not given).
func (c *Command) Value(k string) string {
	v, _ := c.Opt(k)
	return v
}

// Options returns every option given, without marking them used.
func (c *Command) Options() map[string]string { return c.opts }

// Given reports whether option k was given, without marking it used.
func (c *Command) Given(k string) bool {
	_, ok := c.opts[k]
	return ok
}

// All returns every option, all marked used (for a command that takes any
// setting and refuses unknown ones itself).
func (c *Command) All() map[string]string {
	for k := range c.opts {
		c.used[k] = true
	}
	return c.opts
}

func (c *Command) unused() []string {
	var out []string
	for k := range c.opts {
		if !c.used[k] {
			out = append(out, k)
		}
	}
	return out
}

// Parse parses one command line.
func Parse(line string) (*Command, error) {
	words, err := tokenize(line)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command in %q", line)
	}
	c := &Command{Name: words[0], opts: map[string]string{}, used: map[string]bool{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "at" && i+1 < len(words):
			c.opts["at"] = words[i+1]
			i++
		case isOption(w):
			k, v, _ := strings.Cut(w, "=")
			c.opts[k] = v
		default:
			c.Args = append(c.Args, w)
		}
	}
	return c, nil
}

// isOption reports whether w is key=value with a plain key; a SIP URI such
// as sip:+7...@host;user=phone is a positional word.
func isOption(w string) bool {
	k, _, ok := strings.Cut(w, "=")
	if !ok || k == "" {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// tokenize splits a command line on spaces, keeping double-quoted parts
// together (a quoted part is a Go string literal; the quotes are dropped).
func tokenize(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			end := i + 1
			for ; end < len(line) && line[end] != '"'; end++ {
				if line[end] == '\\' {
					end++
				}
			}
			if end >= len(line) {
				return nil, fmt.Errorf("unterminated quote in %q", line)
			}
			part, err := strconv.Unquote(line[i : end+1])
			if err != nil {
				return nil, fmt.Errorf("bad quoted text %s in %q: %w", line[i:end+1], line, err)
			}
			cur.WriteString(part)
			inWord, i = true, end
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
