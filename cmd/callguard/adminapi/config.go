package adminapi

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultListen is where the admin API listens unless told otherwise:
// loopback only, so that a guard started with no configuration exposes
// nothing, and a port next to nothing else callguard uses.
const DefaultListen = "127.0.0.1:8780"

// MinTokenLength is the shortest GUARD_ADMIN_TOKEN accepted. The token is
// the only thing between the network and the power to whitelist a fraud
// dialler; 16 characters of `openssl rand -base64 24` are beyond guessing,
// a word such as "secret" is not.
const MinTokenLength = 16

// DefaultRequestTimeout bounds one request's call into the cluster.
const DefaultRequestTimeout = 10 * time.Second

// DefaultReadWait bounds how long a read of the read side waits for its
// projections to reach the head of the log.
const DefaultReadWait = 2 * time.Second

// ErrConfig means the configuration is refused; the message says why.
var ErrConfig = errors.New("admin API configuration")

// Config configures the admin API. The env tags are read under the
// binary's GUARD_ prefix (GUARD_ADMIN_TOKEN, ...).
type Config struct {
	// Token is the bearer token every /v1 request must carry. Required,
	// even on loopback (see the package documentation for why), at least
	// MinTokenLength characters of RFC 6750 b64token syntax (letters,
	// digits and -._~+/ with trailing =), so that it can be sent in an
	// Authorization header as it is.
	Token string `env:"ADMIN_TOKEN" secret:"true" desc:"bearer token of the admin HTTP API (required, at least 16 characters, e.g. from openssl rand -base64 24)"`

	// Listen is the host:port the API listens on. Default DefaultListen.
	// A host that is not a loopback address or "localhost" (including an
	// empty host, meaning every interface) exposes the API to the network;
	// then put TLS in front of it or set TLSCert and TLSKey, because the
	// token travels in every request.
	Listen string `env:"ADMIN_LISTEN" envDefault:"127.0.0.1:8780" desc:"host:port of the admin HTTP API; loopback by default"`

	// TLSCert and TLSKey are PEM files; set both to serve HTTPS. Empty
	// serves plain HTTP, which is fine on loopback.
	TLSCert string `env:"ADMIN_TLS_CERT" desc:"PEM certificate file for HTTPS on the admin API (empty: plain HTTP)"`
	TLSKey  string `env:"ADMIN_TLS_KEY" desc:"PEM private key file for HTTPS on the admin API"`

	// RequestTimeout bounds the cluster request behind one API request.
	// Default DefaultRequestTimeout: above the grain's own store timeout
	// (5 s), so a store failure is reported as one rather than as a
	// timeout.
	RequestTimeout time.Duration `env:"ADMIN_REQUEST_TIMEOUT" envDefault:"10s" desc:"time limit of one admin API request inside the cluster"`

	// ReadWait bounds how long a read of the lists, profiles or reports
	// waits for its projection to reach the head of the log as it was
	// when the read began; past it the answer is served as it stands,
	// marked lagging. Default DefaultReadWait.
	ReadWait time.Duration `env:"ADMIN_READ_WAIT" envDefault:"2s" desc:"how long an admin API read or a console page waits for its projection to catch up with the log before it answers marked lagging"`
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReadWait <= 0 {
		c.ReadWait = DefaultReadWait
	}
}

// Validate reports the first thing wrong with c, its defaults filled in
// (an empty Listen is DefaultListen). The token is never part of a
// message: errors end up in logs.
func (c Config) Validate() error {
	c.defaults()
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("%w: GUARD_ADMIN_LISTEN %q is not host:port: %v", ErrConfig, c.Listen, err)
	}
	switch {
	case c.Token == "" && !IsLoopback(host):
		return fmt.Errorf("%w: refusing to listen on %s, beyond loopback, without a token: set GUARD_ADMIN_TOKEN (or listen on 127.0.0.1)", ErrConfig, c.Listen)
	case c.Token == "":
		return fmt.Errorf("%w: GUARD_ADMIN_TOKEN is empty: the admin API requires a bearer token even on loopback, since any local process or a web page in a local browser can reach %s", ErrConfig, c.Listen)
	case len(c.Token) < MinTokenLength:
		return fmt.Errorf("%w: GUARD_ADMIN_TOKEN is %d characters, want at least %d (try openssl rand -base64 24)", ErrConfig, len(c.Token), MinTokenLength)
	case !isB64Token(c.Token):
		return fmt.Errorf("%w: GUARD_ADMIN_TOKEN may hold only letters, digits and -._~+/ with trailing = (RFC 6750 b64token), so that it fits an Authorization header", ErrConfig)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return fmt.Errorf("%w: set both GUARD_ADMIN_TLS_CERT and GUARD_ADMIN_TLS_KEY, or neither", ErrConfig)
	}
	return nil
}

// IsLoopback reports whether a listen host keeps the API on this machine.
// Names other than "localhost" are not resolved: what they resolve to can
// change, and a refusal to start is cheaper than an exposed API.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// isB64Token reports whether s matches RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/':
		default:
			return false
		}
	}
	return true
}
