package call

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// update regenerates the expected output of testdata/*.txt:
//
//	go test ./actors/call -run TestScenarios -update
//
// Commit the result only once the diff is understood.
var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt scenario scripts")

// TestScenarios runs the call machine's scenario scripts in testdata. A
// script is a sequence of cases in the style of cockroachdb/datadriven:
//
//	# comment
//	command args...
//	----
//	expected output
//	<blank line>
//
// Times are "+D", a duration after the INVITE of the current call
// ("+0.2s", "+1.5s"); a command without "at" happens when the one before
// it did. Values with spaces are quoted: detail="no answer".
//
//	config [mode=enforce|observe] [grace=D] [digits=N] [store-down=pass|reject]
//	    the defaults (enforce, 3s, 2, pass) plus the overrides, for the
//	    calls invited after it.
//	invite [caller=NUMBER|anonymous] [presented=TEXT] [fallback=TEXT]
//	    a new call, at +0s; fallback is why a challenge cannot be carried
//	    out on it (Setup.ChallengeFallback).
//	verdict pass|challenge|reject [level=N] [rule=R] [reason=TEXT] [code=DIGITS|none] [at T]
//	    the grain's answer. A challenge comes with the code the actor drew:
//	    4747... by default, none when the draw failed.
//	verdict fails err=TEXT [at T]
//	    the grain could not decide.
//	verdict busy err=TEXT [at T]
//	    the node was too busy to decide (caller.ErrBusy wrapping TEXT).
//	early-media [codec=C] [telephone-event=B] [at T]
//	answered [by=guard|pbx] [at T]     by the guard once a code was drawn, else the PBX
//	digit KEY [rfc4733|info|inband] [at T]
//	deadline [at T]                    the timer fires, when it was armed for
//	pbx-answered [at T]
//	ended by=PARTY cause=CAUSE [status=N] [detail=TEXT] [at T]
//
// The output lists, in order, the events recorded ("+ Type field=value",
// with at= when the event's time is not the command's; the call stream
// holds them and is written when the call finishes), the events only
// noted ("= Type ...": the grain's CallReceived says them) and the
// orders to the SIP session and the shell; "nothing" when there are
// none, "nothing yet" with the reason when the machine holds the fact.
//
// After every command the runner checks what the call's rules promise
// whatever the script: the machine is deterministic (a fresh machine fed
// the same facts at the same times says the same), a call's record has
// each event type once and ends with CallEnded, its call stream starts
// with CallStarted and CallDecided when the grain recorded nothing (store
// down) and holds neither when it did, a reject carried out writes no
// call stream at all, one verdict order and at most one hang-up, the timer is armed for grace
// minus one second after the 200 OK, a challenge-failed hang-up of an
// answered call happens exactly at that deadline, a call the guard hung up
// for a failed challenge is never billed, and only a challenge the grain
// recorded is reported to it.
func TestScenarios(t *testing.T) {
	scripttest.Run(t, "testdata/*.txt", *update, func(t *testing.T) func(string, *scripttest.Command) string {
		r := &runner{t: t, cfg: scriptConfig()}
		return r.run
	})
}

// epoch is when every script's call arrives.
var epoch = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

// scriptConfig is the guard's default call configuration.
func scriptConfig() Config {
	c := Config{Mode: schema.Enforce, Grace: 3 * time.Second, CodeDigits: 2, StoreDown: schema.Pass}
	c.defaults()
	return c
}

// timedFact is a fact and when the machine was given it.
type timedFact struct {
	f  fact
	at time.Time
}

type runner struct {
	t   *testing.T
	cfg Config // for the next call
	// The current call: its configuration, setup and machine.
	callCfg Config
	setup   Setup
	m       *machine
	clock   time.Time
	// The call's history: every fact given and every output returned.
	facts []timedFact
	outs  []output
	outAt []time.Time // when each output was returned
	// timer is when the armed timer fires; zero when not armed.
	timer time.Time
}

func (r *runner) run(pos string, a *scripttest.Command) string {
	out, err := r.exec(a.Name, a)
	if err != nil {
		r.t.Fatalf("%s: %v", pos, err)
	}
	if r.m != nil {
		r.checkInvariants(pos)
	}
	return out
}

