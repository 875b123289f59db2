package line

import (
	"errors"
	"fmt"
	"time"
)

// Settings are the under-attack detection settings of a line. Each env tag
// names the field's environment variable under the binary's GUARD_
// prefix; cmd reads them.
type Settings struct {
	// Rate is the threshold: more new or unverified callers a second than
	// this, averaged over Window, switch the line's under-attack mode on.
	// 0 turns automatic detection off (an admin can still switch it).
	Rate float64 `env:"ATTACK_RATE" envDefault:"10" desc:"under-attack mode: more callers a second than this to one line from numbers that are new (not whitelisted, not verified, no call in the last day), over GUARD_ATTACK_WINDOW, challenge every caller of the line who is not whitelisted or verified (0: only by admin command)"`
	// Window is the sliding window the rate is averaged over: short, so
	// that a flood is seen within about a second, long enough that a few
	// callers at once are not a flood.
	Window time.Duration `env:"ATTACK_WINDOW" envDefault:"1s" desc:"the sliding window GUARD_ATTACK_RATE is measured over"`
	// Calm is how long the rate must stay at or below Rate before the
	// mode switches off by itself.
	Calm time.Duration `env:"ATTACK_CALM" envDefault:"60s" desc:"under-attack mode ends this long after the rate of new callers fell to GUARD_ATTACK_RATE or below"`
}

// ErrSettings is the sentinel of every Settings.Validate error.
var ErrSettings = errors.New("attack detection settings")

// Validate reports what is wrong with s.
func (s Settings) Validate() error {
	var errs []error
	if s.Rate < 0 {
		errs = append(errs, fmt.Errorf("%w: rate %v is negative", ErrSettings, s.Rate))
	}
	if s.Window < 100*time.Millisecond || s.Window > time.Hour {
		errs = append(errs, fmt.Errorf("%w: window %v, want 100ms to 1h", ErrSettings, s.Window))
	}
	if s.Calm < time.Second || s.Calm > 24*time.Hour {
		errs = append(errs, fmt.Errorf("%w: calm %v, want 1s to 24h", ErrSettings, s.Calm))
	}
	return errors.Join(errs...)
}

// Detector measures a line's rate of new callers over a sliding window and
// says when the under-attack mode should start or end. It is pure: the
// time is given with every input, so tests drive it with a fake clock.
// The line's grain owns one (one goroutine); it is not safe for
// concurrent use.
type Detector struct {
	s       Settings
	samples []sample // oldest first, within the window of the latest time
	// high is the last time the rate was above the threshold (or the mode
	// started); the mode ends Calm after it.
	high time.Time
	// peak is the highest rate seen since the mode started.
	peak float64
}

type sample struct {
	at time.Time
	n  int
}

// NewDetector returns a detector applying s.
func NewDetector(s Settings) *Detector { return &Detector{s: s} }

// Settings returns what d applies.
func (d *Detector) Settings() Settings { return d.s }

// Add counts n new callers at at (a batch from one node).
func (d *Detector) Add(at time.Time, n int) {
	if n <= 0 {
		return
	}
	d.samples = append(d.samples, sample{at, n})
}

// Rate is the new callers a second over the window ending at now.
func (d *Detector) Rate(now time.Time) float64 {
	edge := now.Add(-d.s.Window)
	drop, total := 0, 0
	for i, s := range d.samples {
		if !s.at.After(edge) {
			drop = i + 1
			continue
		}
		total += s.n
	}
	if drop > 0 {
		d.samples = append(d.samples[:0], d.samples[drop:]...)
	}
	return float64(total) / d.s.Window.Seconds()
}

// Verdict is what Check says.
type Verdict int

const (
	// Stay: no change.
	Stay Verdict = iota
	// Start: the rate exceeds the threshold; switch the mode on.
	Start
	// End: the rate has been at or below the threshold for Calm.
	End
)

// Check says at now whether the mode, on or not (held: switched on by an
// admin to stay on until switched off), should change, and the rate it
// measured.
func (d *Detector) Check(on, held bool, now time.Time) (Verdict, float64) {
	rate := d.Rate(now)
	high := d.s.Rate > 0 && rate > d.s.Rate
	if high {
		d.high = now
	}
	switch {
	case !on && high:
		d.peak = rate
		return Start, rate
	case !on:
		return Stay, rate
	}
	d.peak = max(d.peak, rate)
	if held || high {
		return Stay, rate
	}
	if d.high.IsZero() {
		// On without a high rate seen here (switched on by an admin, or
		// an activation that found the mode on): calm counts from now.
		d.high = now
	}
	if now.Sub(d.high) >= d.s.Calm {
		return End, rate
	}
	return Stay, rate
}

// Started tells d the mode started at at (by the detector or an admin):
// calm counts from then.
func (d *Detector) Started(at time.Time) { d.high, d.peak = at, max(d.peak, 0) }

// Ended tells d the mode ended.
func (d *Detector) Ended() { d.high, d.peak = time.Time{}, 0 }

// Peak is the highest rate seen since the mode started.
func (d *Detector) Peak() float64 { return d.peak }
