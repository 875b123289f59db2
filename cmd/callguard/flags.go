package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// parseArgs parses args against fs the way the README writes command
// lines: flags may come before, between or after the positional
// arguments (`callguard audit +79990003344 --json`). It returns the
// positional arguments in their order. A "--" ends the flags: everything
// after it is positional. -h and --help make a helpRequested error (the
// flag set has printed its usage).
//
// The standard flag package stops at the first positional argument; this
// parses again after each one, so every command gets the same rule from
// one place.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" && !takesValue(fs, args, n-1) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// takesValue reports whether args[i] is the value of the flag before it
// (`--reason -- ...` gives the reason "--"), not a terminator.
func takesValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 {
		return false
	}
	prev := args[i-1]
	if len(prev) < 2 || prev[0] != '-' {
		return false
	}
	name := prev[1:]
	if name[0] == '-' {
		name = name[1:]
	}
	if strings.Contains(name, "=") {
		return false // --name=value carries its value
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// newFlagSet is a command's flag set: errors and usage go to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: callguard %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// errHelp is returned when the user asked a command for its usage: the
// usage is printed and the command exits 0.
var errHelp = errors.New("help requested")

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, pos []string, want int) error {
	if len(pos) == want {
		return nil
	}
	fs.Usage()
	switch want {
	case 0:
		return usageError{fmt.Sprintf("unexpected argument(s): %q", pos)}
	case 1:
		return usageError{fmt.Sprintf("want one argument, got %d", len(pos))}
	}
	return usageError{fmt.Sprintf("want %d arguments, got %d", want, len(pos))}
}