func (r *runner) exec(cmd string, a *scripttest.Command) (string, error) {
	if cmd == "config" {
		return r.config(a)
	}
	if cmd == "invite" {
		return r.invite(a)
	}
	if r.m == nil {
		return "", fmt.Errorf("%s before invite", cmd)
	}
	if at, ok := a.Opt("at"); ok {
		t, err := parseTime(at)
		if err != nil {
			return "", err
		}
		if t.Before(r.clock) {
			return "", fmt.Errorf("at %s goes back in time (now %s)", at, fmtTime(r.clock))
		}
		r.clock = t
	}
	var f fact
	switch cmd {
	case "verdict":
		var err error
		if f, err = r.verdict(a); err != nil {
			return "", err
		}
	case "early-media":
		em := EarlyMedia{At: r.clock, Codec: "PCMA", TelephoneEvent: true}
		if v, ok := a.Opt("codec"); ok {
			em.Codec = v
		}
		if v, ok := a.Opt("telephone-event"); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return "", fmt.Errorf("telephone-event=: %w", err)
			}
			em.TelephoneEvent = b
		}
		f = em
	case "answered":
		by := schema.PartyPBX
		if r.m.code != "" {
			by = schema.PartyGuard
		}
		if v, ok := a.Opt("by"); ok {
			by = schema.Party(v)
		}
		f = Answered{At: r.clock, By: by}
	case "digit":
		if len(a.Args) < 1 || len(a.Args) > 2 || len([]rune(a.Args[0])) != 1 {
			return "", errors.New("digit: want one key and an optional method")
		}
		method := MethodRFC4733
		if len(a.Args) == 2 {
			method = a.Args[1]
		}
		f = Digit{Key: []rune(a.Args[0])[0], Method: method, At: r.clock}
	case "deadline":
		if !a.Given("at") && !r.timer.IsZero() {
			r.clock = r.timer
		}
		f = deadlineReached{}
	case "pbx-answered":
		f = PBXAnswered{At: r.clock}
	case "ended":
		e := Ended{At: r.clock}
		by, ok1 := a.Opt("by")
		cause, ok2 := a.Opt("cause")
		if !ok1 || !ok2 {
			return "", errors.New("ended: want by= and cause=")
		}
		e.By, e.Cause = schema.Party(by), schema.EndCause(cause)
		if v, ok := a.Opt("status"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", fmt.Errorf("status=: %w", err)
			}
			e.Status = n
		}
		e.Detail, _ = a.Opt("detail")
		f = e
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	r.facts = append(r.facts, timedFact{f, r.clock})
	typed := len(r.m.typed)
	outs := r.m.step(f, r.clock)
	r.took(outs)
	if _, ok := f.(deadlineReached); ok {
		r.timer = time.Time{} // it fired
	}
	if len(outs) == 0 && r.m.ended != nil && !r.m.decided {
		return "nothing yet: the end waits for the verdict", nil
	}
	if len(outs) == 0 && len(r.m.typed) > typed {
		return fmt.Sprintf("nothing yet: %d of %d keys", len(r.m.typed), len(r.m.code)), nil
	}
	return r.print(outs), nil
}

