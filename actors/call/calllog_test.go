package call

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// endedCall runs a call's facts through the machine and the shell's
// tally, as the actor does, and returns the actor at its end: ready for
// logCall, with the detail its finish carries.
func endedCall(t testing.TB, cfg Config, cl *CallLog, clock func() time.Time, facts ...timedFact) (*callActor, string) {
	t.Helper()
	a := &callActor{d: &Deps{Logger: slog.New(slog.DiscardHandler), CallLog: cl, Clock: clock}, log: slog.New(slog.DiscardHandler), cfg: cfg}
	a.d.defaults()
	a.took = 1200 * time.Microsecond
	a.setup = Setup{ID: "c1", SIPCallID: "a84b4c76e66710@carrier", Caller: phone.Number{Key: "+79990001122", Kind: phone.KindE164},
		Presented: "<sip:+79990001122@carrier>", Callee: "+78005553535", Received: epoch}
	a.m = newMachine(cfg, a.setup)
	outs := a.m.start()
	for _, f := range facts {
		outs = append(outs, a.m.step(f.f, f.at)...)
	}
	detail := ""
	for _, o := range outs {
		a.tally(o)
		if f, ok := o.(finish); ok {
			detail = f.detail
		}
	}
	if !a.m.isOver() {
		t.Fatal("the call did not end")
	}
	return a, detail
}

func textLog(b *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
}

