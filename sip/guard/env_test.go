package guard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/actortest"
	actorcall "github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/guard"
	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// testGrace is the grace interval of the tests: the caller has half a
// second after the 200 OK.
const testGrace = 1500 * time.Millisecond

// tollFree is the number the tests call.
const tollFree = "+78005553535"

// testCode is the code the guard draws (actortest.FixedRand).
const testCode = "47"

// The package's tests share one actor node and one event store (starting
// a cluster member takes about a second); each test calls from a number
// of its own, so caller grains and call streams do not mix.
var shared struct {
	store   events.Store
	callers *caller.Client
	node    *node.Node
}

var numberSeq atomic.Int64

// TestMain starts the shared node, and quiets sipgo's package-level
// logger, which its connection bookkeeping writes to whatever the user
// agent's options say.
func TestMain(m *testing.M) {
	sip.SetDefaultLogger(quiet())
	os.Exit(func() int {
		n, err := actortest.Start(context.Background(), actortest.WithLogger(quiet()), actortest.WithClientTimeout(5*time.Second))
		if err != nil {
			panic(err)
		}
		defer n.Stop()
		shared.store, shared.node, shared.callers = n.Store, n.Node, n.Callers
		return m.Run()
	}())
}

func quiet() *slog.Logger {
	if os.Getenv("GUARD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is one guard on loopback with the real caller grains, a recording
// PBX, and the number this test calls from.
type env struct {
	t        testing.TB
	store    events.Store
	callers  *caller.Client
	guard    *guard.Guard
	pbx      *siptest.RecordingPBX
	pbxMode  atomic.Pointer[siptest.Behaviour]
	number   string
	done     chan error
	cancel   context.CancelFunc
	stopOnce sync.Once
}

type envOption func(*guard.Config, *actorcall.Config, *actorcall.Deps)

func withConfig(f func(*guard.Config)) envOption {
	return func(c *guard.Config, _ *actorcall.Config, _ *actorcall.Deps) { f(c) }
}

// withCallConfig changes the calls' settings.
func withCallConfig(f func(*actorcall.Config)) envOption {
	return func(_ *guard.Config, c *actorcall.Config, _ *actorcall.Deps) { f(c) }
}

// withCallers replaces the grain client.
func withCallers(c actorcall.Callers) envOption {
	return func(_ *guard.Config, _ *actorcall.Config, d *actorcall.Deps) { d.Callers = c }
}

// testCalls builds the calls of a guard under test as cmd does: the real
// call actors on the shared node.
func testCalls(t testing.TB, cfg actorcall.Config, deps actorcall.Deps) *actorcall.Spawner {
	t.Helper()
	sp, err := actorcall.NewSpawner(shared.node.System, deps, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// testCallConfig is the calls' settings of the tests.
func testCallConfig() actorcall.Config {
	return actorcall.Config{Mode: schema.Enforce, Grace: testGrace, CodeDigits: 2, StoreDown: schema.Pass, DecideTimeout: 2 * time.Second}
}

// testCallDeps is what the calls of the tests use.
func testCallDeps() actorcall.Deps {
	return actorcall.Deps{Callers: shared.callers, Store: shared.store, Clock: time.Now, Rand: actortest.FixedRand(testCode), Logger: quiet(), Node: "test"}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvPBX(t, false, opts...)
}

// newEnvPBX is newEnv with a PBX that listens on TCP as well when pbxTCP,
// and GUARD_PBX_URI pointing at it over TCP.
func newEnvPBX(t testing.TB, pbxTCP bool, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, store: shared.store, callers: shared.callers,
		number: fmt.Sprintf("+7999%07d", 1000000+numberSeq.Add(1))}
	e.setPBX(pbxAnswer)
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{
		Logger: quiet(), TCP: pbxTCP, NoInBandDetection: true,
		Behave: func(*siptest.PBXCall) siptest.Behaviour { return *e.pbxMode.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pbx.Close() })
	e.pbx = pbx
	numbers, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	cfg := guard.Config{
		Listen: "127.0.0.1:0", TrustedPeers: "127.0.0.1/32", PBXURI: e.pbx.URI(),
		Language: "en", SoundsDir: shortPrompts(t), RejectStatus: 603, RTPPorts: "30000-39999",
		PBXTimeout: 800 * time.Millisecond, RingTimeout: 10 * time.Second,
	}
	callCfg, callDeps := testCallConfig(), testCallDeps()
	callDeps.Callers, callDeps.Store = e.callers, e.store
	for _, o := range opts {
		o(&cfg, &callCfg, &callDeps)
	}
	deps := guard.Deps{Calls: testCalls(t, callCfg, callDeps), Numbers: numbers, Clock: time.Now, Logger: quiet()}
	g, err := guard.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.guard = g
	ctx, cancel := context.WithCancel(context.Background())
	e.done = make(chan error, 1)
	go func() { e.done <- g.Serve(ctx) }()
	select {
	case <-g.Ready():
	case err := <-e.done:
		t.Fatalf("guard did not start: %v", err)
	}
	e.cancel = cancel
	t.Cleanup(e.stop)
	return e
}

// stop stops the guard and checks it stopped cleanly; it may be called
// more than once.
func (e *env) stop() {
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case err := <-e.done:
			if err != nil {
				e.t.Errorf("guard stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			e.t.Errorf("guard did not stop")
		}
	})
}

// uri is the guard's SIP URI for the toll-free number.
func (e *env) uri() string {
	return fmt.Sprintf("sip:%s@%s", strings.TrimPrefix(tollFree, "+"), e.guard.UDPAddr())
}

// block gives the test caller a manual block at level (3 challenges, 7
// rejects).
func (e *env) block(level int) {
	e.t.Helper()
	cmd := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: fmt.Sprintf("block-%d", level), By: "test", Why: "test", Level: level}}
	if _, err := e.callers.Command(context.Background(), e.number, cmd); err != nil {
		e.t.Fatal(err)
	}
}

