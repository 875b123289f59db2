package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/replay"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Acks are the admin commands a node acknowledged.
type Acks struct {
	mu   sync.Mutex
	list []adminapi.CommandResult
}

func (a *Acks) add(r adminapi.CommandResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.list = append(a.list, r)
}

func (a *Acks) all() []adminapi.CommandResult {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.list)
}

// policyConfig is the policy every node runs (GUARD_LIMIT_LEVEL=7, the
// rest default), for the replay check.
func policyConfig() policy.Config {
	cfg := policy.DefaultConfig()
	cfg.LimitLevel = 7
	cfg.EscalationLevel = 8
	return cfg
}

// record is what the log says of one SIP call.
type record struct {
	received  []schema.CallReceived // in caller streams, by SIP Call-ID
	decided   *schema.CallDecided   // in its call stream
	storeDown bool
}

func (r *record) receivedOrNil() []schema.CallReceived {
	if r == nil {
		return nil
	}
	return r.received
}

func (r *record) decidedOrNil() *schema.CallDecided {
	if r == nil {
		return nil
	}
	return r.decided
}

// LogFigures is what the log check found.
type LogFigures struct {
	Events, CallerStreams, CallStreams int
	CallReceived                       int
	// ByGrain are the answered calls a caller grain decided (CallReceived);
	// ByPolicy those decided by the store-down policy (grain or store
	// unreachable), recorded in their call stream.
	ByGrain, ByPolicy int
	// Busy are the answered calls told 503 because their grain did not
	// answer in time while others did; BusyCounted those of them (or of
	// ByPolicy) whose grain recorded a verdict all the same.
	Busy, BusyCounted int
	// PolicyCounted are the ByPolicy calls whose grain's verdict was
	// committed all the same.
	PolicyCounted int
	// LostRecorded counts calls without an answer that the log holds all
	// the same (decided, then their node died before answering).
	LostRecorded int
	// Writers is the number of caller streams written by more than one
	// node (the grain moved).
	MovedStreams int
	// Interleaved counts the caller streams where two activations wrote
	// turn about.
	Interleaved int
	Acks        int
}

func (f LogFigures) String() string {
	return fmt.Sprintf("%d events, %d caller streams (%d written from more than one node, %d by two activations turn about), %d call streams; %d CallReceived; answered calls decided by a grain %d, by the store-down policy %d (%d of these also recorded by a grain whose answer came too late), told busy (503) %d (%d also recorded by a late grain); lost calls recorded anyway %d; %d acknowledged admin commands checked",
		f.Events, f.CallerStreams, f.MovedStreams, f.Interleaved, f.CallStreams, f.CallReceived, f.ByGrain, f.ByPolicy, f.PolicyCounted, f.Busy, f.BusyCounted, f.LostRecorded, f.Acks)
}

// checkLog reads the whole shared log and checks it against the calls and
// the acknowledged commands, polling for up to 45 s while calls passed
// under the store-down policy are still being recorded. lostOK says which
// unanswered calls the scenario allows (nil: none).
func (c *Cluster) checkLog(ctx context.Context, calls []Call, acks *Acks, lostOK func(Call) bool) LogFigures {
	c.t.Helper()
	var figs LogFigures
	var problems []string
	err := waitFor(ctx, 45*time.Second, func() error {
		var err error
		figs, problems, err = c.checkOnce(ctx, calls, acks, lostOK, false)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return errors.New(problems[0])
		}
		return nil
	})
	if err != nil {
		// The last pass, reported in full.
		figs, problems, _ = c.checkOnce(ctx, calls, acks, lostOK, true)
		for i, p := range problems {
			if i == 30 {
				c.t.Errorf("... and %d more problems", len(problems)-30)
				break
			}
			c.t.Error(p)
		}
		if len(problems) == 0 {
			c.t.Errorf("log check: %v", err)
		}
	}
	c.t.Logf("log: %s", figs)
	return figs
}

