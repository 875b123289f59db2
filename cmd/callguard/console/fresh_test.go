package console

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/runner"
)

// laggingRead is a read side whose whitelist projection applies a write
// only when a reader waits for it (Await), as a projection a moment
// behind the log does; stuck makes it never catch up.
type laggingRead struct {
	fakeLists
	mu      sync.Mutex
	pending []string // written to the log, not yet applied
	applied []string
	stuck   bool
	awaited []string
	// lag is the list projection's LagSeconds in Status (default 7.2).
	lag *float64
}

func (l *laggingRead) write(number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, number)
}

func (l *laggingRead) Whitelist(_ context.Context, _ lists.Query) (lists.Page[lists.WhitelistEntry], error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var p lists.Page[lists.WhitelistEntry]
	for _, n := range l.applied {
		p.Items = append(p.Items, lists.WhitelistEntry{Number: n, By: "anna"})
	}
	p.Total = len(p.Items)
	return p, nil
}

func (l *laggingRead) Status(context.Context) ([]runner.Status, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lag := 7.2
	if l.lag != nil {
		lag = *l.lag
	}
	return []runner.Status{{Name: lists.Name, State: runner.Running, LagEvents: 4, LagSeconds: lag}, {Name: "reports", LagSeconds: 99}}, nil
}

func (l *laggingRead) Rebuild(context.Context, ...string) error { return nil }

func (l *laggingRead) Await(ctx context.Context, names ...string) (runner.Freshness, error) {
	l.mu.Lock()
	l.awaited = append(l.awaited, names...)
	stuck := l.stuck
	if !stuck {
		l.applied, l.pending = append(l.applied, l.pending...), nil
	}
	l.mu.Unlock()
	if stuck {
		<-ctx.Done()
		return runner.Freshness{Status: runner.ReadLagging, Reason: "lists had not caught up with the log in time"}, nil
	}
	return runner.Freshness{Status: runner.ReadCurrent}, nil
}

func TestListPageReadsItsOwnWrites(t *testing.T) {
	read := &laggingRead{}
	r := newRigConfig(t, Config{ReadWait: 200 * time.Millisecond}, func(d *Deps) {
		fullDeps(d)
		d.Lists, d.Projections = read, read
	})
	r.users.set("anna", RoleOperator, false)
	b := r.browser()
	b.signIn("anna")

	// A whitelist just written (by this console, another node or the
	// API) is on the page that follows, with no note.
	read.write("+79160000001")
	p := b.get("/console/lists/whitelist")
	if !strings.Contains(p.body, "79160000001") {
		t.Fatalf("the whitelist page misses the entry written before it was asked for:\n%s", p.body)
	}
	if byID(parse(t, p.body), "lagging") != nil {
		t.Errorf("a current read is marked lagging")
	}
	if read.mu.Lock(); !slices.Contains(read.awaited, lists.Name) {
		t.Errorf("the page awaited %v, want %q", read.awaited, lists.Name)
	}
	read.mu.Unlock()

	// A projection that does not catch up in time: the page comes after
	// ReadWait, with what it has and how far behind that is.
	read.mu.Lock()
	read.stuck = true
	read.mu.Unlock()
	read.write("+79160000002")
	start := time.Now()
	p = b.get("/console/lists/whitelist?" + url.Values{"prefix": {"+7916"}}.Encode())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a lagging page took %s; ReadWait is 200ms", took)
	}
	note := byID(parse(t, p.body), "lagging")
	if note == nil {
		t.Fatalf("no lagging note on a page read from a projection that had not caught up:\n%s", p.body)
	}
	if got := text(note); !strings.Contains(got, "lagging: 8 s behind") {
		t.Errorf("note %q, want the list projection's lag (7.2 s, rounded up)", got)
	}
	if strings.Contains(p.body, "79160000002") {
		t.Errorf("the stuck projection's entry shows")
	}

	// The wait ran out but the status, read a moment later, finds it
	// caught up: still behind, by at least a second.
	read.mu.Lock()
	zero := 0.0
	read.lag = &zero
	read.mu.Unlock()
	p = b.get("/console/lists/whitelist")
	if note := byID(parse(t, p.body), "lagging"); note == nil || !strings.Contains(text(note), "lagging: 1 s behind") {
		t.Errorf("lagging with a zero lag in the status: note %v, want 1 s", note)
	}
	read.mu.Lock()
	read.lag = nil
	read.mu.Unlock()

	// In Russian, the note is too.
	b.lang = "ru"
	p = b.get("/console/lists/whitelist")
	if note := byID(parse(t, p.body), "lagging"); note == nil || !strings.Contains(text(note), "отстаёт на 8 с") {
		t.Errorf("Russian note: %v", note)
	}
}

// Every page that reads a projection waits for it: the search (profiles),
// Today and the reports (reports), the lists (lists).
func TestPagesAwaitTheirProjections(t *testing.T) {
	for _, tc := range []struct{ path, name string }{
		{"/console/", "reports"},
		{"/console/reports", "reports"},
		{"/console/numbers?q=%2B7916", "profiles"},
		{"/console/lists/blacklist", lists.Name},
		{"/console/lists/whitelist", lists.Name},
	} {
		t.Run(tc.path, func(t *testing.T) {
			read := &laggingRead{}
			r := newRig(t, func(d *Deps) { fullDeps(d); d.Projections = read })
			r.users.set("vera", RoleViewer, false)
			b := r.browser()
			b.signIn("vera")
			if p := b.get(tc.path); p.status != 200 {
				t.Fatalf("GET %s: %d", tc.path, p.status)
			}
			read.mu.Lock()
			defer read.mu.Unlock()
			if !slices.Contains(read.awaited, tc.name) {
				t.Errorf("GET %s awaited %v, want %q", tc.path, read.awaited, tc.name)
			}
		})
	}
}
