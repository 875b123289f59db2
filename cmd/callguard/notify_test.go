package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSdNotify: the state reaches a datagram socket named by a path or in
// the abstract namespace; without NOTIFY_SOCKET nothing is sent and
// nothing fails; a socket nobody listens on is an error the caller logs.
func TestSdNotify(t *testing.T) {
	if err := sdNotify([]string{"HOME=/root"}, "READY=1"); err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v", err)
	}
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@callguard-test-" + filepath.Base(t.TempDir())
	for _, tc := range []struct{ name, env, listen string }{
		{"path", path, path},
		{"abstract", abstract, "\x00" + abstract[1:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tc.listen, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if err := sdNotify([]string{"NOTIFY_SOCKET=" + tc.env}, "READY=1\nSTATUS=serving"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := ln.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(buf[:n]); got != "READY=1\nSTATUS=serving" {
				t.Fatalf("got %q", got)
			}
		})
	}
	err := sdNotify([]string{"NOTIFY_SOCKET=" + filepath.Join(t.TempDir(), "none")}, "READY=1")
	if err == nil || !strings.Contains(err.Error(), "notify systemd") {
		t.Fatalf("no listener: %v, want an error", err)
	}
	if err := sdNotify([]string{"NOTIFY_SOCKET=relative"}, "READY=1"); err == nil {
		t.Fatal("a relative NOTIFY_SOCKET was accepted")
	}
}