func (r *runner) config(a *scripttest.Command) (string, error) {
	cfg := scriptConfig()
	for k, v := range a.All() {
		var err error
		switch k {
		case "mode":
			cfg.Mode = schema.Mode(v)
		case "grace":
			cfg.Grace, err = time.ParseDuration(v)
		case "digits":
			cfg.CodeDigits, err = strconv.Atoi(v)
		case "store-down":
			cfg.StoreDown = schema.Verdict(v)
		default:
			return "", fmt.Errorf("unknown config key %q", k)
		}
		if err != nil {
			return "", fmt.Errorf("config %s: %w", k, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return "error: " + strings.ReplaceAll(err.Error(), "\n", "; "), nil
	}
	r.cfg = cfg
	return "ok", nil
}

func (r *runner) invite(a *scripttest.Command) (string, error) {
	num := phone.Number{Key: "+79990001122", Kind: phone.KindE164}
	presented := "+79990001122"
	if v, ok := a.Opt("caller"); ok {
		if v == "anonymous" {
			num, presented = phone.Number{Key: phone.AnonymousKey, Kind: phone.KindAnonymous}, "anonymous"
		} else {
			num, presented = phone.Number{Key: v, Kind: phone.KindE164}, v
		}
	}
	if v, ok := a.Opt("presented"); ok {
		presented = v
	}
	fallback, _ := a.Opt("fallback")
	r.setup = Setup{
		ID: "c1", SIPCallID: "c1@carrier", Caller: num, Presented: presented, IdentityFrom: "from",
		Callee: "+78005553535", Source: "192.0.2.1:5060", Transport: "UDP", Received: epoch,
		ChallengeFallback: fallback,
	}
	r.callCfg = r.cfg
	r.m, r.clock, r.facts, r.outs, r.outAt, r.timer = newMachine(r.callCfg, r.setup), epoch, nil, nil, nil, time.Time{}
	outs := r.m.start()
	r.took(outs)
	return r.print(outs), nil
}

// took adds outputs to the call's history, and follows the timer.
func (r *runner) took(outs []output) {
	for _, o := range outs {
		r.outs = append(r.outs, o)
		r.outAt = append(r.outAt, r.clock)
		switch o := o.(type) {
		case armTimer:
			r.timer = o.at
		case stopTimer:
			r.timer = time.Time{}
		}
	}
}

func (r *runner) verdict(a *scripttest.Command) (fact, error) {
	if len(a.Args) != 1 {
		return nil, errors.New("verdict: want pass, challenge, reject, fails or busy")
	}
	if a.Args[0] == "fails" {
		msg, ok := a.Opt("err")
		if !ok {
			return nil, errors.New("verdict fails: want err=")
		}
		return admitted{err: errors.New(msg)}, nil
	}
	if a.Args[0] == "busy" {
		msg, ok := a.Opt("err")
		if !ok {
			return nil, errors.New("verdict busy: want err=")
		}
		return admitted{err: fmt.Errorf("%w: %s", caller.ErrBusy, msg)}, nil
	}
	v := caller.Verdict{CallID: r.setup.ID, Verdict: schema.Verdict(a.Args[0]), At: r.clock, Revision: 7}
	if !v.Verdict.Valid() {
		return nil, fmt.Errorf("verdict %q", a.Args[0])
	}
	if s, ok := a.Opt("level"); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("level=: %w", err)
		}
		v.Level = n
	}
	if s, ok := a.Opt("rule"); ok {
		v.Rule = schema.Rule(s)
	}
	v.Reason, _ = a.Opt("reason")
	// As the shell does: a code is drawn for a challenge verdict only.
	code := strings.Repeat("47", MaxCodeDigits)[:r.callCfg.CodeDigits]
	if s, ok := a.Opt("code"); ok {
		code = s
		if s == "none" {
			code = ""
		}
	}
	if v.Verdict != schema.Challenge {
		code = ""
	}
	return admitted{v: v, code: code}, nil
}

// print lists outputs: events as "+ Type fields", orders as they are.
func (r *runner) print(outs []output) string {
	if len(outs) == 0 {
		return "nothing"
	}
	var lines []string
	for _, o := range outs {
		switch o := o.(type) {
		case recordEvent:
			lines = append(lines, "+ "+r.fmtEvent(o.ev))
		case noteEvent:
			lines = append(lines, "= "+r.fmtEvent(o.ev))
		case askGrain:
			s := "ask grain: admit " + r.setup.Caller.Key
			if o.req.Presented != "" {
				s += " presented=" + quote(o.req.Presented)
			}
			if o.req.ChallengeFallback != "" {
				s += " fallback=" + quote(o.req.ChallengeFallback)
			}
			lines = append(lines, s)
		case orderReject:
			if o.r.StoreDown {
				lines = append(lines, "reject store-down error="+quote(o.r.Error))
				break
			}
			if o.r.Busy {
				lines = append(lines, "reject busy error="+quote(o.r.Error))
				break
			}
			s := fmt.Sprintf("reject level=%d", o.r.Level)
			if o.r.Rule != "" {
				s += " rule=" + string(o.r.Rule)
			}
			lines = append(lines, s)
		case orderPass:
			lines = append(lines, "pass")
		case orderChallenge:
			lines = append(lines, "challenge "+o.code)
		case orderBridge:
			lines = append(lines, "bridge")
		case orderHangup:
			lines = append(lines, fmt.Sprintf("hangup %s %s", o.h.Cause, quote(o.h.Detail)))
		case armTimer:
			lines = append(lines, "arm timer at "+fmtTime(o.at))
		case stopTimer:
			lines = append(lines, "stop timer")
		case tellOutcome:
			lines = append(lines, "report outcome "+string(o.outcome)+" to grain")
		case finish:
			lines = append(lines, "close stream, stop")
		default:
			r.t.Fatalf("unknown output %T", o)
		}
	}
	return strings.Join(lines, "\n")
}

