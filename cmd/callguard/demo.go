package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// The demo's toll-free number and the policy it runs: limits low enough
// that a redialling bot trips them within a few calls.
const demoCallee = "88005553535"

// demoCaller is one simulated person or bot.
type demoCaller struct {
	number string
	bot    bool
	// flagged humans start soft-blocked (an admin's block): they are
	// challenged and type the code they hear.
	flagged bool
}

// demoCall is one call of the plan: who calls, and which of their calls it is.
type demoCall struct {
	who *demoCaller
	n   int
}

// demoResult is what happened to one call, as the carrier saw it.
type demoResult struct {
	who        *demoCaller
	n          int
	verdict    string // pass, challenge, reject
	outcome    string // connected, passed, failed, rejected, error
	method     siptest.DTMFMethod
	heard      string
	byeAfter   time.Duration // the guard's BYE after answer (failed challenges)
	unbilled   bool
	err        error
	finalState int
}

// runDemo starts a guard, a simulated PBX and a simulated carrier on
// loopback and places a mix of calls: bots redialling, people calling
// once or twice, and people who are challenged and type the code they
// hear. Real SIP, real RTP, real DTMF.
func runDemo(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lang := fs.String("lang", "en", "language of the prompts: en or ru")
	bots := fs.Int("bots", 3, "bots that redial the toll-free number")
	humans := fs.Int("humans", 12, "people who call once or twice")
	flagged := fs.Int("flagged", 4, "people whose numbers an admin soft-blocked: they are challenged and type the code")
	redials := fs.Int("redials", 7, "calls each bot makes")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed of the call mix")
	verbose := fs.Bool("v", false, "show the guard's own log")
	dirFlag := fs.String("dir", "", "keep the demo's event store in this new or empty directory (default: a new one in the system's temporary directory)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, 0); err != nil {
		return err
	}
	// The store is kept after the demo: its closing hint audits it.
	dir, err := demoDir(*dirFlag)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{Behave: func(*siptest.PBXCall) siptest.Behaviour {
		return siptest.AnswerAfter(300 * time.Millisecond)
	}})
	if err != nil {
		return fmt.Errorf("start the simulated PBX: %w", err)
	}
	defer pbx.Close()

	cfg, err := loadConfig(append(environ, "GUARD_DATA_DIR="+dir))
	if err != nil {
		return err
	}
	cfg.EventStoreURL, cfg.PostgresURL = "", "" // the demo's own store, whatever the environment says
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.SIP.PBXURI = pbx.URI()
	cfg.SIP.Language = *lang
	cfg.Call.Grace = 3 * time.Second
	cfg.ClusterListen = "127.0.0.1:0"
	cfg.Policy = policy.DefaultConfig()
	cfg.Policy.LimitHour, cfg.Policy.LimitDay, cfg.Policy.EscalateAfter = 3, 10, 2
	logw := io.Discard
	if *verbose {
		logw = stderr
	}
	log := newLogger(logw, cfg)
	fmt.Fprintf(stdout, "callguard demo: guard, PBX and carrier on loopback; policy: more than %d calls an hour → challenge, %d failed challenges → reject; grace %v\n",
		cfg.Policy.LimitHour, cfg.Policy.EscalateAfter, cfg.Call.Grace)
	g, err := startGuard(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer g.stop()
	if _, err := g.serveSIP(ctx); err != nil {
		return err
	}
	prompts, err := sounds.Load(*lang, "")
	if err != nil {
		return err
	}
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		return fmt.Errorf("start the simulated carrier: %w", err)
	}
	defer trunk.Close()

	rng := rand.New(rand.NewPCG(*seed, 0))
	plan, people := demoPlan(rng, *bots, *humans, *flagged, *redials)
	for _, p := range people {
		if !p.flagged {
			continue
		}
		_, err := g.callers.Command(ctx, p.number, caller.Command{Verb: caller.VerbBlock, Command: policy.Command{
			ID: "demo-flag-" + p.number, By: "demo", Why: "reported by the fraud team", Level: 2,
		}})
		if err != nil {
			return fmt.Errorf("flag %s: %w", p.number, err)
		}
	}
	fmt.Fprintf(stdout, "%s, %s (%d of them flagged by an admin), %s; seed %d\n\n",
		plural(*bots, "bot", "bots"), plural(*humans, "person", "people"), *flagged, plural(len(plan), "call", "calls"), *seed)

	d := &demoRun{trunk: trunk, pbx: pbx, target: g.sip.UDPAddr().String(), rec: sounds.NewRecognizer(prompts),
		digits: cfg.Call.CodeDigits, grace: cfg.Call.Grace}
	results := make([]demoResult, len(plan))
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	start := time.Now()
	for i, pc := range plan {
		who := pc.who
		// A bot's redials are sequential; everyone calls a moment apart.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := d.place(ctx, pc, d.method(i))
			mu.Lock()
			defer mu.Unlock()
			results[i] = r
			done++
			fmt.Fprintf(stdout, "[%3d/%d] %s\n", done, len(plan), r.line())
		})
		if who.bot {
			wg.Wait() // the bot waits for its call to end before redialling
		}
	}
	wg.Wait()
	fmt.Fprintf(stdout, "\nall %s done in %v\n\n", plural(len(plan), "call", "calls"), time.Since(start).Round(time.Second))
	return demoSummary(stdout, results, dir, people)
}

