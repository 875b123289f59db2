package caller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/anypb"
)

// Client sends requests to caller grains through the cluster, wherever
// their activation lives.
type Client struct {
	Cluster *cluster.Cluster
	// Timeout bounds a request when ctx has no deadline.
	Timeout time.Duration
}

// Admit asks the grain of caller key for the verdict on a call.
func (c *Client) Admit(ctx context.Context, key string, req Admit) (Verdict, error) {
	var v Verdict
	err := c.request(ctx, key, req, &v)
	return v, err
}

// Outcome tells the grain of caller key how a challenge ended.
func (c *Client) Outcome(ctx context.Context, key string, req Outcome) (Applied, error) {
	var a Applied
	err := c.request(ctx, key, req, &a)
	return a, err
}

// Command applies an admin command to the grain of caller key.
func (c *Client) Command(ctx context.Context, key string, req Command) (Applied, error) {
	var a Applied
	err := c.request(ctx, key, req, &a)
	return a, err
}

// Status returns the standing of caller key.
func (c *Client) Status(ctx context.Context, key string) (Status, error) {
	var s Status
	err := c.request(ctx, key, GetStatus{}, &s)
	return s, err
}

func (c *Client) request(ctx context.Context, key string, req any, into any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	packed, err := pack(req)
	if err != nil {
		return err
	}
	// cluster.Request retries on timeouts and dead letters, re-resolving the
	// activation; the grain's deterministic event IDs make a repeated
	// request write nothing twice.
	resp, err := c.Cluster.Request(key, KindName, packed, cluster.WithTimeout(timeout))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, key, err)
	}
	a, ok := resp.(*anypb.Any)
	if !ok {
		return fmt.Errorf("%w: %s: unexpected reply %T", ErrUnavailable, key, resp)
	}
	msg, err := unpack(a)
	if err != nil {
		return err
	}
	if f, ok := msg.(*failure); ok {
		return f.err()
	}
	return assign(into, msg)
}

func assign(into, msg any) error {
	switch dst := into.(type) {
	case *Verdict:
		if m, ok := msg.(*Verdict); ok {
			*dst = *m
			return nil
		}
	case *Applied:
		if m, ok := msg.(*Applied); ok {
			*dst = *m
			return nil
		}
	case *Status:
		if m, ok := msg.(*Status); ok {
			*dst = *m
			return nil
		}
	}
	return errors.New("caller: reply of the wrong type")
}

// RequestPID sends msg to a caller grain by PID, bypassing the cluster's
// identity lookup, and returns the unpacked reply (a *Verdict, *Applied,
// *Status, or an error for a failure). Tests use it to run two activations
// of one number side by side.
func RequestPID(sender actor.SenderContext, pid *actor.PID, msg any, timeout time.Duration) (any, error) {
	packed, err := pack(msg)
	if err != nil {
		return nil, err
	}
	resp, err := sender.RequestFuture(pid, packed, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	a, ok := resp.(*anypb.Any)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected reply %T", ErrUnavailable, resp)
	}
	reply, err := unpack(a)
	if err != nil {
		return nil, err
	}
	if f, ok := reply.(*failure); ok {
		return nil, f.err()
	}
	return reply, nil
}