func (r *runner) fmtEvent(p schema.Payload) string {
	var f []string
	add := func(k string, v any) { f = append(f, fmt.Sprintf("%s=%v", k, v)) }
	var at time.Time
	switch e := p.(type) {
	case schema.CallStarted:
		add("caller", e.Caller)
		add("kind", e.CallerKind)
		add("mode", e.Mode)
		at = e.At
	case schema.CallDecided:
		if e.StoreDown || e.Busy {
			if e.StoreDown {
				f = append(f, "store-down")
			} else {
				f = append(f, "busy")
			}
			add("error", quote(e.Error))
		} else {
			add("verdict", e.Verdict)
			add("level", e.Level)
			if e.Rule != "" {
				add("rule", e.Rule)
			}
			if e.Reason != "" {
				add("reason", quote(e.Reason))
			}
		}
		add("action", e.Action)
		if e.ActionReason != "" {
			add("actionReason", quote(e.ActionReason))
		}
		at = e.At
	case schema.ChallengeStarted:
		add("digits", e.Digits)
		add("codec", e.Codec)
		add("telephone-event", e.TelephoneEvent)
		at = e.At
	case schema.CallAnswered:
		add("by", e.By)
		at = e.At
	case schema.CodeEntered:
		add("correct", e.Correct)
		add("digits", e.Digits)
		add("methods", strings.Join(e.Methods, ","))
		at = e.At
	case schema.ChallengeEnded:
		add("outcome", e.Outcome)
		add("cause", e.Cause)
		at = e.At
	case schema.CallBridged:
		at = e.At
	case schema.CallEnded:
		add("cause", e.Cause)
		add("by", e.By)
		if e.Status != 0 {
			add("status", e.Status)
		}
		if e.AnsweredAt != nil {
			add("answered", fmtTime(*e.AnsweredAt))
			add("duration", fmtDur(time.Duration(e.DurationMs)*time.Millisecond))
		}
		add("billed", e.Billed)
		at = e.At
	}
	if !at.Equal(r.clock) {
		add("at", fmtTime(at))
	}
	s := p.EventType()
	if len(f) > 0 {
		s += " " + strings.Join(f, " ")
	}
	return s
}

