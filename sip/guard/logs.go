package guard

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// sipgo logs every datagram it cannot parse, with its bytes, at error
// level; a flood of garbage (a scanner, an attack, a broken trunk) would
// turn that into a flood of log lines. boundedHandler sits between sipgo
// and the guard's logger: it lets at most perSecond records through each
// second, says how many it held back when the next one passes, and cuts
// long attribute values (the datagram bytes) to maxAttr bytes. It also
// counts parse failures for the guard's statistics.
type boundedHandler struct {
	next slog.Handler
	st   *boundState
}

type boundState struct {
	perSecond int
	maxAttr   int
	onRecord  func(r slog.Record)

	mu         sync.Mutex
	window     time.Time
	n          int
	suppressed int
}

func newBoundedLogger(next *slog.Logger, perSecond, maxAttr int, onRecord func(slog.Record)) *slog.Logger {
	return slog.New(&boundedHandler{next: next.Handler(), st: &boundState{perSecond: perSecond, maxAttr: maxAttr, onRecord: onRecord}})
}

// Enabled lets errors through even when the guard's logger drops them, so
// that onRecord still counts them.
func (h *boundedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *boundedHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.st.onRecord != nil {
		h.st.onRecord(r)
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	pass, suppressed := h.st.admit(r.Time)
	if !pass {
		return nil
	}
	if suppressed > 0 {
		note := slog.NewRecord(r.Time, slog.LevelWarn, "SIP stack log records suppressed (rate limit)", 0)
		note.AddAttrs(slog.Int("suppressed", suppressed))
		if err := h.next.Handle(ctx, note); err != nil {
			return err
		}
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.cut(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *boundedHandler) cut(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindString && len(v.String()) > h.st.maxAttr {
		s := v.String()
		return slog.String(a.Key, strings.ToValidUTF8(s[:h.st.maxAttr], "?")+"...(cut)")
	}
	return a
}

func (h *boundedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	cut := make([]slog.Attr, len(as))
	for i, a := range as {
		cut[i] = h.cut(a)
	}
	return &boundedHandler{next: h.next.WithAttrs(cut), st: h.st}
}

func (h *boundedHandler) WithGroup(name string) slog.Handler {
	return &boundedHandler{next: h.next.WithGroup(name), st: h.st}
}

// admit applies the per-second budget, returning whether the record may
// pass and, if so, how many were held back before it.
func (s *boundState) admit(at time.Time) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.Sub(s.window) >= time.Second || at.Before(s.window) {
		s.window, s.n = at, 0
	}
	if s.n >= s.perSecond {
		s.suppressed++
		return false, 0
	}
	s.n++
	n := s.suppressed
	s.suppressed = 0
	return true, n
}
