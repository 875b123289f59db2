package esdb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/callguard/callguard/events"
)

// ErrPermission means EventStoreDB refused the credentials of the connection
// string, or the user lacks a permission the Store needs (reading $all
// needs an admin or ops user on a secure server). Retrying does not help:
// Subscribe gives up on it instead of resubscribing.
var ErrPermission = errors.New("EventStoreDB refused access")

// errKind is what an error from the client means to the Store.
type errKind uint8

const (
	// kindOther is any other error: passed on, wrapped.
	kindOther errKind = iota
	// kindUnavailable: the server could not be reached or did not answer
	// in time; the call may succeed if retried.
	kindUnavailable
	// kindClientClosed: the client closed itself. EventStore-Client-Go/v4
	// does this for good after a failed node discovery (its connection
	// state machine exits), so the Store replaces the client.
	kindClientClosed
	// kindPermission: see ErrPermission.
	kindPermission
	// kindNotFound: the stream does not exist.
	kindNotFound
	// kindWrongExpected: the stream was not in the expected state.
	kindWrongExpected
	// kindCanceled: a context ended the call.
	kindCanceled
)

// classify says what err from the client means. The client returns
// *client.Error for most failures, sometimes wrapped in fmt.Errorf, and a
// raw gRPC status error for a few (a failed Read call, a dropped
// subscription).
func classify(err error) errKind {
	if err == nil {
		return kindOther
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kindCanceled
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		if ce.Err() != nil && strings.Contains(ce.Err().Error(), discoveryFailed) {
			return kindClientClosed
		}
		switch ce.Code() {
		case client.ErrorCodeConnectionClosed:
			return kindClientClosed
		case client.ErrorUnavailable, client.ErrorCodeDeadlineExceeded, client.ErrorAborted, client.ErrorCodeNotLeader:
			return kindUnavailable
		case client.ErrorCodeUnauthenticated, client.ErrorCodeAccessDenied:
			return kindPermission
		case client.ErrorCodeResourceNotFound:
			return kindNotFound
		case client.ErrorCodeWrongExpectedVersion:
			return kindWrongExpected
		}
	}
	// A gRPC status anywhere in the chain (status.FromError unwraps).
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
			return kindUnavailable
		case codes.Unauthenticated, codes.PermissionDenied:
			return kindPermission
		case codes.Canceled:
			return kindCanceled
		}
	}
	return kindOther
}

// discoveryFailed is in the message of the error that ends a failed node
// discovery of EventStore-Client-Go/v4.2.0, after which the client has
// closed itself.
const discoveryFailed = "maximum discovery attempt count reached"

// wrapClientErr turns an error of the client into one of the Store's
// sentinels where one applies, keeping the original for the message.
func wrapClientErr(err error) error {
	switch classify(err) {
	case kindUnavailable, kindClientClosed:
		return fmt.Errorf("%w: %w", events.ErrUnavailable, err)
	case kindPermission:
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	return err
}

// currentRe finds the actual revision in the client's wrong expected
// version message: "wrong expected version: expecting '3' but got '2'" or
// "... but got 'no_stream'".
var currentRe = regexp.MustCompile(`but got '([^']*)'`)

// actualFromMessage reads the stream's actual revision out of a wrong
// expected version error of EventStore-Client-Go/v4.2.0, which keeps it only
// in its message. It is the fallback for when the stream cannot be read.
func actualFromMessage(err error) (int64, bool) {
	m := currentRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	if m[1] == "no_stream" {
		return events.NoRevision, true
	}
	n, perr := strconv.ParseInt(m[1], 10, 64)
	if perr != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// permanent reports whether a subscription that failed with err should
// give up rather than resubscribe.
func permanent(err error) bool {
	return errors.Is(err, events.ErrClosed) || errors.Is(err, events.ErrInvalid) || errors.Is(err, ErrPermission)
}
