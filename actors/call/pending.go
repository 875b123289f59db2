package call

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/callguard/callguard/actors/call/spool"
)

// pending is the node's spool of call stream batches the store refused,
// and the streams whose writers are still retrying them, so that a drain
// leaves those to their writers.
type pending struct {
	spool *spool.Spool
	mu    sync.Mutex
	held  map[string]struct{}
}

func newPending(s *spool.Spool) *pending {
	if s == nil {
		return nil
	}
	return &pending{spool: s, held: map[string]struct{}{}}
}

func (p *pending) hold(stream string) {
	p.mu.Lock()
	p.held[stream] = struct{}{}
	p.mu.Unlock()
}

// tryHold holds stream unless a writer holds it already.
func (p *pending) tryHold(stream string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.held[stream]; ok {
		return false
	}
	p.held[stream] = struct{}{}
	return true
}

func (p *pending) release(stream string) {
	p.mu.Lock()
	delete(p.held, stream)
	p.mu.Unlock()
}

// drainWorkers is how many spooled batches a drain appends at once: enough
// for the store to commit them in groups, few enough not to crowd out the
// calls being decided meanwhile.
const drainWorkers = 8

// RecordPending appends what the pending spool holds: the call streams
// this node could not write while the store was down, kept across a
// restart. The first pass runs at once and logs how many calls it
// recorded; then a pass runs every interval (none when interval <= 0), for
// batches whose writers gave up retrying while the node ran. Each batch is
// retried while the store fails, until ctx ends; its derived event IDs
// make a batch that was written before its entry was deleted write
// nothing twice. RecordPending returns when ctx ends, or after the first
// pass when interval <= 0, with the number of batches recorded. Without a
// spool (Deps.Spool nil) it returns at once.
func (sp *Spawner) RecordPending(ctx context.Context, interval time.Duration) int {
	p := sp.d.pending
	if p == nil {
		return 0
	}
	log := sp.d.Logger
	total := 0
	for first := true; ; first = false {
		start := sp.d.Clock()
		n, remaining := sp.drain(ctx, p)
		total += n
		switch {
		case first && (n > 0 || remaining > 0):
			log.Info("recorded pending calls after restart", "recorded", n, "stillPending", remaining, "took", sp.d.Clock().Sub(start).Round(time.Millisecond))
		case n > 0:
			log.Info("recorded pending calls", "recorded", n, "stillPending", remaining)
		}
		if interval <= 0 {
			return total
		}
		select {
		case <-ctx.Done():
			return total
		case <-time.After(interval):
		}
	}
}

// drain appends every batch in the spool that no writer holds, and returns
// how many it recorded and how many are left in the spool.
func (sp *Spawner) drain(ctx context.Context, p *pending) (recorded, remaining int) {
	batches, err := p.spool.List()
	if err != nil {
		sp.d.Logger.Error("pending spool: entries not readable, left in place", "err", err)
	}
	// A pause the node's stop cuts short: in slices, so that the injected
	// Sleep still paces the retries.
	sleep := func(d time.Duration) {
		for d > 0 && ctx.Err() == nil {
			step := min(d, 100*time.Millisecond)
			sp.d.Sleep(step)
			d -= step
		}
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan spool.Batch)
	)
	for range min(drainWorkers, len(batches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				w := newStreamWriter(sp.d.Store, p, b.Stream, b.Events[0].Meta, math.MaxInt64, sp.d.Logger, sp.d.Counters, sp.d.Clock, sleep)
				w.rev, w.exists, w.spooled = b.Revision, b.Exists, true
				res := w.appendBatch(ctx, b.Events)
				mu.Lock()
				switch res {
				case appended:
					recorded++
					sp.d.Counters.PendingRecorded.Add(1)
				case left:
					remaining++
				}
				mu.Unlock()
			}
		}()
	}
	for _, b := range batches {
		if len(b.Events) == 0 {
			_ = p.spool.Delete(b.Stream)
			continue
		}
		if ctx.Err() != nil || !p.tryHold(b.Stream) {
			continue // a live writer has it, or the node is stopping
		}
		work <- b
	}
	close(work)
	wg.Wait()
	return recorded, p.spool.Len()
}