// callStream waits for a call of the caller that has ended, and returns
// its events decoded by type: its call stream's and, when the grain
// decided it, the caller stream's CallReceived. A reject carried out has
// no call stream: its CallReceived is its whole record.
func (e *env) callStream() map[string]any {
	e.t.Helper()
	reg := schema.NewRegistry()
	var out map[string]any
	actortest.Eventually(e.t, 5*time.Second, func() error {
		evs, err := e.store.ReadAll(context.Background(), events.Start, 10000)
		if err != nil {
			return err
		}
		streams := map[string][]events.Event{}
		received := map[string]*schema.CallReceived{} // by call stream
		mine := map[string]bool{}
		var ended string
		for _, ev := range evs {
			if ev.Stream == schema.CallerStream(e.number) && ev.Type == schema.TypeCallReceived {
				p, err := reg.Decode(ev)
				if err != nil {
					return err
				}
				rec := p.(*schema.CallReceived)
				stream := schema.CallStream(rec.CallID)
				received[stream], mine[stream] = rec, true
				if rec.Complete() {
					ended = stream
				}
				continue
			}
			if !strings.HasPrefix(ev.Stream, schema.CallStreamPrefix) {
				continue
			}
			streams[ev.Stream] = append(streams[ev.Stream], ev)
			if ev.Type == schema.TypeCallStarted && strings.Contains(string(ev.Data), `"caller":"`+e.number+`"`) {
				mine[ev.Stream] = true // a call the grain did not decide
			}
			if ev.Type == schema.TypeCallEnded && mine[ev.Stream] {
				ended = ev.Stream
			}
		}
		if ended == "" {
			return fmt.Errorf("no call has ended yet (%d streams)", len(streams))
		}
		out = map[string]any{}
		if rec := received[ended]; rec != nil {
			out[schema.TypeCallReceived] = rec
		}
		for _, ev := range streams[ended] {
			p, err := reg.Decode(ev)
			if err != nil {
				return err
			}
			out[ev.Type] = p
		}
		return nil
	})
	return out
}

