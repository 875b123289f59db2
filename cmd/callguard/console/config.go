package console

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
)

// Defaults of Config.
const (
	// DefaultIdleTimeout ends a session nobody has used for this long: a
	// console left open on an unattended desk does not stay signed in.
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxAge ends every session this long after sign-in, used or
	// not: about one working day.
	DefaultMaxAge = 12 * time.Hour
	// DefaultRequestTimeout bounds the cluster and read-side calls behind
	// one page.
	DefaultRequestTimeout = 10 * time.Second
)

// ErrConfig means the configuration is refused; the message says why.
var ErrConfig = errors.New("console configuration")

// Config configures the console. The env tags are read under the
// binary's GUARD_ prefix (GUARD_CONSOLE_LISTEN, ...).
type Config struct {
	// Listen is the host:port of the console's own listener. Empty mounts
	// the console at /console/ on the admin API's listener instead.
	Listen string `env:"CONSOLE_LISTEN" desc:"host:port of the web console's own listener (empty: served at /console/ on the admin API's listener)"`

	// IdleTimeout signs a session out after this long without a request.
	IdleTimeout time.Duration `env:"CONSOLE_IDLE_TIMEOUT" envDefault:"30m" desc:"the console signs a user out after this long without a request"`

	// MaxAge signs a session out this long after sign-in, however busy.
	MaxAge time.Duration `env:"CONSOLE_SESSION_MAX_AGE" envDefault:"12h" desc:"the console signs a user out this long after sign-in, however busy"`

	// RequestTimeout bounds the calls behind one page.
	RequestTimeout time.Duration `env:"CONSOLE_REQUEST_TIMEOUT" envDefault:"10s" desc:"time limit of the cluster and read-side calls behind one console page"`

	// ReadWait bounds how long a page that reads the lists, profiles or
	// reports waits for its projection to catch up with the log, as the
	// admin API's reads do; then it shows what it has, marked lagging. It
	// is not read from the environment: cmd sets it from
	// GUARD_ADMIN_READ_WAIT. Default adminapi.DefaultReadWait.
	ReadWait time.Duration

	// TLS says the console is served over HTTPS (its listener's, or the
	// admin API's when mounted there), so the session cookie is marked
	// Secure. It is not read from the environment: cmd sets it from the
	// listener.
	TLS bool
}

func (c *Config) defaults() {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReadWait <= 0 {
		c.ReadWait = adminapi.DefaultReadWait
	}
}

// Validate reports the first thing wrong with c, its defaults filled in.
func (c Config) Validate() error {
	c.defaults()
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("%w: GUARD_CONSOLE_LISTEN %q is not host:port: %v", ErrConfig, c.Listen, err)
		}
	}
	switch {
	case c.IdleTimeout < time.Minute:
		return fmt.Errorf("%w: GUARD_CONSOLE_IDLE_TIMEOUT is %s, want at least 1m", ErrConfig, c.IdleTimeout)
	case c.MaxAge < c.IdleTimeout:
		return fmt.Errorf("%w: GUARD_CONSOLE_SESSION_MAX_AGE (%s) is shorter than GUARD_CONSOLE_IDLE_TIMEOUT (%s)", ErrConfig, c.MaxAge, c.IdleTimeout)
	case c.MaxAge > 7*24*time.Hour:
		return fmt.Errorf("%w: GUARD_CONSOLE_SESSION_MAX_AGE is %s, want at most 168h: a session must end at least weekly", ErrConfig, c.MaxAge)
	}
	return nil
}
