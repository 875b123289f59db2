package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/projections/runner"
)

// Where the CLI gets its answers. Write commands always go to a running
// guard's admin API. A read command (blacklist, whitelist list, report,
// callers, projections, audit, replay) follows one rule, withStore's:
//
//  1. GUARD_ADMIN_URL set: ask the guard there, and only there; a guard
//     that does not answer is an error that says so.
//  2. Else, when GUARD_DATA_DIR holds an event store no guard has open,
//     read it directly.
//  3. Else ask the guard at GUARD_ADMIN_LISTEN's address.
//
// When neither answers, the error says what was tried. A read never
// creates a data directory.

// guardDownError says that the CLI asked a guard that did not answer,
// what it had tried before, and what to do.
type guardDownError struct {
	url      string // where the CLI asked
	explicit bool   // url is GUARD_ADMIN_URL's
	tried    string // what was tried before asking ("" if nothing)
	err      error  // the transport's error
}

func (e *guardDownError) Error() string {
	var b strings.Builder
	if e.tried != "" {
		b.WriteString(e.tried + ", and ")
	}
	if e.explicit {
		fmt.Fprintf(&b, "no guard answers at %s (%sADMIN_URL): %v\n  is the guard running, and is %sADMIN_URL the address of its admin API (its %sADMIN_LISTEN)?",
			e.url, envPrefix, e.err, envPrefix, envPrefix)
		return b.String()
	}
	fmt.Fprintf(&b, "no guard answers at %s (the address of %sADMIN_LISTEN): %v\n  is the guard running (callguard serve)? If it listens elsewhere: %sADMIN_URL=http://HOST:PORT callguard ...",
		e.url, envPrefix, e.err, envPrefix)
	if strings.HasPrefix(e.tried, "no ") {
		fmt.Fprintf(&b, "\n  or, to read a stopped guard's store directly, point %sDATA_DIR at it", envPrefix)
	}
	return b.String()
}

func (e *guardDownError) Unwrap() error { return e.err }

// adminTarget is the admin API the CLI asks: GUARD_ADMIN_URL when set
// (explicit), else GUARD_ADMIN_LISTEN's address (an unspecified host, as
// in 0.0.0.0:8780, is reached on loopback).
func adminTarget(cfg Config) (url string, explicit bool) {
	if cfg.AdminURL != "" {
		return strings.TrimRight(cfg.AdminURL, "/"), true
	}
	listen := cfg.Admin.Listen
	if listen == "" {
		listen = adminapi.DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen, false
	}
	if addr, err := netip.ParseAddr(host); host == "" || (err == nil && addr.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), false
}

// newAdminClient is the CLI's client of the guard adminTarget names.
// tried says what the command tried before asking a guard ("" when the
// guard was its first choice); errors carry it.
func newAdminClient(cfg Config, tried string) (*adminClient, error) {
	base, explicit := adminTarget(cfg)
	token, err := cliToken(cfg, base, explicit, tried)
	if err != nil {
		return nil, err
	}
	down := func(err error) error {
		return &guardDownError{url: base, explicit: explicit, tried: tried, err: err}
	}
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: hintTransport{base: http.DefaultTransport, down: down}}
	return &adminClient{&adminapi.Client{BaseURL: base, Token: token, HTTP: hc}}, nil
}

// cliToken finds the admin token for the CLI, or says which variable to
// set.
func cliToken(cfg Config, base string, explicit bool, tried string) (string, error) {
	token, _, err := adminToken(cfg, false)
	if err == nil {
		return token, nil
	}
	if !answers(base) {
		// Nothing to ask: say so rather than ask for a token.
		return "", &guardDownError{url: base, explicit: explicit, tried: tried, err: errors.New("nothing listens there")}
	}
	if explicit {
		return "", fmt.Errorf("no admin token for the guard at %s: set %sADMIN_TOKEN to its token (a guard started without one keeps the token it drew in its %sDATA_DIR/%s)",
			base, envPrefix, envPrefix, tokenFile)
	}
	prefix := ""
	if tried != "" {
		prefix = tried + "; a guard answers at " + base + ", but there is "
	}
	return "", fmt.Errorf("%sno admin token in %s: run the CLI with the guard's %sDATA_DIR (it reads the token the guard keeps there), or set %sADMIN_TOKEN",
		prefix, filepath.Join(cfg.DataDir, tokenFile), envPrefix, envPrefix)
}

// answers reports whether anything accepts a connection at base.
func answers(base string) bool {
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	c, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// hintTransport turns a transport failure (nothing listens, no route, a
// reset) into a guardDownError that says what to do.
type hintTransport struct {
	base http.RoundTripper
	down func(error) error
}

func (t hintTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil && r.Context().Err() == nil {
		return nil, t.down(err)
	}
	return resp, err
}

// withStore runs direct against the event store, or viaAPI against a
// running guard, by the rule at the top of this file.
func withStore[T any](ctx context.Context, cfg Config, stderr io.Writer, direct func(events.Store) (T, error), viaAPI func(*adminClient) (T, error)) (T, error) {
	var zero T
	if cfg.AdminURL != "" {
		return askGuard(cfg, stderr, "", viaAPI)
	}
	if cfg.embeddedStore() {
		if ok, err := storeExists(cfg.DataDir); err != nil {
			return zero, err
		} else if !ok {
			return askGuard(cfg, stderr, fmt.Sprintf("no event store in %s (%sDATA_DIR)", cfg.DataDir, envPrefix), viaAPI)
		}
	}
	store, err := openStore(ctx, cfg, newLogger(io.Discard, cfg))
	if errors.Is(err, events.ErrLocked) {
		return askGuard(cfg, stderr, fmt.Sprintf("a guard holds %s (%sDATA_DIR)", cfg.DataDir, envPrefix), viaAPI)
	}
	if err != nil {
		return zero, err
	}
	defer store.Close()
	return direct(store)
}

// storeExists reports whether dir holds an embedded event store. Reads
// look before they open: opening would create one.
func storeExists(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, embedded.FileName))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("look for the event store in %s: %w", dir, err)
}

// askGuard does the work through a running guard's admin API; tried says
// what was tried first.
func askGuard[T any](cfg Config, stderr io.Writer, tried string, viaAPI func(*adminClient) (T, error)) (T, error) {
	c, err := newAdminClient(cfg, tried)
	if err != nil {
		var zero T
		return zero, err
	}
	c.Stale = func(_ string, fr runner.Freshness) { warnStale(stderr, fr) }
	return viaAPI(c)
}
