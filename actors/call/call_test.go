package call_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// The tests share one actor node (a cluster member takes a second to
// start, and two in one process race inside gRPC's global logger) and
// one store; each test calls from a number of its own.
var shared struct {
	store   *flakyStore
	callers *caller.Client
	node    *node.Node
}

var seq atomic.Int64

func TestMain(m *testing.M) {
	os.Exit(func() int {
		n, err := actortest.Start(context.Background(),
			actortest.WithLogger(quiet()), actortest.WithClientTimeout(5*time.Second),
			actortest.WithStoreWrapper(func(s events.Store) events.Store {
				shared.store = &flakyStore{Store: s}
				return shared.store
			}))
		if err != nil {
			panic(err)
		}
		defer n.Stop()
		shared.node, shared.callers = n.Node, n.Callers
		return m.Run()
	}())
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// flakyStore fails appends to call streams while down is set, and
// counts the appends and the events proposed (for the benchmarks).
type flakyStore struct {
	events.Store
	down            atomic.Bool
	appends, events atomic.Uint64
}

func (f *flakyStore) Append(ctx context.Context, stream string, exp events.Expected, evs ...events.Proposed) (events.AppendResult, error) {
	f.appends.Add(1)
	f.events.Add(uint64(len(evs)))
	if f.down.Load() && strings.HasPrefix(stream, schema.CallStreamPrefix) {
		return events.AppendResult{}, fmt.Errorf("test: %w", events.ErrUnavailable)
	}
	return f.Store.Append(ctx, stream, exp, evs...)
}

// effects records the actor's orders.
type effects struct {
	mu     sync.Mutex
	orders []string
	at     []time.Time
	ch     chan string
}

func newEffects() *effects { return &effects{ch: make(chan string, 16)} }

func (f *effects) add(s string) {
	f.mu.Lock()
	f.orders = append(f.orders, s)
	f.at = append(f.at, time.Now())
	f.mu.Unlock()
	f.ch <- s
}

func (f *effects) Reject(r call.Rejection) {
	f.add(fmt.Sprintf("reject storeDown=%v rule=%s level=%d", r.StoreDown, r.Rule, r.Level))
}
func (f *effects) Pass()                 { f.add("pass") }
func (f *effects) Challenge(code string) { f.add("challenge " + code) }
func (f *effects) Bridge()               { f.add("bridge") }
func (f *effects) Hangup(h call.Hangup)  { f.add(fmt.Sprintf("hangup %s %s", h.Cause, h.Detail)) }

func (f *effects) expect(t *testing.T, want string) time.Time {
	t.Helper()
	select {
	case got := <-f.ch:
		if got != want {
			t.Fatalf("actor ordered %q, want %q", got, want)
		}
		return time.Now()
	case <-time.After(5 * time.Second):
		t.Fatalf("actor gave no order; want %q", want)
	}
	return time.Time{}
}

// callers is a Callers that fails or delays on demand, and otherwise asks
// the real grains.
type callers struct {
	admitErr error
	gate     chan struct{} // Admit waits for it when not nil
	outcomes chan caller.Outcome
}

func (c *callers) Admit(ctx context.Context, key string, req caller.Admit) (caller.Verdict, error) {
	if c.gate != nil {
		<-c.gate
	}
	if c.admitErr != nil {
		return caller.Verdict{}, c.admitErr
	}
	return shared.callers.Admit(ctx, key, req)
}

func (c *callers) Outcome(ctx context.Context, key string, req caller.Outcome) (caller.Applied, error) {
	if c.outcomes != nil {
		c.outcomes <- req
	}
	return shared.callers.Outcome(ctx, key, req)
}

type harness struct {
	t      *testing.T
	number string
	id     string
	fx     *effects
	call   *call.Call
	sp     *call.Spawner
}

func config() call.Config {
	return call.Config{Mode: schema.Enforce, Grace: 1500 * time.Millisecond, CodeDigits: 2, StoreDown: schema.Pass, StreamRetryFor: time.Minute}
}

func start(t *testing.T, cs call.Callers, cfg call.Config, prepare func(number string)) *harness {
	t.Helper()
	return startLines(t, cs, cfg, prepare, nil)
}

func startLines(t *testing.T, cs call.Callers, cfg call.Config, prepare func(number string), lines call.Lines) *harness {
	t.Helper()
	h := &harness{t: t, number: fmt.Sprintf("+7999%07d", 2000000+seq.Add(1)), fx: newEffects()}
	h.id = "call-test-" + h.number[1:]
	if prepare != nil {
		prepare(h.number)
	}
	if cs == nil {
		cs = shared.callers
	}
	sp, err := call.NewSpawner(shared.node.System, call.Deps{Callers: cs, Lines: lines, Store: shared.store, Rand: actortest.FixedRand("47"), Node: "test", Logger: quiet()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.sp = sp
	c, err := sp.Start(call.Setup{
		ID: h.id, SIPCallID: "abc@carrier", Caller: phone.Number{Key: h.number, Kind: phone.KindE164},
		IdentityFrom: "from", Callee: "+78005553535", Source: "127.0.0.1:5060", Transport: "UDP", Received: time.Now(),
	}, h.fx)
	if err != nil {
		t.Fatal(err)
	}
	h.call = c
	return h
}

func (h *harness) send(msg any) { h.call.Tell(msg) }

func (h *harness) block(level int) func(string) {
	return func(number string) {
		cmd := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "b", By: "test", Why: "test", Level: level}}
		if _, err := shared.callers.Command(context.Background(), number, cmd); err != nil {
			h.t.Fatal(err)
		}
	}
}

// stream waits for the call's stream to end and returns its events by
// type, and their order.
func (h *harness) stream() (map[string]any, []string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.sp.Wait(ctx); err != nil {
		h.t.Fatal(err)
	}
	evs, err := events.ReadWholeStream(context.Background(), shared.store, schema.CallStream(h.id), 0)
	if err != nil {
		h.t.Fatal(err)
	}
	reg := schema.NewRegistry()
	out := map[string]any{}
	var order []string
	for _, ev := range evs {
		p, err := reg.Decode(ev)
		if err != nil {
			h.t.Fatal(err)
		}
		out[ev.Type] = p
		order = append(order, ev.Type)
	}
	return out, order
}

// received returns the CallReceived the grain recorded for the call.
func (h *harness) received() schema.CallReceived {
	h.t.Helper()
	evs, err := events.ReadWholeStream(context.Background(), shared.store, schema.CallerStream(h.number), 0)
	if err != nil {
		h.t.Fatal(err)
	}
	reg := schema.NewRegistry()
	for _, ev := range evs {
		if ev.Type != schema.TypeCallReceived {
			continue
		}
		p, err := reg.Decode(ev)
		if err != nil {
			h.t.Fatal(err)
		}
		if e := p.(*schema.CallReceived); e.CallID == h.id {
			return *e
		}
	}
	h.t.Fatalf("no CallReceived of call %s in the caller's stream", h.id)
	return schema.CallReceived{}
}

func TestDrawCode(t *testing.T) {
	for _, n := range []int{1, 2, 8} {
		code, err := call.DrawCode(actortest.FixedRand("47"), n)
		if err != nil || len(code) != n || strings.Trim(code, "0123456789") != "" {
			t.Errorf("DrawCode(%d) = %q, %v", n, code, err)
		}
	}
	for _, n := range []int{0, 9} {
		if _, err := call.DrawCode(actortest.FixedRand("47"), n); !errors.Is(err, call.ErrCodeLength) {
			t.Errorf("DrawCode(%d): %v, want ErrCodeLength", n, err)
		}
	}
	// Bytes of 250 and above would bias byte%10 towards 0-5: they are
	// skipped.
	biased := strings.NewReader("\xfa\xfb\xfc\xfd\xfe\xff\x03\x11" + strings.Repeat("\x00", 8))
	if code, err := call.DrawCode(biased, 2); err != nil || code != "37" {
		t.Errorf("DrawCode skipping 250-255 = %q, %v, want 37", code, err)
	}
	if _, err := call.DrawCode(strings.NewReader(""), 2); err == nil {
		t.Error("DrawCode from an empty source succeeded")
	}
}

func TestPassVerdictAndBilling(t *testing.T) {
	h := start(t, nil, config(), nil)
	h.fx.expect(t, "pass")
	answered := time.Now()
	h.send(call.Answered{At: answered, By: schema.PartyPBX})
	h.send(call.Ended{At: answered.Add(2 * time.Second), By: schema.PartyCaller, Cause: schema.EndCallerHangup})
	evs, order := h.stream()
	// The arrival and the decision are the grain's CallReceived.
	want := []string{schema.TypeCallAnswered, schema.TypeCallEnded}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("stream %v, want %v", order, want)
	}
	end := evs[schema.TypeCallEnded].(*schema.CallEnded)
	if end.DurationMs != 2000 || !end.Billed || end.GraceMs != 1500 {
		t.Errorf("CallEnded %+v, want 2000 ms, billed (grace 1500 ms)", end)
	}
	if rec := h.received(); rec.Verdict != schema.Pass || rec.Action != schema.Pass || rec.Mode != schema.Enforce ||
		rec.SIPCallID != "abc@carrier" || rec.IdentityFrom != "from" || rec.Transport != "UDP" || rec.CallerKind != "e164" || rec.Complete() {
		t.Errorf("CallReceived %+v, want a pass carried out, with the call as it arrived", rec)
	}
}

