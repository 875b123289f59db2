package main

import (
	"io"
	"strings"
	"testing"
)

func TestReadPassword(t *testing.T) {
	tests := []struct {
		name      string
		stdin     string
		fromStdin bool
		want      string
		err       string
	}{
		{name: "one line", stdin: "a long password\n", fromStdin: true, want: "a long password"},
		{name: "CRLF", stdin: "a long password\r\n", fromStdin: true, want: "a long password"},
		{name: "no newline", stdin: "a long password", fromStdin: true, want: "a long password"},
		{name: "spaces kept", stdin: "  a long password  \n", fromStdin: true, want: "  a long password  "},
		{name: "two lines", stdin: "a long password\nsecond\n", fromStdin: true, err: "one line"},
		{name: "short", stdin: "short\n", fromStdin: true, err: "it has 5 characters, at least 12"},
		{name: "empty", stdin: "", fromStdin: true, err: "it has 0 characters"},
		{name: "too long", stdin: strings.Repeat("x", 2000), fromStdin: true, err: "at most 1024"},
		{name: "no terminal", stdin: "a long password\n", err: "no terminal to ask the password on: give it on standard input with --password-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPassword(strings.NewReader(tt.stdin), tt.fromStdin, "alice", io.Discard)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !isUsage(err) {
					t.Fatalf("= %q, %v; want a usage error saying %q", got, err, tt.err)
				}
				if len(tt.stdin) > 4 && strings.Contains(err.Error(), strings.TrimSpace(tt.stdin)) {
					t.Fatalf("the error quotes the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
