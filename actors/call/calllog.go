package call

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/callguard/callguard/events/schema"
)

// CallLog writes the call log: one line at info level for every call when
// it ends, what an operator greps for, e.g.
//
//	level=INFO msg=call call=5f0c… sipCallId=a84b4c76e66710@carrier caller=+79990001122 callee=+78005553535
//	  verdict=reject blockLevel=7 rule=manual action=reject end=rejected by=guard status=603 decideMs=1.2 callMs=3.4 billed=false
//
// The line holds the guard's call ID and the trunk's Call-ID, the caller
// and the callee, the verdict (with its level and rule) and what the
// guard did with it (action: pass in observe mode), the challenge's
// outcome, how the call ended (the end cause, who ended it, and the final
// SIP status when it was never answered: 486 when the PBX was busy), the
// decision's latency, the call's length from INVITE to end and its
// answered time, and whether the carrier bills it. It never holds the
// challenge code or the keys typed, nor a store's error text.
//
// The reject path is what a flood hits, so the lines of calls the guard
// refused (a reject carried out, an overload answer, the store-down
// policy failing closed) go through a token bucket of perSecond lines a
// second (a second's worth of burst); the others are counted and Run
// writes how many every interval. A suppressed call costs a lock and the
// clock, nothing allocated. Calls that were passed or challenged always
// get their line: the PBX and the challenges' media bound their rate.
//
// A nil *CallLog writes nothing. It is safe for concurrent use.
type CallLog struct {
	h         slog.Handler
	clock     func() time.Time
	perSecond float64
	refused   *rate.Limiter

	suppressed atomic.Uint64
}

// NewCallLog returns the call log writing to log, with at most
// refusedPerSecond lines a second for refused calls (0: none). clock (nil:
// time.Now) drives the token bucket.
func NewCallLog(log *slog.Logger, refusedPerSecond int, clock func() time.Time) *CallLog {
	if clock == nil {
		clock = time.Now
	}
	n := max(0, refusedPerSecond)
	return &CallLog{h: log.Handler(), clock: clock, perSecond: float64(n), refused: rate.NewLimiter(rate.Limit(n), n)}
}

// DefaultSuppressedEvery is how often Run reports suppressed lines.
const DefaultSuppressedEvery = 10 * time.Second

// Run reports, every interval (DefaultSuppressedEvery when 0) until ctx
// ends and once more then, how many refused calls had no line since the
// last report; nothing when none.
func (l *CallLog) Run(ctx context.Context, every time.Duration) {
	if l == nil {
		return
	}
	if every <= 0 {
		every = DefaultSuppressedEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.ReportSuppressed(context.WithoutCancel(ctx))
			return
		case <-t.C:
			l.ReportSuppressed(ctx)
		}
	}
}

// ReportSuppressed writes how many refused calls had no line since the
// last report, if any.
func (l *CallLog) ReportSuppressed(ctx context.Context) {
	if l == nil {
		return
	}
	n := l.suppressed.Swap(0)
	if n == 0 {
		return
	}
	r := slog.NewRecord(l.clock(), slog.LevelInfo, "call log: refused calls not logged (rate limit)", 0)
	r.AddAttrs(slog.Uint64("suppressed", n), slog.Float64("perSecond", l.perSecond))
	_ = l.h.Handle(ctx, r)
}

// Suppressed returns how many refused calls' lines were suppressed and
// not yet reported.
func (l *CallLog) Suppressed() uint64 {
	if l == nil {
		return 0
	}
	return l.suppressed.Load()
}

// allow takes a token for a refused call's line, or counts it suppressed.
func (l *CallLog) allow() bool {
	ok := l.refused.AllowN(l.clock(), 1)
	if !ok {
		l.suppressed.Add(1)
	}
	return ok
}

// logCall writes the call's line, at its end (the finish output); detail
// is the SIP side's note on the end.
func (a *callActor) logCall(detail string) {
	l := a.d.CallLog
	if l == nil {
		return
	}
	ctx := context.Background()
	if !l.h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	m, e := a.m, &a.ended
	if m.action == schema.Reject && !l.allow() {
		return
	}
	// Gathered on the stack and added at once: the record then grows
	// its attribute slice once.
	var buf [20]slog.Attr
	as := append(buf[:0],
		slog.String("call", a.setup.ID),
		slog.String("sipCallId", a.setup.SIPCallID),
		slog.String("caller", a.setup.Caller.Key),
		slog.String("callee", a.setup.Callee),
	)
	switch {
	case m.busy:
		as = append(as, slog.String("verdict", "none"), slog.Bool("busy", true))
	case m.storeDown:
		as = append(as, slog.String("verdict", "none"), slog.Bool("storeDown", true))
	default:
		as = append(as, slog.String("verdict", string(m.verdict.Verdict)), slog.Int("blockLevel", m.verdict.Level))
		if m.verdict.Rule != "" {
			as = append(as, slog.String("rule", string(m.verdict.Rule)))
		}
	}
	as = append(as, slog.String("action", string(m.action)))
	if !m.storeDown && !m.busy && m.action == schema.Pass && m.verdict.Verdict == schema.Challenge && m.setup.ChallengeFallback != "" && a.cfg.Mode != schema.Observe {
		as = append(as, slog.String("actionReason", m.setup.ChallengeFallback))
	}
	if a.cfg.Mode == schema.Observe {
		as = append(as, slog.String("mode", string(a.cfg.Mode)))
	}
	if m.outcome != "" {
		as = append(as, slog.String("challenge", string(m.outcome)))
	}
	as = append(as, slog.String("end", string(e.Cause)), slog.String("by", string(e.By)))
	if e.Status != 0 {
		as = append(as, slog.Int("status", e.Status))
	}
	as = append(as, slog.Float64("decideMs", ms(a.took)))
	if !a.setup.Received.IsZero() && !e.At.IsZero() {
		as = append(as, slog.Float64("callMs", ms(e.At.Sub(a.setup.Received))))
	}
	if e.AnsweredAt != nil {
		as = append(as, slog.Int64("talkMs", e.DurationMs))
	}
	as = append(as, slog.Bool("billed", e.Billed))
	if detail != "" {
		as = append(as, slog.String("detail", detail))
	}
	r := slog.NewRecord(a.d.Clock(), slog.LevelInfo, "call", 0)
	r.AddAttrs(as...)
	_ = l.h.Handle(ctx, r)
}

// ms is d in milliseconds, to a tenth.
func ms(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}