// fakeLines is a node's line cache with one line under attack.
type fakeLines struct {
	mu     sync.Mutex
	attack map[string]*schema.LineAttack
	counts []string
}

func (f *fakeLines) Mode(line string) *schema.LineAttack {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attack[line]
}

func (f *fakeLines) Count(line string, isNew bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = append(f.counts, fmt.Sprintf("%s new=%v", line, isNew))
}

// A call to a line under attack carries the line's mode from the node's
// cache to the grain, which challenges a new caller by rule attack and
// records the mode; the call is then counted for the line as new.
func TestCallToALineUnderAttackIsChallenged(t *testing.T) {
	since := time.Now().Add(-time.Minute).UTC().Round(0)
	lines := &fakeLines{attack: map[string]*schema.LineAttack{"+78005553535": {Since: since}}}
	h := startLines(t, nil, config(), nil, lines)
	h.fx.expect(t, "challenge 47")
	h.send(call.Ended{At: time.Now(), By: schema.PartyCaller, Cause: schema.EndCallerCancelled})
	h.stream()
	rec := h.received()
	if rec.Verdict != schema.Challenge || rec.Rule != schema.RuleAttack || rec.Attack == nil || !rec.Attack.Since.Equal(since) {
		t.Fatalf("CallReceived %+v (attack %+v), want a challenge by rule attack recording the mode", rec, rec.Attack)
	}
	lines.mu.Lock()
	defer lines.mu.Unlock()
	if len(lines.counts) != 1 || lines.counts[0] != "+78005553535 new=true" {
		t.Fatalf("counted %v, want one new caller on the line", lines.counts)
	}
}