// callerStream returns the caller's stream, by type (last of each).
func (e *env) callerStream() map[string]json.RawMessage {
	e.t.Helper()
	evs, err := events.ReadWholeStream(context.Background(), e.store, schema.CallerStream(e.number), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for _, ev := range evs {
		out[ev.Type] = ev.Data
	}
	return out
}

// How the PBX answers: pbxAnswer unless a test sets another with setPBX.
var (
	// pbxAnswer rings, then answers 50 ms later: sipgo handles each
	// response on a goroutine of its own, so a 200 right behind the 180
	// may overtake it; a real PBX rings first. It sends no RTP of its own.
	pbxAnswer = siptest.Behaviour{Delay: 50 * time.Millisecond, Quiet: true}
	// pbxBusy answers 486 Busy Here at once.
	pbxBusy = siptest.Behaviour{Status: 486, NoRinging: true}
	// pbxRing rings until the INVITE is cancelled.
	pbxRing = siptest.RingForever()
)

// setPBX sets how the PBX answers the calls that come next.
func (e *env) setPBX(b siptest.Behaviour) { e.pbxMode.Store(&b) }

// pbxCall waits for the PBX's first call.
func (e *env) pbxCall() *siptest.PBXCall {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	calls, err := e.pbx.WaitCalls(ctx, 1)
	if err != nil {
		e.t.Fatalf("the PBX got no INVITE: %v", err)
	}
	return calls[0]
}

// pbxAnswered waits until the PBX has answered its first call and the
// answer is acknowledged.
func (e *env) pbxAnswered() *siptest.PBXCall {
	e.t.Helper()
	pc := e.pbxCall()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.WaitAnswered(ctx); err != nil {
		e.t.Fatalf("the PBX did not answer: %v", err)
	}
	return pc
}

// pbxHangup hangs up the PBX's first call with a BYE.
func (e *env) pbxHangup() {
	e.t.Helper()
	pc := e.pbxAnswered()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.Hangup(ctx); err != nil {
		e.t.Fatalf("PBX BYE: %v", err)
	}
}

// pbxEnded waits for the PBX's first call to end, and fails unless it
// ended as want says ("cancelled", "BYE from the caller", ...).
func (e *env) pbxEnded(want string) {
	e.t.Helper()
	pc := e.pbxCall()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := pc.WaitEnded(ctx)
	if err != nil {
		e.t.Fatalf("the PBX's call did not end (want %s): %v", want, err)
	}
	if got != want {
		e.t.Fatalf("the PBX's call ended by %q, want %q", got, want)
	}
}

// mediaPort is the port of the PBX call's RTP socket.
func mediaPort(t *testing.T, pc *siptest.PBXCall) int {
	t.Helper()
	ap, err := netip.ParseAddrPort(pc.MediaAddr())
	if err != nil {
		t.Fatalf("PBX media address %q: %v", pc.MediaAddr(), err)
	}
	return int(ap.Port())
}

// shortPrompts writes a prompt set of short tones (the phrase 200 ms, each
// digit 100 ms) so that challenges in tests take a fraction of a second.
func shortPrompts(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	tone := func(freq float64, d time.Duration) []int16 {
		n := int(d.Seconds() * sounds.SampleRate)
		pcm := make([]int16, n)
		for i := range pcm {
			pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/sounds.SampleRate))
		}
		return pcm
	}
	write := func(name string, pcm []int16) {
		if err := os.WriteFile(filepath.Join(dir, name), sounds.EncodeWAV(sounds.SampleRate, pcm), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("prompt.wav", tone(300, 200*time.Millisecond))
	for d := 0; d <= 9; d++ {
		write(fmt.Sprintf("%d.wav", d), tone(400+float64(d)*30, 100*time.Millisecond))
	}
	return dir
}
