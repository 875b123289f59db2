package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at release time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func runVersion(_ context.Context, args []string, _ []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version (or callguard --version)", stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0); err != nil {
		return err
	}
	rev, modified := "unknown", false
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		rev += "+dirty"
	}
	_, err = fmt.Fprintf(stdout, "callguard %s (commit %s, %s %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

func runConfig(_ context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config", "config [--markdown]", stderr)
	markdown := fs.Bool("markdown", false, "print the README's configuration table instead")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0); err != nil {
		return err
	}
	if *markdown {
		printConfigMarkdown(stdout)
		return nil
	}
	warnUnknownVars(stderr, environ)
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	return printConfig(stdout, cfg)
}
