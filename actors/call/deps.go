package call

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/callguard/callguard/actors/call/spool"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/crm"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/schema"
)

// Callers reaches the caller grains. *caller.Client satisfies it.
type Callers interface {
	Admit(ctx context.Context, key string, req caller.Admit) (caller.Verdict, error)
	Outcome(ctx context.Context, key string, req caller.Outcome) (caller.Applied, error)
}

// Lines is the node's view of the called lines' under-attack mode
// (*line.Local satisfies it): read on every call, from memory.
type Lines interface {
	// Mode is the line's mode, nil when it is not under attack.
	Mode(line string) *schema.LineAttack
	// Count records a decided call to the line, and whether its caller
	// was new (caller.Verdict.New).
	Count(line string, isNew bool)
}

// CRM asks the bank's CRM about a caller within its own time budget and
// never fails (*crm.Client satisfies it).
type CRM interface {
	Lookup(ctx context.Context, number string) crm.Answer
}

// CustomerShower is implemented by Effects that show the PBX who calls
// (sip/guard: a header on the INVITE it sends). The actor calls it before
// Pass or Bridge when the CRM knew the caller.
type CustomerShower interface {
	ShowCustomer(c crm.Customer)
}

// Config is how calls are handled. Each env tag names the field's
// environment variable under the binary's GUARD_ prefix (GUARD_MODE, ...);
// cmd reads them.
type Config struct {
	// Mode: schema.Enforce carries verdicts out, schema.Observe passes
	// every call and records what enforcing would have done.
	Mode schema.Mode `env:"MODE" envDefault:"enforce" desc:"enforce, or observe: decide and record every call but pass all of them (run a week in observe mode before enforcing)"`
	// Grace is the carrier's unbilled interval after answer. A challenged
	// caller has Grace minus one second from the 200 OK to type the code;
	// the guard hangs up at that deadline. At least 1.1 s. Set it to the
	// carrier's figure.
	Grace time.Duration `env:"GRACE" envDefault:"3s" desc:"the carrier's unbilled interval after answer; a challenged caller gets GRACE minus 1s to type the code (at least 1.1s)"`
	// CodeDigits is the length of the challenge code (1..MaxCodeDigits).
	CodeDigits int `env:"CODE_DIGITS" envDefault:"2" desc:"digits in the challenge code (1-8)"`
	// StoreDown is what happens to a call when the grain cannot decide
	// (caller.ErrStore, caller.ErrUnavailable): schema.Pass (fail open,
	// the default: never lose a real customer's call) or schema.Reject
	// (fail closed). The decision is recorded in the call's stream once
	// the store is back.
	StoreDown schema.Verdict `env:"STORE_DOWN" envDefault:"pass" desc:"when no verdict can be recorded (store down): pass the call (fail open) or reject it with 503 (fail closed)"`
	// DecideTimeout bounds the grain's decision; past it the store-down
	// policy applies. Zero means 2 s.
	DecideTimeout time.Duration `env:"DECIDE_TIMEOUT" envDefault:"2s" desc:"time limit for the caller grain's verdict; past it GUARD_STORE_DOWN applies"`
	// OutcomeRetryFor bounds how long an outcome report is retried while
	// the grain or the store is down.
	OutcomeRetryFor time.Duration
	// StreamRetryFor bounds how long the call stream's appends are
	// retried in memory while the store is down; events still unwritten
	// after it are left in the pending spool (Deps.Spool), or dropped and
	// counted without one.
	StreamRetryFor time.Duration
}

// deadlineMargin is what the guard keeps between its hang-up and the end
// of the carrier's grace interval: the seed's "one second less".
const deadlineMargin = time.Second

// Window is how long a challenged caller has to type the code after the
// 200 OK: Grace minus one second.
func (c Config) Window() time.Duration { return c.Grace - deadlineMargin }

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != schema.Enforce && c.Mode != schema.Observe {
		errs = append(errs, &SettingError{Field: "Mode", Value: fmt.Sprintf("%q", c.Mode), Want: "enforce or observe"})
	}
	if least := deadlineMargin + 100*time.Millisecond; c.Grace < least {
		errs = append(errs, &SettingError{Field: "Grace", Value: c.Grace.String(), Want: fmt.Sprintf("at least %v, or the caller has no time to type", least)})
	}
	if c.CodeDigits < 1 || c.CodeDigits > MaxCodeDigits {
		errs = append(errs, &SettingError{Field: "CodeDigits", Value: fmt.Sprint(c.CodeDigits), Want: fmt.Sprintf("1..%d", MaxCodeDigits)})
	}
	if c.StoreDown != schema.Pass && c.StoreDown != schema.Reject {
		errs = append(errs, &SettingError{Field: "StoreDown", Value: fmt.Sprintf("%q", c.StoreDown), Want: "pass or reject"})
	}
	return errors.Join(errs...)
}

// SettingError is one setting of Config that Validate refuses. Field is the
// Config field's name, so that the caller can speak of it in its own terms
// (cmd names the environment variable).
type SettingError struct {
	Field string
	Value string // as the message shows it
	Want  string
}

func (e *SettingError) Error() string { return e.Message(kebab) }

