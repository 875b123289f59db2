package caller

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrBusy: this node is saturated and did not get the request decided;
// nothing was asked of the store, or the store was healthy and the answer
// was late because of the node's own load. It is not a store failure: the
// call gets an overload answer (503 with Retry-After), never the
// store-down policy. Client.Admit returns it (see classify).
var ErrBusy = errors.New("node busy")

// DefaultMaxAdmits is the bound on a node's Admit requests in flight when
// Client.MaxAdmits is not set. A healthy node decides in milliseconds, so
// this many waiting is a backlog of 0.3-1.4 s at the 750-3,400 calls/s a
// node sustains on the pass path: deeper than that, the answer would come
// near or after the decision timeout anyway, and the call is better told
// "busy, retry" at once than kept waiting with its goroutines and memory.
const DefaultMaxAdmits = 1024

// Client sends requests to caller grains through the cluster, wherever
// their activation lives. Its zero value (with a Cluster) is ready; it
// must not be copied after first use.
type Client struct {
	Cluster *cluster.Cluster
	// Timeout bounds a request when ctx has no deadline.
	Timeout time.Duration
	// MaxAdmits bounds the Admit requests in flight from this node;
	// beyond it Admit returns ErrBusy at once. Zero means
	// DefaultMaxAdmits.
	MaxAdmits int
	// Clock tells when a grain last answered; time.Now when nil.
	Clock func() time.Time

	inFlight   atomic.Int64
	lastAnswer atomic.Int64 // unix nanoseconds of the last verdict a grain returned
}

// Admit asks the grain of caller key for the verdict on a call. Its
// errors, tested with errors.Is: ErrBusy (the node is saturated: see
// classify), ErrStore (the grain answered that the store failed),
// ErrUnavailable (no answer in time while no grain was answering either:
// the store or the grain is down), ErrInvalid.
func (c *Client) Admit(ctx context.Context, key string, req Admit) (Verdict, error) {
	limit := c.maxAdmits()
	if n := c.inFlight.Add(1); n > limit {
		c.inFlight.Add(-1)
		return Verdict{}, fmt.Errorf("%w: %d decisions in flight", ErrBusy, limit)
	}
	defer c.inFlight.Add(-1)
	started := c.now()
	var v Verdict
	err := c.request(ctx, key, req, &v)
	if err == nil {
		c.lastAnswer.Store(c.now().UnixNano())
		return v, nil
	}
	return v, c.classify(err, started)
}

// Saturated reports whether an Admit now would be refused as busy: the
// node's Admits in flight are at their bound. The SIP edge asks it before
// it starts any work on a new call, so a call shed under overload costs a
// 503 and nothing else (no call actor, no store append).
func (c *Client) Saturated() bool { return c.inFlight.Load() >= c.maxAdmits() }

func (c *Client) maxAdmits() int64 {
	if c.MaxAdmits <= 0 {
		return DefaultMaxAdmits
	}
	return int64(c.MaxAdmits)
}

// InFlight is the Admit requests in flight from this node.
func (c *Client) InFlight() int { return int(c.inFlight.Load()) }

func (c *Client) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

// classify tells a busy node from a store (or grain) that is down, for an
// Admit that failed.
//
// A grain that reaches the store and sees it fail answers ErrStore, and
// that is store-down. A request that got no answer in time (ErrUnavailable)
// is ambiguous: the store may hang (every grain waits on its append), a
// member may be gone, or this node may be so loaded that the grain's
// mailbox, the group commit or the CPU could not get to it in time. What
// tells them apart is whether grains are answering at all: a hung store or
// a dead grain answers nobody, a saturated node still decides calls, only
// late. So a timeout counts as busy when some grain returned a verdict
// since this request was sent; otherwise it is unavailable, and the
// store-down policy applies. The price, stated: when the store hangs under
// load, the requests in flight at that moment may still see a verdict
// that came just after they were sent and get 503 (busy) rather than the
// store-down policy, for at most one decision timeout; after that nothing
// answers and the policy applies. A grain on a dead member while the
// others answer also reads as busy until the cluster moves it (seconds):
// 503 with Retry-After, never "pass everything".
func (c *Client) classify(err error, started time.Time) error {
	if !errors.Is(err, ErrUnavailable) {
		return err
	}
	if last := c.lastAnswer.Load(); last != 0 && last >= started.UnixNano() {
		return fmt.Errorf("%w: no verdict in time while grains were answering: %v", ErrBusy, err)
	}
	return err
}

// Outcome tells the grain of caller key how a challenge ended.
func (c *Client) Outcome(ctx context.Context, key string, req Outcome) (Applied, error) {
	var a Applied
	err := c.request(ctx, key, req, &a)
	return a, err
}

// Ended tells the grain of key that call req.CallID is over (open.go).
func (c *Client) Ended(ctx context.Context, key string, req Ended) error {
	var a Applied
	return c.request(ctx, key, req, &a)
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

// fencedRetryAfter is the pause before a request a fenced activation
// refused is sent again: time for the stale activation to stop and for its
// node to confirm or lose its membership, so that the retry reaches the
// number's owner.
const fencedRetryAfter = 100 * time.Millisecond

func (c *Client) request(ctx context.Context, key string, req any, into any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
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
		return err
	}
	for {
		err := c.requestOnce(ctx, key, packed, into)
		if !errors.Is(err, ErrFenced) {
			return err
		}
		t := time.NewTimer(fencedRetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %s: %v", ErrUnavailable, key, err)
		case <-t.C:
		}
	}
}

type reply struct {
	resp any
	err  error
}

// requestOnce sends one request through the cluster, bounded by ctx's
// deadline as a whole. cluster.Request retries on timeouts and dead
// letters, re-resolving the activation (the grain's deterministic event
// IDs make a repeated request write nothing twice), but its timeout is per
// attempt and the identity lookup before each attempt waits up to 5 s of
// its own for a member that does not answer (disthash's placement
// request): so it runs on a goroutine, and the caller stops waiting at the
// deadline. The goroutine ends when its attempts do, after the deadline.
func (c *Client) requestOnce(ctx context.Context, key string, packed *anypb.Any, into any) error {
	dl, _ := ctx.Deadline()
	remaining := time.Until(dl)
	if remaining <= 0 {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, key, context.DeadlineExceeded)
	}
	done := make(chan reply, 1)
	go func() {
		resp, err := c.Cluster.Request(key, KindName, packed, cluster.WithTimeout(remaining))
		done <- reply{resp, err}
	}()
	var r reply
	select {
	case r = <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: no answer in %v: %v", ErrUnavailable, key, remaining.Round(time.Millisecond), ctx.Err())
	}
	if r.err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, key, r.err)
	}
	a, ok := r.resp.(*anypb.Any)
	if !ok {
		return fmt.Errorf("%w: %s: unexpected reply %T", ErrUnavailable, key, r.resp)
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
