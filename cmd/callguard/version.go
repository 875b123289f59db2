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

func runVersion(_ context.Context, _ []string, _ []string, stdout, _ io.Writer) error {
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
	_, err := fmt.Fprintf(stdout, "callguard %s (commit %s, %s %s/%s)\n", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

func runConfig(_ context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "--markdown" {
		printConfigMarkdown(stdout)
		return nil
	}
	if len(args) > 0 {
		return usageError{"usage: callguard config [--markdown]"}
	}
	warnUnknownVars(stderr, environ)
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	return printConfig(stdout, cfg)
}
