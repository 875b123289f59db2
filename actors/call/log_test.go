package call

import (
	"bytes"
	"io"
	"log/slog"
	"testing"
)

// TestCallLoggerWritesAsWith: a call's logger writes what log.With would,
// with and without further attributes and groups.
func TestCallLoggerWritesAsWith(t *testing.T) {
	write := func(mk func(*slog.Logger) *slog.Logger) string {
		var b bytes.Buffer
		h := slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}})
		l := mk(slog.New(h).With("component", "sip"))
		l.Info("one", "k", 1)
		l.With("x", "y").Warn("two")
		l.WithGroup("g").Error("three", "k", 2)
		l.Debug("dropped")
		return b.String()
	}
	want := write(func(l *slog.Logger) *slog.Logger { return l.With("call", "c1", "callId", "abc@host") })
	got := write(func(l *slog.Logger) *slog.Logger { return Logger(l, "call", "c1", "callId", "abc@host") })
	if got != want {
		t.Errorf("callLogger wrote\n%s\nlog.With writes\n%s", got, want)
	}
}

// BenchmarkCallLogger: the per-call logger on a JSON handler at Info,
// against log.With.
func BenchmarkCallLogger(b *testing.B) {
	base := slog.New(slog.NewJSONHandler(io.Discard, nil)).With("component", "sip")
	b.Run("With", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			loggerSink = base.With("call", "0b6b1b2e-2c1d-5f4e-9a3b-6c7d8e9f0a1b", "callId", "abc@host")
		}
	})
	b.Run("callLogger", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			loggerSink = Logger(base, "call", "0b6b1b2e-2c1d-5f4e-9a3b-6c7d8e9f0a1b", "callId", "abc@host")
		}
	})
}

var loggerSink *slog.Logger
