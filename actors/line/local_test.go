package line

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeGrains struct {
	mu     sync.Mutex
	counts map[string]int
	asked  map[string]int
	mode   map[string]Mode
	fail   bool
}

func (f *fakeGrains) send(_ context.Context, line string, c Counts) (Mode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked[line]++
	if f.fail {
		return Mode{}, ErrUnavailable
	}
	f.counts[line] += c.New
	return f.mode[line], nil
}

func newLocal() (*Local, *fakeGrains, *time.Time) {
	g := &fakeGrains{counts: map[string]int{}, asked: map[string]int{}, mode: map[string]Mode{}}
	now := t0
	l := &Local{Send: g.send, Node: "n1", Clock: func() time.Time { return now }, MaxLines: 3}
	return l, g, &now
}

// New callers are counted per line and sent in one batch per line; the
// answers set the mode the call path reads.
func TestLocalBatchesAndCachesTheMode(t *testing.T) {
	l, g, now := newLocal()
	ctx := context.Background()
	for range 7 {
		l.Count("+78005551234", true)
	}
	l.Count("+78005551234", false)
	l.Count("+78005550000", false)
	g.mode["+78005551234"] = Mode{On: true, Since: t0, Exists: true, Revision: 0}
	l.FlushNow(ctx)
	if g.counts["+78005551234"] != 7 || g.asked["+78005551234"] != 1 || g.asked["+78005550000"] != 1 {
		t.Fatalf("counts %v asked %v", g.counts, g.asked)
	}
	if m := l.Mode("+78005551234"); m == nil || !m.Since.Equal(t0) {
		t.Fatalf("mode %+v, want under attack since t0", m)
	}
	if m := l.Mode("+78005550000"); m != nil {
		t.Fatalf("other line %+v, want nil", m)
	}
	// Nothing new: no request until Poll has passed.
	l.FlushNow(ctx)
	if g.asked["+78005551234"] != 1 {
		t.Fatalf("asked again without calls before Poll: %v", g.asked)
	}
	*now = now.Add(time.Second)
	g.mode["+78005551234"] = Mode{On: false, Exists: true, Revision: 1}
	l.FlushNow(ctx)
	if m := l.Mode("+78005551234"); m != nil {
		t.Fatalf("after the grain ended the mode: %+v", m)
	}
	// A late answer of an older revision does not bring the mode back.
	l.Set("+78005551234", Mode{On: true, Since: t0, Exists: true, Revision: 0})
	if m := l.Mode("+78005551234"); m != nil {
		t.Fatalf("stale answer applied: %+v", m)
	}
}

// A batch that was not delivered is counted with the next one.
func TestLocalKeepsUndeliveredCounts(t *testing.T) {
	l, g, _ := newLocal()
	g.fail = true
	for range 5 {
		l.Count("+78005551234", true)
	}
	l.FlushNow(context.Background())
	g.fail = false
	l.Count("+78005551234", true)
	l.FlushNow(context.Background())
	if g.counts["+78005551234"] != 6 {
		t.Fatalf("counted %d, want 6", g.counts["+78005551234"])
	}
}

// Made-up called numbers neither make entries nor count past the bound,
// and lines not called for Forget are dropped.
func TestLocalBoundsItsLines(t *testing.T) {
	l, g, now := newLocal()
	l.Count("sip-user", true)
	l.Count("8005551234", true)
	for _, s := range []string{"+70000000001", "+70000000002", "+70000000003", "+70000000004"} {
		l.Count(s, true)
	}
	l.FlushNow(context.Background())
	if len(g.asked) != 3 {
		t.Fatalf("asked about %v, want the first 3 valid lines only", g.asked)
	}
	*now = now.Add(11 * time.Minute)
	l.FlushNow(context.Background())
	if n := l.n.Load(); n != 0 {
		t.Fatalf("%d lines kept after Forget", n)
	}
	l.Count("+70000000004", true)
	if l.n.Load() != 1 {
		t.Fatal("a new line not tracked once room was made")
	}
}

// KickAfter new callers to one line send its batch at once, without
// waiting for the next Flush.
func TestLocalKicksAFlushOnABurst(t *testing.T) {
	l, g, _ := newLocal()
	l.Flush = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	for range KickAfter {
		l.Count("+78005551234", true)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := g.counts["+78005551234"]
		g.mu.Unlock()
		if n == KickAfter {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d new callers and no tick: %d sent", KickAfter, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}
