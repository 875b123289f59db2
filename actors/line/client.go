package line

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/anypb"
)

// Client sends requests to line grains through the cluster.
type Client struct {
	Cluster *cluster.Cluster
	// Timeout bounds a request when ctx has no deadline (default 5 s).
	Timeout time.Duration
}

// Counts sends a node's batch for line and returns the line's mode.
func (c *Client) Counts(ctx context.Context, line string, req Counts) (Mode, error) {
	return c.request(ctx, line, req)
}

// Command switches line's mode by hand.
func (c *Client) Command(ctx context.Context, line string, req Command) (Mode, error) {
	return c.request(ctx, line, req)
}

// Status returns line's mode and rate.
func (c *Client) Status(ctx context.Context, line string) (Mode, error) {
	return c.request(ctx, line, GetStatus{})
}

// fencedRetryAfter: as in package caller, time for a stale activation to
// stop before the request is sent again.
const fencedRetryAfter = 100 * time.Millisecond

func (c *Client) request(ctx context.Context, line string, req any) (Mode, error) {
	if !ValidLine(line) {
		return Mode{}, fmt.Errorf("%w: %q is not a line number (E.164)", ErrInvalid, line)
	}
	if _, ok := ctx.Deadline(); !ok {
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	packed, err := pack(req)
	if err != nil {
		return Mode{}, err
	}
	for {
		m, err := c.once(ctx, line, packed)
		if !errors.Is(err, ErrFenced) {
			return m, err
		}
		t := time.NewTimer(fencedRetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return Mode{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, line, err)
		case <-t.C:
		}
	}
}

func (c *Client) once(ctx context.Context, line string, packed *anypb.Any) (Mode, error) {
	dl, _ := ctx.Deadline()
	remaining := time.Until(dl)
	if remaining <= 0 {
		return Mode{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, line, context.DeadlineExceeded)
	}
	type reply struct {
		resp any
		err  error
	}
	done := make(chan reply, 1)
	go func() {
		resp, err := c.Cluster.Request(line, KindName, packed, cluster.WithTimeout(remaining))
		done <- reply{resp, err}
	}()
	var r reply
	select {
	case r = <-done:
	case <-ctx.Done():
		return Mode{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, line, ctx.Err())
	}
	if r.err != nil {
		return Mode{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, line, r.err)
	}
	a, ok := r.resp.(*anypb.Any)
	if !ok {
		return Mode{}, fmt.Errorf("%w: %s: unexpected reply %T", ErrUnavailable, line, r.resp)
	}
	msg, err := unpack(a)
	if err != nil {
		return Mode{}, err
	}
	switch m := msg.(type) {
	case *failure:
		return Mode{}, m.err()
	case *Mode:
		return *m, nil
	}
	return Mode{}, fmt.Errorf("%w: %s: reply %T", ErrUnavailable, line, msg)
}
