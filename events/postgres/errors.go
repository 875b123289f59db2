package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callguard/callguard/events"
)

// wrap gives err the Store's meaning: ErrClosed when Close overtook the
// call, ErrUnavailable when the server could not be reached or went away
// (the call may succeed if retried; an append retried with the same event
// IDs is idempotent), and the operation's name in every case.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return s.errClosedDuring(fmt.Errorf("postgres: %s: %w", op, err))
	}
	if unavailable(err) {
		return s.errClosedDuring(fmt.Errorf("postgres: %s: %w: %w", op, events.ErrUnavailable, err))
	}
	return s.errClosedDuring(fmt.Errorf("postgres: %s: %w", op, err))
}

// unavailable reports whether err means the server is down, unreachable,
// restarting or out of connections, rather than that the request was
// wrong.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case strings.HasPrefix(pgErr.Code, "53"): // insufficient resources (too many connections, disk full)
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, crash, cannot connect now
			return true
		case pgErr.Code == "25006": // read-only transaction: a standby after a failover
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return true
	}
	// pgconn reports a connection it found dead by these messages only.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "failed to connect")
}

// unique reports whether err is a unique violation.
func unique(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
