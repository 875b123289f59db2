package line

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func settings() Settings { return Settings{Rate: 10, Window: 2 * time.Second, Calm: 60 * time.Second} }

// feed gives d perSecond new callers in batches every 200 ms from start
// for dur, checking after each batch, and returns the time of the first
// verdict want (zero if none).
func feed(d *Detector, on, held bool, start time.Time, dur time.Duration, perSecond int, want Verdict) time.Time {
	per := perSecond / 5
	for at := start.Add(200 * time.Millisecond); !at.After(start.Add(dur)); at = at.Add(200 * time.Millisecond) {
		d.Add(at, per)
		if v, _ := d.Check(on, held, at); v == want {
			return at
		}
	}
	return time.Time{}
}

func TestDetectorStartsOnAFloodWithinASecond(t *testing.T) {
	d := NewDetector(settings())
	at := feed(d, false, false, t0, 10*time.Second, 30, Start)
	if at.IsZero() {
		t.Fatal("a flood of 30 new callers a second did not start the mode")
	}
	// 30/s: 24 callers in the 2 s window (12/s > 10) after 0.8 s.
	if took := at.Sub(t0); took != 800*time.Millisecond {
		t.Fatalf("started after %v, want 800ms", took)
	}
	if r := d.Rate(at); r != 12 {
		t.Fatalf("rate %v, want 12", r)
	}
}

func TestDetectorIgnoresNormalTraffic(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Settings
		rate int
	}{
		{"below the threshold", settings(), 10}, // 10/s is not more than 10
		{"detection off", Settings{Rate: 0, Window: 2 * time.Second, Calm: time.Minute}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDetector(tc.s)
			if at := feed(d, false, false, t0, time.Minute, tc.rate, Start); !at.IsZero() {
				t.Fatalf("started at %v", at)
			}
		})
	}
}

func TestDetectorEndsAfterCalm(t *testing.T) {
	d := NewDetector(settings())
	start := feed(d, false, false, t0, 5*time.Second, 50, Start)
	if start.IsZero() {
		t.Fatal("not started")
	}
	d.Started(start)
	// The flood goes on until t0+30s: no end while it lasts.
	if at := feed(d, true, false, start, 30*time.Second-start.Sub(t0), 50, End); !at.IsZero() {
		t.Fatalf("ended during the flood at %v", at)
	}
	last := t0.Add(30 * time.Second) // the last batch; high until the window drains
	if got := d.Peak(); got != 50 {
		t.Fatalf("peak %v, want 50", got)
	}
	// Quiet from then on: the window drains within 2 s, and the mode ends
	// Calm after the rate was last above the threshold.
	var ended time.Time
	for at := last; at.Before(last.Add(2 * time.Minute)); at = at.Add(100 * time.Millisecond) {
		if v, _ := d.Check(true, false, at); v == End {
			ended = at
			break
		}
	}
	if ended.IsZero() {
		t.Fatal("never ended")
	}
	if ended.Before(last.Add(60*time.Second)) || ended.After(last.Add(62*time.Second)) {
		t.Fatalf("ended %v after the flood, want 60 to 62 s", ended.Sub(last))
	}
	// A held mode never ends by itself.
	d2 := NewDetector(settings())
	d2.Started(t0)
	for at := t0; at.Before(t0.Add(10 * time.Minute)); at = at.Add(time.Second) {
		if v, _ := d2.Check(true, true, at); v != Stay {
			t.Fatalf("held mode: %v at %v", v, at)
		}
	}
	// A manual mode without hold ends after calm counted from its start.
	d3 := NewDetector(settings())
	d3.Started(t0)
	if v, _ := d3.Check(true, false, t0.Add(59*time.Second)); v != Stay {
		t.Fatalf("manual mode ended early: %v", v)
	}
	if v, _ := d3.Check(true, false, t0.Add(60*time.Second)); v != End {
		t.Fatalf("manual mode without hold did not end after calm: %v", v)
	}
}

// Batches of one window do not count in the next.
func TestDetectorWindowSlides(t *testing.T) {
	d := NewDetector(settings())
	d.Add(t0, 15)
	d.Add(t0.Add(1500*time.Millisecond), 6)
	if r := d.Rate(t0.Add(1900 * time.Millisecond)); r != 10.5 {
		t.Fatalf("rate %v, want 10.5", r)
	}
	if r := d.Rate(t0.Add(2 * time.Second)); r != 3 {
		t.Fatalf("rate at the window's edge %v, want 3 (the first batch out)", r)
	}
	if len(d.samples) != 1 {
		t.Fatalf("%d samples kept, want 1", len(d.samples))
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := settings().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Settings{
		{Rate: -1, Window: time.Second, Calm: time.Minute},
		{Rate: 1, Window: 10 * time.Millisecond, Calm: time.Minute},
		{Rate: 1, Window: time.Second, Calm: 0},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: valid", s)
		}
	}
}

func TestValidLine(t *testing.T) {
	for s, want := range map[string]bool{
		"+78005551234": true, "+7800": true, "78005551234": false, "+7800555123x": false,
		"": false, "+": false, "+1234567890123456": false, "anonymous": false,
	} {
		if got := ValidLine(s); got != want {
			t.Errorf("ValidLine(%q) = %v", s, got)
		}
	}
}
