package main

import (
	"fmt"
	"net"
	"strings"
)

// sdNotify tells systemd how the service stands (sd_notify(3)): it sends
// state, such as "READY=1", as one datagram to the socket named by
// NOTIFY_SOCKET in environ. Without NOTIFY_SOCKET (not started by
// systemd, or by a unit of another Type) it does nothing. The unit of
// cmd/callguard/deploy is Type=notify, so that systemctl start returns,
// and units ordered after callguard start, once the guard takes calls.
func sdNotify(environ []string, state string) error {
	var path string
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			path = v
		}
	}
	switch {
	case path == "":
		return nil
	case path[0] == '@':
		path = "\x00" + path[1:] // the abstract namespace
	case path[0] != '/':
		return fmt.Errorf("NOTIFY_SOCKET %q is not a Unix socket", path)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