func (c *Cluster) checkOnce(ctx context.Context, calls []Call, acks *Acks, lostOK func(Call) bool, final bool) (LogFigures, []string, error) {
	store, err := c.openStore(ctx)
	if err != nil {
		return LogFigures{}, nil, err
	}
	defer store.Close()
	var all []events.Event
	for from := events.Start; ; {
		batch, err := store.ReadAll(ctx, from, 4096)
		if err != nil {
			return LogFigures{}, nil, fmt.Errorf("read the log: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		all = append(all, batch...)
		from = batch[len(batch)-1].Position
	}
	var figs LogFigures
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	figs.Events = len(all)

	// Every stream linear: revisions 0, 1, 2... in log order, each event
	// ID once.
	next := map[string]uint64{}
	ids := map[[16]byte]bool{}
	streams := map[string][]events.Event{}
	for i, ev := range all {
		if i > 0 && !all[i-1].Position.Less(ev.Position) {
			bad("log: position %v after %v", ev.Position, all[i-1].Position)
		}
		if ids[ev.ID] {
			bad("log: event %s twice", ev.ID)
		}
		ids[ev.ID] = true
		if ev.Revision != next[ev.Stream] {
			bad("stream %s: revision %d where %d was next", ev.Stream, ev.Revision, next[ev.Stream])
		}
		next[ev.Stream] = ev.Revision + 1
		streams[ev.Stream] = append(streams[ev.Stream], ev)
	}

	bySIP := map[string]*record{}
	rec := func(id string) *record {
		r := bySIP[id]
		if r == nil {
			r = &record{}
			bySIP[id] = r
		}
		return r
	}
	for name, evs := range streams {
		if key, ok := schema.CallerKey(name); ok {
			figs.CallerStreams++
			problems = append(problems, checkCallerStream(key, evs, rec, &figs)...)
			continue
		}
		if strings.HasPrefix(name, schema.CallStreamPrefix) {
			figs.CallStreams++
			var sipID string
			for _, ev := range evs {
				switch ev.Type {
				case schema.TypeCallStarted:
					var p schema.CallStarted
					if err := json.Unmarshal(ev.Data, &p); err != nil {
						bad("%s: %s: %v", name, ev.Type, err)
					}
					sipID = p.SIPCallID
				case schema.TypeCallDecided:
					var p schema.CallDecided
					if err := json.Unmarshal(ev.Data, &p); err != nil {
						bad("%s: %s: %v", name, ev.Type, err)
					}
					if sipID != "" {
						r := rec(sipID)
						if r.decided != nil {
							bad("call %s: decided in two call streams", sipID)
						}
						r.decided, r.storeDown = &p, p.StoreDown
					}
				}
			}
		}
	}

	// Acknowledged admin commands are in their streams.
	for _, a := range acks.all() {
		figs.Acks++
		id := schema.CommandEventID(a.Number, a.CommandID)
		if !slices.ContainsFunc(streams[schema.CallerStream(a.Number)], func(ev events.Event) bool { return ev.ID == id }) {
			bad("admin command %s on %s acknowledged (revision %d) but not in the log", a.CommandID, a.Number, a.Revision)
		}
	}

	// Calls: each answered call recorded once, with the verdict its SIP
	// status says; unanswered ones only where the scenario allows.
	for _, call := range calls {
		r := bySIP[call.CallID]
		if r != nil && len(r.received) > 1 {
			bad("call %s (%s, node%d): %d CallReceived", call.CallID, call.Caller, call.Node+1, len(r.received))
		}
		excused := lostOK != nil && lostOK(call)
		if !call.Answered() || excused {
			// A call the scenario may lose: only that it is recorded at
			// most once is checked (its node may have answered it on the
			// way down, e.g. 503 at shutdown after a pass was decided).
			if !call.Answered() && r != nil && (len(r.received) > 0 || r.decided != nil) {
				figs.LostRecorded++
			}
			if !excused {
				bad("call %s (%s %s) to node%d sent at %s got status %d, not a verdict", call.CallID, call.Kind, call.Caller, call.Node+1, call.Sent.Format("15:04:05.000"), call.Status)
			}
			continue
		}
		switch {
		case r != nil && r.decided != nil && r.decided.Busy:
			// 503 with Retry-After: the grain did not answer in time
			// while others did (actors/caller.Client.classify), as when
			// its node just died. A grain that decided all the same
			// (its answer lost with its node) has its CallReceived.
			figs.Busy++
			if len(r.received) > 0 {
				figs.BusyCounted++
			}
			if call.Status != 503 {
				bad("call %s (%s %s): answered %d, recorded busy (503)", call.CallID, call.Kind, call.Caller, call.Status)
			}
		case r != nil && r.storeDown:
			// The policy's decision is what the caller got; a grain's
			// verdict committed all the same (the append whose answer
			// was lost as the store went away) is counted, not acted on.
			figs.ByPolicy++
			if len(r.received) > 0 {
				figs.PolicyCounted++
			}
			if want := map[schema.Verdict]int{schema.Pass: 200, schema.Reject: 503}[r.decided.Action]; call.Status != want {
				bad("call %s (%s %s): answered %d under the store-down policy %s", call.CallID, call.Kind, call.Caller, call.Status, r.decided.Action)
			}
		case r != nil && len(r.received) == 1 && call.Decided():
			figs.ByGrain++
			want := map[schema.Verdict]int{schema.Pass: 200, schema.Reject: 603}[r.received[0].Action]
			if call.Status != want {
				bad("call %s (%s %s): answered %d, recorded %s", call.CallID, call.Kind, call.Caller, call.Status, r.received[0].Action)
			}
			switch v := r.received[0].Verdict; {
			case call.Kind == Whitelisted && v != schema.Pass, call.Kind == Blocked && v != schema.Reject, call.Kind == Fresh && v != schema.Pass:
				bad("call %s (%s %s): verdict %s", call.CallID, call.Kind, call.Caller, v)
			}
		default:
			bad("call %s (%s %s) to node%d answered %d but not recorded as such (%d CallReceived, call stream %+v)", call.CallID, call.Kind, call.Caller, call.Node+1, call.Status, len(r.receivedOrNil()), r.decidedOrNil())
		}
	}

	// Verdicts the policy gives when each stream is replayed.
	if final || len(problems) == 0 {
		rep, err := replay.Run(ctx, store, policyConfig())
		if err != nil {
			return figs, problems, fmt.Errorf("replay: %w", err)
		}
		if rep.CallsChanged != 0 || rep.NumbersChanged != 0 {
			b, _ := json.Marshal(rep.Numbers)
			bad("replay under the nodes' policy: %d calls and %d numbers would differ: %s", rep.CallsChanged, rep.NumbersChanged, b)
		}
	}
	return figs, problems, nil
}

// checkCallerStream checks one caller stream: one writer at a time (no
// node writes again after another took over while that other still
// writes: ping-pong), hour and day counts consecutive, each call once.
func checkCallerStream(key string, evs []events.Event, rec func(string) *record, figs *LogFigures) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var writers []string // runs of writers, in order
	var runs []string    // the same, with their revisions and first commit time
	for _, ev := range evs {
		if len(writers) == 0 || writers[len(writers)-1] != ev.Meta.Node {
			writers = append(writers, ev.Meta.Node)
			runs = append(runs, fmt.Sprintf("%s r%d@%s", ev.Meta.Node, ev.Revision, ev.Recorded.Format("15:04:05.000")))
		}
	}
	if len(writers) > 1 {
		figs.MovedStreams++
	}
	// A B ... A ... B: two activations writing turn about.
	for i := 0; i+1 < len(writers); i++ {
		for j := i + 2; j < len(writers); j++ {
			if writers[j] != writers[i] {
				continue
			}
			if slices.Contains(writers[j+1:], writers[i+1]) {
				bad("caller %s: writers interleave (two live activations): %s", key, strings.Join(runs, " → "))
				figs.Interleaved++
				goto counts
			}
		}
	}
counts:
	seen := map[string]bool{}
	n := 0
	for _, ev := range evs {
		if ev.Type != schema.TypeCallReceived {
			continue
		}
		var p schema.CallReceived
		if err := json.Unmarshal(ev.Data, &p); err != nil {
			bad("caller %s revision %d: %v", key, ev.Revision, err)
			continue
		}
		figs.CallReceived++
		if seen[p.CallID] {
			bad("caller %s: call %s received twice", key, p.CallID)
		}
		seen[p.CallID] = true
		n++
		// Every scenario runs within the hour on a fresh store, so the
		// n-th call of a caller is its n-th of the hour and of the day.
		if p.Hour != n || p.Day != n {
			bad("caller %s revision %d (%s): hour=%d day=%d, want %d: counts not consecutive", key, ev.Revision, ev.Meta.Node, p.Hour, p.Day, n)
		}
		if p.SIPCallID != "" {
			r := rec(p.SIPCallID)
			r.received = append(r.received, p)
		}
	}
	return problems
}