// A reject carried out is one event, the grain's CallReceived: no call
// stream is written.
func TestRejectIsOneEvent(t *testing.T) {
	h := start(t, nil, config(), (&harness{t: t}).block(7))
	h.fx.expect(t, "reject storeDown=false rule=manual level=7")
	h.send(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndRejected, Status: 603})
	if _, order := h.stream(); len(order) != 0 {
		t.Errorf("a reject wrote a call stream: %v", order)
	}
	rec := h.received()
	if rec.Verdict != schema.Reject || rec.Action != schema.Reject || !rec.Complete() || rec.SIPCallID != "abc@carrier" || rec.Source != "127.0.0.1:5060" {
		t.Errorf("CallReceived %+v, want the whole record of a reject", rec)
	}
}

func TestChallengeHangsUpAtTheDeadline(t *testing.T) {
	h := start(t, nil, config(), (&harness{t: t}).block(3))
	h.fx.expect(t, "challenge 47")
	h.send(call.EarlyMedia{At: time.Now(), Codec: "PCMA", TelephoneEvent: true})
	answered := time.Now()
	h.send(call.Answered{At: answered, By: schema.PartyGuard})
	at := h.fx.expect(t, "hangup challenge-failed no code")
	if d := at.Sub(answered); d < 450*time.Millisecond || d > 650*time.Millisecond {
		t.Errorf("hang-up %v after the answer, want the window of 500 ms", d)
	}
	h.send(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndChallengeFailed})
	evs, _ := h.stream()
	if ch := evs[schema.TypeChallengeEnded].(*schema.ChallengeEnded); ch.Outcome != schema.Failed || ch.Cause != "no-code" {
		t.Errorf("ChallengeEnded %+v", ch)
	}
	if cs := evs[schema.TypeChallengeStarted].(*schema.ChallengeStarted); cs.Digits != 2 || cs.Codec != "PCMA" {
		t.Errorf("ChallengeStarted %+v", cs)
	}
	if end := evs[schema.TypeCallEnded].(*schema.CallEnded); end.Billed {
		t.Errorf("CallEnded %+v: hung up inside the grace interval, not billed", end)
	}
}

