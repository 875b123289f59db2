package call

import (
	"context"
	"log/slog"
)

// Logger is log.With(k1, v1, k2, v2) for a logger made on every call (the
// call actor's and the SIP session's):
// the two attributes are kept aside and given to the handler only when a
// record is written, so a call that logs nothing (the common case) costs
// two small allocations instead of With's attribute slice, logger clone
// and the handler's pre-formatted copy.
func Logger(log *slog.Logger, k1, v1, k2, v2 string) *slog.Logger {
	return slog.New(&lazyAttrs{next: log.Handler(), attrs: [2]slog.Attr{slog.String(k1, v1), slog.String(k2, v2)}})
}

// lazyAttrs adds attrs before a record's own, as WithAttrs would.
type lazyAttrs struct {
	next  slog.Handler
	attrs [2]slog.Attr
}

func (h *lazyAttrs) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs[:]...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *lazyAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return h.next.WithAttrs(h.attrs[:]).WithAttrs(as)
}

func (h *lazyAttrs) WithGroup(name string) slog.Handler {
	return h.next.WithAttrs(h.attrs[:]).WithGroup(name)
}