// TestCallLogLines: one line per call at info, saying who called whom,
// the verdict and what was done with it, how the call ended (the PBX's 486
// included), its durations and whether it is billed; never the code.
func TestCallLogLines(t *testing.T) {
	at := func(s float64) time.Time { return epoch.Add(time.Duration(s * float64(time.Second))) }
	pass := admitted{v: caller.Verdict{Verdict: schema.Pass}}
	challenge := admitted{v: caller.Verdict{Verdict: schema.Challenge, Level: 3, Rule: schema.RuleHourlyLimit}, code: "47"}
	observe := func(c *Config) { c.Mode = schema.Observe }
	cases := []struct {
		name  string
		cfg   func(*Config)
		facts []timedFact
		want  string
	}{{
		name: "the PBX busy",
		facts: []timedFact{
			{pass, at(0.001)},
			{Ended{At: at(0.5), By: schema.PartyPBX, Cause: schema.EndPBXRefused, Status: 486, Detail: "Busy Here"}, at(0.5)},
		},
		want: `level=INFO msg=call call=c1 sipCallId=a84b4c76e66710@carrier caller=+79990001122 callee=+78005553535 verdict=pass blockLevel=0 action=pass end=pbx-refused by=pbx status=486 decideMs=1.2 callMs=500 billed=false detail="Busy Here"`,
	}, {
		name: "a challenge passed, talked, billed",
		facts: []timedFact{
			{challenge, at(0.001)}, {EarlyMedia{At: at(0.1)}, at(0.1)}, {Answered{At: at(2), By: schema.PartyGuard}, at(2)},
			{Digit{Key: '4', At: at(2.5)}, at(2.5)}, {Digit{Key: '7', At: at(2.6)}, at(2.6)},
			{Ended{At: at(62), By: schema.PartyCaller, Cause: schema.EndCallerHangup}, at(62)},
		},
		want: `level=INFO msg=call call=c1 sipCallId=a84b4c76e66710@carrier caller=+79990001122 callee=+78005553535 verdict=challenge blockLevel=3 rule=hourly-limit action=challenge challenge=passed end=caller-hangup by=caller decideMs=1.2 callMs=62000 talkMs=60000 billed=true`,
	}, {
		name: "observe mode passes a reject",
		cfg:  observe,
		facts: []timedFact{
			{admitted{v: caller.Verdict{Verdict: schema.Reject, Level: 7, Rule: schema.RuleManual}}, at(0.001)},
			{Answered{At: at(1), By: schema.PartyPBX}, at(1)},
			{Ended{At: at(2), By: schema.PartyCaller, Cause: schema.EndCallerHangup}, at(2)},
		},
		want: `level=INFO msg=call call=c1 sipCallId=a84b4c76e66710@carrier caller=+79990001122 callee=+78005553535 verdict=reject blockLevel=7 rule=manual action=pass mode=observe end=caller-hangup by=caller decideMs=1.2 callMs=2000 talkMs=1000 billed=false`,
	}, {
		name: "store down, fail closed",
		cfg:  func(c *Config) { c.StoreDown = schema.Reject },
		facts: []timedFact{
			{admitted{err: caller.ErrStore}, at(2)},
			{Ended{At: at(2), By: schema.PartyGuard, Cause: schema.EndStoreDown, Status: 503}, at(2)},
		},
		want: `level=INFO msg=call call=c1 sipCallId=a84b4c76e66710@carrier caller=+79990001122 callee=+78005553535 verdict=none storeDown=true action=reject end=store-down by=guard status=503 decideMs=1.2 callMs=2000 billed=false`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := scriptConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			var b bytes.Buffer
			cl := NewCallLog(textLog(&b), 10, func() time.Time { return epoch })
			a, detail := endedCall(t, cfg, cl, func() time.Time { return epoch }, tc.facts...)
			a.logCall(detail)
			if got := strings.TrimSpace(b.String()); got != tc.want {
				t.Errorf("call log\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestCallLogRateLimit: under a flood of refused calls, at most a
// second's worth of lines pass, the rest are counted and reported in one
// line; passed calls keep their lines; the bucket refills with time.
func TestCallLogRateLimit(t *testing.T) {
	clock := &fakeClock{now: epoch}
	var b bytes.Buffer
	cl := NewCallLog(textLog(&b), 5, clock.Now)
	reject := []timedFact{
		{admitted{v: caller.Verdict{Verdict: schema.Reject, Level: 7, Rule: schema.RuleManual}}, epoch},
		{Ended{At: epoch, By: schema.PartyGuard, Cause: schema.EndRejected, Status: 603}, epoch},
	}
	pass := []timedFact{
		{admitted{v: caller.Verdict{Verdict: schema.Pass}}, epoch},
		{Ended{At: epoch, By: schema.PartyPBX, Cause: schema.EndPBXRefused, Status: 486}, epoch},
	}
	lines := func() (refused, passed int) {
		for _, l := range strings.Split(b.String(), "\n") {
			switch {
			case strings.Contains(l, "end=rejected"):
				refused++
			case strings.Contains(l, "end=pbx-refused"):
				passed++
			}
		}
		return refused, passed
	}
	for i := range 100 {
		a, d := endedCall(t, scriptConfig(), cl, clock.Now, reject...)
		a.logCall(d)
		if i%10 == 0 {
			a, d := endedCall(t, scriptConfig(), cl, clock.Now, pass...)
			a.logCall(d)
		}
	}
	if r, p := lines(); r != 5 || p != 10 || cl.Suppressed() != 95 {
		t.Fatalf("%d refused lines, %d passed, %d suppressed; want 5, 10 and 95:\n%s", r, p, cl.Suppressed(), b.String())
	}
	cl.ReportSuppressed(context.Background())
	if !strings.Contains(b.String(), `msg="call log: refused calls not logged (rate limit)" suppressed=95 perSecond=5`) || cl.Suppressed() != 0 {
		t.Fatalf("no report of the suppressed lines:\n%s", b.String())
	}
	n := b.Len()
	cl.ReportSuppressed(context.Background())
	if b.Len() != n {
		t.Fatalf("a report with nothing suppressed: %s", b.String()[n:])
	}
	// 400 ms later: two tokens.
	clock.Add(400 * time.Millisecond)
	for range 5 {
		a, d := endedCall(t, scriptConfig(), cl, clock.Now, reject...)
		a.logCall(d)
	}
	if r, _ := lines(); r != 7 || cl.Suppressed() != 3 {
		t.Fatalf("after 400 ms: %d refused lines, %d suppressed; want 7 and 3", r, cl.Suppressed())
	}
	// Run reports what is left when it stops.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cl.Run(ctx, time.Hour)
	if !strings.Contains(b.String(), "suppressed=3 ") {
		t.Fatalf("Run did not report at its end:\n%s", b.String())
	}
	// Off: no line, nothing counted.
	var off *CallLog
	a, d := endedCall(t, scriptConfig(), nil, clock.Now, reject...)
	a.logCall(d)
	off.ReportSuppressed(context.Background())
	if off.Suppressed() != 0 {
		t.Fatal("a nil call log counted")
	}
}

// TestCallLogSuppressedAllocatesNothing: a refused call whose line the
// rate limit drops costs no allocation (the reject path under a flood).
func TestCallLogSuppressedAllocatesNothing(t *testing.T) {
	cl := NewCallLog(slog.New(slog.NewJSONHandler(io.Discard, nil)), 1, func() time.Time { return epoch })
	a, d := endedCall(t, scriptConfig(), cl, func() time.Time { return epoch },
		timedFact{admitted{v: caller.Verdict{Verdict: schema.Reject, Level: 7}}, epoch},
		timedFact{Ended{At: epoch, By: schema.PartyGuard, Cause: schema.EndRejected, Status: 603}, epoch})
	a.logCall(d) // the one token
	if allocs := testing.AllocsPerRun(1000, func() { a.logCall(d) }); allocs != 0 {
		t.Errorf("a suppressed line allocates %v times", allocs)
	}
	if cl.Suppressed() < 1000 {
		t.Errorf("%d suppressed", cl.Suppressed())
	}
	// Below info level: nothing either.
	quietLog := NewCallLog(slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})), 1000, nil)
	a.d.CallLog = quietLog
	if allocs := testing.AllocsPerRun(1000, func() { a.logCall(d) }); allocs != 0 {
		t.Errorf("a call log below its level allocates %v times", allocs)
	}
}

// BenchmarkCallLog: a call's line written (JSON, discarded) and one the
// rate limit drops.
func BenchmarkCallLog(b *testing.B) {
	facts := []timedFact{
		{admitted{v: caller.Verdict{Verdict: schema.Reject, Level: 7, Rule: schema.RuleManual}}, epoch},
		{Ended{At: epoch.Add(time.Millisecond), By: schema.PartyGuard, Cause: schema.EndRejected, Status: 603}, epoch},
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	b.Run("written", func(b *testing.B) {
		a, d := endedCall(b, scriptConfig(), NewCallLog(log, 1<<30, nil), time.Now, facts...)
		b.ReportAllocs()
		for b.Loop() {
			a.logCall(d)
		}
	})
	b.Run("suppressed", func(b *testing.B) {
		a, d := endedCall(b, scriptConfig(), NewCallLog(log, 0, nil), time.Now, facts...)
		b.ReportAllocs()
		for b.Loop() {
			a.logCall(d)
		}
	})
}