func TestChallengeRightCodeBridges(t *testing.T) {
	cs := &callers{outcomes: make(chan caller.Outcome, 4)}
	h := start(t, cs, config(), (&harness{t: t}).block(3))
	h.fx.expect(t, "challenge 47")
	h.send(call.Answered{At: time.Now(), By: schema.PartyGuard})
	h.send(call.Digit{Key: '4', Method: call.MethodRFC4733, At: time.Now()})
	h.send(call.Digit{Key: '7', Method: call.MethodInfo, At: time.Now()})
	h.fx.expect(t, "bridge")
	select {
	case o := <-cs.outcomes:
		if o.Outcome != schema.Passed {
			t.Errorf("grain told %s, want passed", o.Outcome)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the grain was not told the outcome")
	}
	// No hang-up at the deadline once bridged.
	select {
	case o := <-h.fx.ch:
		t.Fatalf("after the bridge the actor ordered %q", o)
	case <-time.After(700 * time.Millisecond):
	}
	h.send(call.PBXAnswered{At: time.Now()})
	h.send(call.Ended{At: time.Now(), By: schema.PartyCaller, Cause: schema.EndCallerHangup})
	evs, _ := h.stream()
	if ce := evs[schema.TypeCodeEntered].(*schema.CodeEntered); !ce.Correct || len(ce.Methods) != 2 {
		t.Errorf("CodeEntered %+v, want correct by two methods", ce)
	}
	if evs[schema.TypeCallBridged] == nil {
		t.Error("no CallBridged")
	}
}

func TestWrongCodeDuringAnnouncementRefusesAtOnce(t *testing.T) {
	h := start(t, nil, config(), (&harness{t: t}).block(3))
	h.fx.expect(t, "challenge 47")
	h.send(call.Digit{Key: '1', Method: call.MethodRFC4733, At: time.Now()})
	h.send(call.Digit{Key: '#', Method: call.MethodRFC4733, At: time.Now()}) // not a digit: ignored
	h.send(call.Digit{Key: '2', Method: call.MethodRFC4733, At: time.Now()})
	h.fx.expect(t, "hangup challenge-failed wrong code")
	h.send(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndChallengeFailed, Status: 603})
	evs, _ := h.stream()
	if ce := evs[schema.TypeCodeEntered].(*schema.CodeEntered); ce.Correct || ce.Digits != 2 {
		t.Errorf("CodeEntered %+v", ce)
	}
}

func TestStoreDownFailsOpenAndIsRecordedLater(t *testing.T) {
	shared.store.down.Store(true)
	defer shared.store.down.Store(false)
	cs := &callers{admitErr: fmt.Errorf("%w: test outage", caller.ErrStore)}
	h := start(t, cs, config(), nil)
	h.fx.expect(t, "pass")
	h.send(call.Ended{At: time.Now(), By: schema.PartyPBX, Cause: schema.EndPBXRefused, Status: 486})
	time.Sleep(200 * time.Millisecond)
	if evs, _ := events.ReadWholeStream(context.Background(), shared.store, schema.CallStream(h.id), 0); len(evs) != 0 {
		t.Fatalf("%d events written while the store was down", len(evs))
	}
	shared.store.down.Store(false)
	evs, order := h.stream()
	dec := evs[schema.TypeCallDecided].(*schema.CallDecided)
	if !dec.StoreDown || dec.Action != schema.Pass || !strings.Contains(dec.Error, "test outage") {
		t.Errorf("CallDecided %+v, want store-down, action pass", dec)
	}
	if len(order) != 3 {
		t.Errorf("stream %v, want started, decided, ended", order)
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	cfg := config()
	cfg.StoreDown = schema.Reject
	cs := &callers{admitErr: fmt.Errorf("%w: grain timeout", caller.ErrUnavailable)}
	h := start(t, cs, cfg, nil)
	h.fx.expect(t, "reject storeDown=true rule= level=0")
	h.send(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndStoreDown, Status: 503})
	evs, _ := h.stream()
	if dec := evs[schema.TypeCallDecided].(*schema.CallDecided); !dec.StoreDown || dec.Action != schema.Reject {
		t.Errorf("CallDecided %+v, want store-down reject", dec)
	}
}

func TestCallerLeavesBeforeTheVerdict(t *testing.T) {
	cs := &callers{gate: make(chan struct{}), outcomes: make(chan caller.Outcome, 4)}
	h := start(t, cs, config(), (&harness{t: t}).block(3))
	h.send(call.Ended{At: time.Now(), By: schema.PartyCaller, Cause: schema.EndCallerCancelled, Status: 487})
	time.Sleep(50 * time.Millisecond)
	close(cs.gate)
	select {
	case o := <-cs.outcomes:
		if o.Outcome != schema.Abandoned {
			t.Errorf("grain told %s, want abandoned", o.Outcome)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the grain was not told the challenge was abandoned")
	}
	_, order := h.stream()
	want := []string{schema.TypeChallengeEnded, schema.TypeCallEnded}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("stream %v, want %v", order, want)
	}
	select {
	case o := <-h.fx.ch:
		t.Errorf("actor ordered %q for a call already gone", o)
	default:
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []call.Config{
		{Mode: "loud", Grace: 3 * time.Second, CodeDigits: 2, StoreDown: schema.Pass},
		{Mode: schema.Enforce, Grace: time.Second, CodeDigits: 2, StoreDown: schema.Pass},
		{Mode: schema.Enforce, Grace: 3 * time.Second, CodeDigits: 0, StoreDown: schema.Pass},
		{Mode: schema.Enforce, Grace: 3 * time.Second, CodeDigits: 2, StoreDown: schema.Challenge},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := config().Validate(); err != nil {
		t.Error(err)
	}
}
