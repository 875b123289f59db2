package line

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/callguard/callguard/events/schema"
)

// Local is a node's side of the lines: the counter of new callers per
// line and the cache of each line's mode that the call path reads. Mode
// and Count are a map lookup and an atomic operation each; Run sends the
// counts to the line grains in batches and brings their modes back.
//
// How a mode change reaches a node: the grain answers every batch with the
// line's mode, so a node that sees calls to a line learns a change within
// one Flush; a node that sees none keeps asking every
// Poll for each line it saw a call to in the last Forget (a request per
// line and node a second: a bank has a handful of lines). Neither a
// cluster pub/sub nor a subscription to the store is needed, and a node
// that starts asks at its first flush.
type Local struct {
	// Send delivers a batch to the line's grain (Client.Counts).
	Send func(ctx context.Context, line string, c Counts) (Mode, error)
	// Node names this node in its batches.
	Node string
	// Flush is how often counts are sent (default 100 ms: at 30 calls a
	// second every 100 ms of delay lets three more calls through); Poll how often
	// a line without calls is asked for its mode (default 1 s); Forget
	// drops a line not called for that long (default 10 min). MaxLines
	// bounds the lines tracked (default 10,000): calls to further lines
	// are neither counted nor under attack.
	Flush, Poll, Forget time.Duration
	MaxLines            int
	// Timeout bounds one batch request (default 1 s).
	Timeout time.Duration
	Clock   func() time.Time
	Logger  *slog.Logger

	lines sync.Map // string -> *entry
	n     atomic.Int64
	// kick asks Run to flush at once: a line got KickAfter new callers
	// since its last batch, so a flood reaches the grain without waiting
	// for the tick.
	kick     chan struct{}
	kickOnce sync.Once
}

// KickAfter is how many new callers to one line since its last batch
// make the node send the batch at once rather than at the next Flush.
const KickAfter = 5

type entry struct {
	fresh    atomic.Int64 // new callers since the last batch
	calls    atomic.Int64 // any calls since the last batch
	lastCall atomic.Int64 // unix nanoseconds
	// mode is the line's mode, nil when not under attack; rev the stream
	// revision it is from (-1: never heard), so a late answer does not
	// overwrite a newer one.
	mode atomic.Pointer[schema.LineAttack]
	mu   sync.Mutex // orders set
	rev  int64
	// asked is when the flusher last asked (flusher only).
	asked time.Time
}

func (l *Local) now() time.Time {
	if l.Clock != nil {
		return l.Clock()
	}
	return time.Now()
}

func (l *Local) maxLines() int64 {
	if l.MaxLines <= 0 {
		return 10_000
	}
	return int64(l.MaxLines)
}

// get returns line's entry, creating it unless the bound is reached.
func (l *Local) get(line string) *entry {
	if e, ok := l.lines.Load(line); ok {
		return e.(*entry)
	}
	if !ValidLine(line) || l.n.Load() >= l.maxLines() {
		return nil
	}
	e, loaded := l.lines.LoadOrStore(line, &entry{rev: -1})
	if !loaded {
		l.n.Add(1)
	}
	return e.(*entry)
}

// Mode returns the line's mode as this node knows it: nil when the line
// is not under attack (or never heard of).
func (l *Local) Mode(line string) *schema.LineAttack {
	if e, ok := l.lines.Load(line); ok {
		return e.(*entry).mode.Load()
	}
	return nil
}

// Count records a call to line whose caller was new (or not: the call
// still keeps the line's mode fresh on this node).
func (l *Local) Count(line string, isNew bool) {
	e := l.get(line)
	if e == nil {
		return
	}
	if isNew && e.fresh.Add(1) == KickAfter {
		select {
		case l.kicks() <- struct{}{}:
		default: // a flush is already asked for
		}
	}
	e.calls.Add(1)
	e.lastCall.Store(l.now().UnixNano())
}

// Touch makes the line known to this node (its mode is fetched at the next
// flush) without counting a call: the call path calls it when it reads a
// line's mode, so that the node asks about a line from its first call.
func (l *Local) Touch(line string) {
	if e := l.get(line); e != nil && e.lastCall.Load() == 0 {
		e.lastCall.Store(l.now().UnixNano())
	}
}

// Set records line's mode m (a grain's answer) unless the node already
// knows a later revision.
func (l *Local) Set(line string, m Mode) {
	e := l.get(line)
	if e == nil {
		return
	}
	rev := int64(-1)
	if m.Exists {
		rev = int64(m.Revision)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if rev < e.rev {
		return
	}
	e.rev = rev
	if m.On {
		cur := e.mode.Load()
		if cur == nil || !cur.Since.Equal(m.Since) || cur.Manual != m.Manual {
			e.mode.Store(&schema.LineAttack{Since: m.Since.UTC(), Manual: m.Manual})
		}
	} else {
		e.mode.Store(nil)
	}
}

// Run flushes every Flush until ctx is done.
func (l *Local) Run(ctx context.Context) {
	every := l.Flush
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kicks():
		}
		l.FlushNow(ctx)
	}
}

func (l *Local) kicks() chan struct{} {
	l.kickOnce.Do(func() { l.kick = make(chan struct{}, 1) })
	return l.kick
}

// FlushNow sends the pending counts (and the polls due) and waits for the
// answers.
func (l *Local) FlushNow(ctx context.Context) {
	poll, forget, timeout := l.Poll, l.Forget, l.Timeout
	if poll <= 0 {
		poll = time.Second
	}
	if forget <= 0 {
		forget = 10 * time.Minute
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	now := l.now()
	var wg sync.WaitGroup
	l.lines.Range(func(k, v any) bool {
		line, e := k.(string), v.(*entry)
		fresh, calls := e.fresh.Swap(0), e.calls.Swap(0)
		if fresh == 0 && calls == 0 {
			if last := e.lastCall.Load(); now.Sub(time.Unix(0, last)) > forget && e.mode.Load() == nil {
				l.lines.Delete(line)
				l.n.Add(-1)
				return true
			}
			if now.Sub(e.asked) < poll {
				return true
			}
		}
		e.asked = now
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			m, err := l.Send(rctx, line, Counts{Node: l.Node, New: int(fresh)})
			if err != nil {
				// Not lost: counted again with the next batch.
				e.fresh.Add(fresh)
				if l.Logger != nil && ctx.Err() == nil {
					l.Logger.Debug("line batch not delivered", "line", line, "err", err)
				}
				return
			}
			l.Set(line, m)
		}()
		return true
	})
	wg.Wait()
}

// Lines returns the lines this node tracks, true for those under attack,
// for metrics.
func (l *Local) Lines() map[string]bool {
	out := map[string]bool{}
	l.lines.Range(func(k, v any) bool {
		out[k.(string)] = v.(*entry).mode.Load() != nil
		return true
	})
	return out
}