// demoDir makes the directory the demo keeps its event store in: dir
// when given (new, or empty of a store: a second demo in it would start
// from the first one's blocks), else a new one in the temporary directory.
func demoDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "callguard-demo-")
		if err != nil {
			return "", fmt.Errorf("make the demo's directory: %w", err)
		}
		return d, nil
	}
	ok, err := storeExists(dir)
	if err != nil {
		return "", err
	}
	if ok {
		return "", usageError{fmt.Sprintf("--dir %s already holds an event store: give the demo a new or empty directory", dir)}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make the demo's directory: %w", err)
	}
	// Absolute: the closing hint works from any directory.
	return filepath.Abs(dir)
}

// demoPlan lists the calls in the order they are placed.
func demoPlan(rng *rand.Rand, bots, humans, flagged, redials int) ([]demoCall, []*demoCaller) {
	var people []*demoCaller
	var plan []demoCall
	for i := range bots {
		b := &demoCaller{number: fmt.Sprintf("+7900%07d", 1000+i), bot: true}
		people = append(people, b)
		for n := range redials {
			plan = append(plan, demoCall{b, n + 1})
		}
	}
	for i := range humans {
		h := &demoCaller{number: fmt.Sprintf("+7916%07d", 2000+i), flagged: i < flagged}
		people = append(people, h)
		for n := range 1 + rng.IntN(2) {
			plan = append(plan, demoCall{h, n + 1})
		}
	}
	// Shuffle, but keep each caller's calls in order.
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	next := map[*demoCaller]int{}
	for i := range plan {
		next[plan[i].who]++
		plan[i].n = next[plan[i].who]
	}
	return plan, people
}

type demoRun struct {
	trunk  *siptest.FakeTrunk
	pbx    *siptest.RecordingPBX
	target string
	rec    *sounds.Recognizer
	digits int
	grace  time.Duration
}

// method picks how a person types: the three ways the guard understands.
func (d *demoRun) method(i int) siptest.DTMFMethod {
	return []siptest.DTMFMethod{siptest.DTMFRFC4733, siptest.DTMFInfoRelay, siptest.DTMFInBand}[i%3]
}

// place makes one call as who would: a person answers a challenge with
// the code heard in the prompt; a bot says nothing and waits.
func (d *demoRun) place(ctx context.Context, pc demoCall, method siptest.DTMFMethod) demoResult {
	who := pc.who
	r := demoResult{who: who, n: pc.n, method: method}
	bridgedBefore := d.bridged(who.number)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := d.trunk.Call(ctx, siptest.CallOptions{Target: d.target, Caller: who.number, Callee: demoCallee, Quiet: who.bot})
	if err != nil {
		r.outcome, r.err = "error", err
		return r
	}
	defer c.Close()
	final, err := c.WaitFinal(ctx)
	if err != nil {
		r.outcome, r.err = "error", err
		return r
	}
	r.finalState = final.Status
	if final.Status >= 300 {
		r.verdict, r.outcome = "reject", "rejected"
		return r
	}
	challenged := false
	for _, resp := range c.Responses() {
		if resp.Status == 183 {
			challenged = true
		}
	}
	if !challenged {
		r.verdict, r.outcome = "pass", "connected"
		time.Sleep(500 * time.Millisecond) // a short conversation
		_ = c.Hangup(ctx)
		return r
	}
	r.verdict = "challenge"
	if who.bot {
		after, err := c.WaitBye(ctx)
		r.outcome, r.byeAfter, r.err = "failed", after, err
		r.unbilled = err == nil && after < d.grace
		return r
	}
	code, err := c.HearCode(ctx, d.rec, siptest.HearOptions{Digits: d.digits})
	r.heard = code
	if err != nil {
		r.outcome, r.err = "error", fmt.Errorf("could not hear the code: %w", err)
		return r
	}
	if err := c.Type(ctx, code, siptest.DTMFOptions{Method: method}); err != nil {
		r.outcome, r.err = "error", err
		return r
	}
	// Passed: the guard bridges the call to the PBX.
	err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
		if d.bridged(who.number) > bridgedBefore {
			return nil
		}
		if _, after, ok := c.ByeReceived(); ok {
			return fmt.Errorf("%w: the guard hung up %v after answer", errDemoFailed, after)
		}
		return errors.New("not bridged yet")
	})
	if err != nil {
		r.outcome, r.err = "failed", err
		return r
	}
	r.outcome = "passed"
	time.Sleep(500 * time.Millisecond)
	_ = c.Hangup(ctx)
	return r
}

var errDemoFailed = errors.New("challenge failed")

// bridged counts the PBX's answered calls from number.
func (d *demoRun) bridged(number string) int {
	n := 0
	for _, pc := range d.pbx.Calls() {
		if _, ok := pc.Answered(); ok && strings.TrimPrefix(pc.Caller, "+") == strings.TrimPrefix(number, "+") {
			n++
		}
	}
	return n
}

