package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"testing"
)

func TestParseArgsTakesFlagsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		pos        string
		json       bool
		reason, tz string
	}{
		{args: []string{"+79990003344", "--json"}, pos: "[+79990003344]", json: true},
		{args: []string{"--json", "+79990003344"}, pos: "[+79990003344]", json: true},
		{args: []string{"a", "--reason", "why", "b", "--tz=UTC"}, pos: "[a b]", reason: "why", tz: "UTC"},
		{args: []string{"--json", "--", "-x", "--reason"}, pos: "[-x --reason]", json: true},
		{args: []string{"a", "--reason", "--", "b"}, pos: "[a b]", reason: "--"},
		{args: []string{"a", "--json=false", "--", "--tz"}, pos: "[a --tz]"},
		{args: nil, pos: "[]"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		asJSON := fs.Bool("json", false, "")
		reason := fs.String("reason", "", "")
		tz := fs.String("tz", "", "")
		pos, err := parseArgs(fs, tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := fmt.Sprint(pos); got != tc.pos || *asJSON != tc.json || *reason != tc.reason || *tz != tc.tz {
			t.Errorf("%q: positional %s json %v reason %q tz %q; want %s %v %q %q", tc.args, got, *asJSON, *reason, *tz, tc.pos, tc.json, tc.reason, tc.tz)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := parseArgs(fs, []string{"a", "--nope"}); !isUsage(err) {
		t.Errorf("an unknown flag after an argument: %v, want a usage error", err)
	}
	if _, err := parseArgs(fs, []string{"a", "-h"}); !errors.Is(err, errHelp) {
		t.Errorf("-h after an argument: %v, want errHelp", err)
	}
}