// checkInvariants checks the call's promises over its whole history.
func (r *runner) checkInvariants(pos string) {
	fail := func(format string, args ...any) {
		r.t.Fatalf("%s: "+format+"\nhistory:\n%s", append([]any{pos}, append(args, scripttest.Indent(r.print(r.outs)))...)...)
	}

	// Deterministic: the same facts at the same times, the same outputs.
	fresh := newMachine(r.callCfg, r.setup)
	again := fresh.start()
	for _, tf := range r.facts {
		again = append(again, fresh.step(tf.f, tf.at)...)
	}
	if !reflect.DeepEqual(again, r.outs) {
		r.t.Fatalf("%s: a fresh machine fed the same facts says otherwise:\n%s\nwant:\n%s", pos, scripttest.Indent(r.print(again)), scripttest.Indent(r.print(r.outs)))
	}

	seen := map[string]bool{}
	written := 0
	var (
		verdictOrders, hangups, bridges, told int
		decided                               *schema.CallDecided
		challengeEnded                        bool
		finished                              bool
		answeredAt                            time.Time
	)
	for i, o := range r.outs {
		if finished {
			fail("output %T after the call finished", o)
		}
		var ev schema.Payload
		switch o := o.(type) {
		case recordEvent:
			ev = o.ev
			typ := ev.EventType()
			switch {
			case typ == schema.TypeCallStarted && written != 0:
				fail("CallStarted is not the first of the call stream")
			case written == 0 && typ != schema.TypeCallStarted && (decided == nil || decided.StoreDown || decided.Busy):
				fail("the call stream of a call the grain did not record does not start with CallStarted")
			case written == 1 && seen[schema.TypeCallStarted] && typ != schema.TypeCallDecided:
				fail("the call stream's CallStarted is not followed by CallDecided")
			}
			written++
			if d, ok := ev.(schema.CallDecided); ok && !d.StoreDown && !d.Busy {
				fail("the call stream repeats a decision the grain recorded")
			}
			if decided != nil && !decided.StoreDown && !decided.Busy && decided.Action == schema.Reject {
				fail("a reject carried out wrote %s to a call stream (CallReceived is its record)", typ)
			}
		case noteEvent:
			ev = o.ev
			switch e := ev.(type) {
			case schema.CallDecided:
				if e.StoreDown {
					fail("a store-down decision only noted: no CallReceived records it")
				}
			case schema.CallEnded:
				if decided == nil || decided.StoreDown || decided.Action != schema.Reject {
					fail("the end of a call that is not a reject carried out was only noted")
				}
			default:
				fail("%s only noted", ev.EventType())
			}
		}
		if ev != nil {
			typ := ev.EventType()
			if seen[typ] {
				fail("%s recorded twice (its event ID is derived from the call and the type)", typ)
			}
			seen[typ] = true
			switch e := ev.(type) {
			case schema.CallDecided:
				decided = &e
			case schema.CallAnswered:
				answeredAt = e.At
			case schema.ChallengeEnded:
				challengeEnded = true
				if decided == nil || decided.Action != schema.Challenge {
					fail("a challenge ended that the call never got")
				}
			case schema.CallEnded:
				if e.Cause == schema.EndChallengeFailed && e.By == schema.PartyGuard && e.Billed {
					fail("a call hung up for a failed challenge was billed")
				}
				if i+1 >= len(r.outs) {
					fail("CallEnded without finishing")
				} else if _, ok := r.outs[i+1].(finish); !ok {
					fail("CallEnded is not the last event")
				}
			}
		}
		switch o := o.(type) {
		case orderReject, orderPass, orderChallenge:
			verdictOrders++
			if decided == nil {
				fail("%T before the verdict was recorded (durable before visible)", o)
			}
		case orderBridge:
			bridges++
		case orderHangup:
			hangups++
			if o.h.Cause == schema.EndChallengeFailed && !answeredAt.IsZero() {
				if deadline := answeredAt.Add(r.callCfg.Window()); !r.outAt[i].Equal(deadline) {
					fail("an answered call hung up for a failed challenge at %s, not at the deadline %s", fmtTime(r.outAt[i]), fmtTime(deadline))
				}
			}
		case armTimer:
			if want := answeredAt.Add(r.callCfg.Grace - time.Second); answeredAt.IsZero() || !o.at.Equal(want) {
				fail("timer armed for %s, want grace minus one second after the 200 OK", fmtTime(o.at))
			}
		case tellOutcome:
			told++
			if decided == nil || decided.StoreDown || decided.Busy {
				fail("the grain was told an outcome of a call it did not record")
			}
		case finish:
			finished = true
			if !seen[schema.TypeCallEnded] {
				fail("finished without CallEnded")
			}
		}
	}
	switch {
	case verdictOrders > 1:
		fail("%d verdict orders", verdictOrders)
	case hangups > 1:
		fail("%d hang-ups", hangups)
	case bridges+hangups > 1:
		fail("bridged and hung up")
	case told > 1:
		fail("the grain was told %d outcomes", told)
	case challengeEnded && decided != nil && !decided.StoreDown && !decided.Busy && told != 1:
		fail("a challenge ended but the grain was not told")
	}
}

// parseTime reads "+D", a duration after the INVITE.
func parseTime(s string) (time.Time, error) {
	d, ok := strings.CutPrefix(s, "+")
	if !ok {
		return time.Time{}, fmt.Errorf("time %q: want +D after the INVITE", s)
	}
	dur, err := time.ParseDuration(d)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	return epoch.Add(dur), nil
}

func fmtTime(t time.Time) string { return "+" + fmtDur(t.Sub(epoch)) }

// fmtDur prints a duration in seconds, as the scripts write them: 0.2s,
// 1.5s, 3s.
func fmtDur(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func quote(s string) string {
	if s == "" || strings.ContainsAny(s, " \"") {
		return strconv.Quote(s)
	}
	return s
}