// kebab spells a field name as the settings are written: CodeDigits is
// code-digits.
func kebab(field string) string {
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Message is the error with the field named by name.
func (e *SettingError) Message(name func(field string) string) string {
	return fmt.Sprintf("%s is %s, want %s", name(e.Field), e.Value, e.Want)
}

func (c *Config) defaults() {
	if c.DecideTimeout <= 0 {
		c.DecideTimeout = 2 * time.Second
	}
	if c.OutcomeRetryFor <= 0 {
		c.OutcomeRetryFor = time.Minute
	}
	if c.StreamRetryFor <= 0 {
		c.StreamRetryFor = 10 * time.Minute
	}
}

// Observer is told what the node's calls do, for metrics. Its methods
// must not block.
type Observer interface {
	// Decided: the grain decided a call with v and the guard carries out
	// action (v when enforcing, pass in observe mode); took is how long
	// the call waited for the verdict. A challenge passed because it
	// could not be carried out (CallDecided.ActionReason) is told as v =
	// action = pass: it was not passed by observe mode.
	Decided(v, action schema.Verdict, took time.Duration)
	// Undecided: the grain could not decide; the store-down policy applies.
	Undecided(took time.Duration)
	// Busy: the node was too busy to decide; the call gets an overload
	// answer.
	Busy(took time.Duration)
	// ChallengeStarted and ChallengeEnded bracket a challenge in progress.
	ChallengeStarted()
	ChallengeEnded()
}

type noObserver struct{}

func (noObserver) Decided(_, _ schema.Verdict, _ time.Duration) {}
func (noObserver) Undecided(time.Duration)                      {}
func (noObserver) Busy(time.Duration)                           {}
func (noObserver) ChallengeStarted()                            {}
func (noObserver) ChallengeEnded()                              {}

// Deps is what every call actor of a node shares.
type Deps struct {
	Callers Callers
	// Lines gives each call its line's mode and counts new callers; nil:
	// no under-attack mode.
	Lines Lines
	// CRM looks the caller up before the decision; nil: no CRM.
	CRM   CRM
	Store events.Store
	// Clock stamps events, measures durations and bounds retries; time.Now
	// in production. It is called from several goroutines.
	Clock func() time.Time
	// Sleep pauses a retry (an outcome report, a call stream append);
	// time.Sleep by default. A fake Clock should advance in it, or retries
	// bounded by the clock never give up.
	Sleep func(d time.Duration)
	// AfterFunc arms the challenge timer; time.AfterFunc by default. It
	// returns a function that stops the timer.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Rand is the code's random source: crypto/rand.Reader in production.
	Rand io.Reader
	// Node names this node in event metadata.
	Node   string
	Logger *slog.Logger
	// Counters are shared by the node's calls (for metrics); nil allocates
	// private ones.
	Counters *Counters
	// Tracker counts actors, outcome reports and stream writers still at
	// work, so that a node can drain them on shutdown; nil allocates one.
	Tracker *Tracker
	// Observer receives decision latencies and challenge counts; nil is
	// fine.
	Observer Observer
	// CallLog writes one line per call at its end (calllog.go); nil
	// writes none.
	CallLog *CallLog
	// Spool keeps on disk the call streams the store refused while it
	// was down, across a restart (see streamWriter and
	// Spawner.RecordPending); nil keeps them in memory only. The caller
	// opens and closes it.
	Spool *spool.Spool

	pending *pending // Spool and the streams its writers hold
}

func (d *Deps) validate() error {
	switch {
	case d.Callers == nil:
		return errors.New("call: no Callers")
	case d.Store == nil:
		return errors.New("call: no Store")
	case d.Rand == nil:
		return errors.New("call: no random source")
	}
	return nil
}

func (d *Deps) defaults() {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Sleep == nil {
		d.Sleep = time.Sleep
	}
	if d.AfterFunc == nil {
		d.AfterFunc = func(dur time.Duration, f func()) func() bool { return time.AfterFunc(dur, f).Stop }
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Counters == nil {
		d.Counters = &Counters{}
	}
	if d.Tracker == nil {
		d.Tracker = &Tracker{}
	}
	if d.Observer == nil {
		d.Observer = noObserver{}
	}
	if d.pending == nil {
		d.pending = newPending(d.Spool)
	}
}

// Counters count what calls did, for metrics. All fields are safe for
// concurrent use.
type Counters struct {
	Started                                      atomic.Uint64
	Passed, Challenged, Rejected                 atomic.Uint64 // by action taken
	Observed                                     atomic.Uint64 // calls passed only because of observe mode
	ChallengeFallbacks                           atomic.Uint64 // challenges passed because they could not be carried out (late offer)
	StoreDown                                    atomic.Uint64 // calls decided by the store-down policy
	ChallengesPassed, ChallengesFailed           atomic.Uint64
	ChallengesAbandoned                          atomic.Uint64
	Answered, Billed, Unbilled                   atomic.Uint64 // ended calls
	EventsWritten, EventsDropped, OutcomesFailed atomic.Uint64
	// SpoolFailed counts call stream batches the pending spool could not
	// take (retried in memory only); PendingRecorded those appended from
	// the spool by Spawner.RecordPending.
	SpoolFailed, PendingRecorded atomic.Uint64
	Active                       atomic.Int64 // call actors running
}

// Tracker counts work in flight (actors, outcome reports, stream writers).
type Tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; replaced when n leaves 0
}

func (t *Tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *Tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// Busy returns the work in flight.
func (t *Tracker) Busy() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Wait returns when no work is in flight, or with ctx's error.
func (t *Tracker) Wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		if t.n == 0 {
			t.mu.Unlock()
			return nil
		}
		idle := t.idle
		t.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("call: %d still at work: %w", t.Busy(), ctx.Err())
		}
	}
}