func (r demoResult) line() string {
	kind := "person"
	if r.who.bot {
		kind = "bot"
	} else if r.who.flagged {
		kind = "flagged person"
	}
	head := fmt.Sprintf("%-14s %s call %d: ", kind, r.who.number, r.n)
	switch {
	case r.err != nil && r.outcome == "error":
		return head + "error: " + r.err.Error()
	case r.verdict == "reject":
		return head + fmt.Sprintf("rejected (%d), never answered: costs nothing", r.finalState)
	case r.verdict == "pass":
		return head + "passed straight to the PBX"
	case r.outcome == "passed":
		return head + fmt.Sprintf("challenged, heard %q, typed it by %s → connected to the PBX", r.heard, r.method)
	case r.who.bot:
		bill := "billed!"
		if r.unbilled {
			bill = "unbilled"
		}
		return head + fmt.Sprintf("challenged, typed nothing → guard hung up %.1fs after answer (%s)", r.byeAfter.Seconds(), bill)
	default:
		return head + fmt.Sprintf("challenged, heard %q → failed: %v", r.heard, r.err)
	}
}

// The outcome classes of the demo's summary, in the order it lists
// them. Every call falls in exactly one, so each line's parts add up to
// its total.
const (
	botPassed   = "passed to the PBX (under the hourly limit)"
	botUnbilled = "challenged and hung up inside the grace interval (unbilled)"
	botBilled   = "challenged and hung up after the grace interval (billed)"
	botRejected = "rejected unanswered"
	manPassed   = "passed straight to the PBX"
	manTyped    = "challenged and connected after typing the code"
	manFailed   = "challenged and failed"
	manRejected = "rejected"
	callError   = "went wrong (see above)"
)

// outcomeClass is the class of r among the constants above.
func (r demoResult) outcomeClass() string {
	switch {
	case r.outcome == "error":
		return callError
	case r.verdict == "reject" && r.who.bot:
		return botRejected
	case r.verdict == "reject":
		return manRejected
	case r.verdict == "pass" && r.who.bot:
		return botPassed
	case r.verdict == "pass":
		return manPassed
	case r.outcome == "passed" && !r.who.bot:
		return manTyped
	case r.who.bot && r.err == nil && r.unbilled:
		return botUnbilled
	case r.who.bot && r.err == nil:
		return botBilled
	case !r.who.bot:
		return manFailed
	}
	return callError
}

func demoSummary(w io.Writer, results []demoResult, dir string, people []*demoCaller) error {
	byVerdict := map[string]int{}
	bots, humans := map[string]int{}, map[string]int{} // calls by outcome class
	var botCalls, humanCalls, passed, failed, errs int
	for _, r := range results {
		byVerdict[r.verdict]++
		class := r.outcomeClass()
		if class == callError {
			errs++
		}
		if r.who.bot {
			botCalls++
			bots[class]++
		} else {
			humanCalls++
			humans[class]++
		}
		switch {
		case r.verdict == "challenge" && r.outcome == "passed":
			passed++
		case r.verdict == "challenge" && r.outcome == "failed":
			failed++
		}
	}
	// parts lists the count of each class: always, and the optional
	// ones when they happened.
	parts := func(byClass map[string]int, always, optional []string) string {
		var out []string
		for _, c := range always {
			out = append(out, fmt.Sprintf("%d %s", byClass[c], c))
		}
		for _, c := range optional {
			if byClass[c] > 0 {
				out = append(out, fmt.Sprintf("%d %s", byClass[c], c))
			}
		}
		return strings.Join(out, ", ")
	}
	botParts := parts(bots, []string{botPassed, botUnbilled, botRejected}, []string{botBilled, callError})
	manParts := parts(humans, []string{manPassed, manTyped}, []string{manFailed, manRejected, callError})
	humanConnected := humans[manPassed] + humans[manTyped]
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "calls by verdict\tpass %d, challenge %d, reject %d\n", byVerdict["pass"], byVerdict["challenge"], byVerdict["reject"])
	fmt.Fprintf(tw, "bot calls\t%d: %s\n", botCalls, botParts)
	fmt.Fprintf(tw, "people's calls\t%d: %s\n", humanCalls, manParts)
	fmt.Fprintf(tw, "human calls connected\t%d of %d\n", humanConnected, humanCalls)
	fmt.Fprintf(tw, "challenges\t%d passed, %d failed\n", passed, failed)
	if err := tw.Flush(); err != nil {
		return err
	}
	example := "NUMBER"
	for _, p := range people {
		if p.bot {
			example = p.number
			break
		}
	}
	fmt.Fprintf(w, "\nEvery decision above is an event, kept in %s. Why a number stands as it does:\n\n", dir)
	fmt.Fprintf(w, "  GUARD_DATA_DIR=%s callguard audit %s\n\n", shellQuote(dir), example)
	fmt.Fprintf(w, "(blacklist, report and callers read it the same way; remove the directory when done)\n")
	if errs > 0 {
		return fmt.Errorf("%s went wrong", plural(errs, "call", "calls"))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:=@%,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
