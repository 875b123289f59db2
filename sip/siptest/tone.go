package siptest

import (
	"math"
	"time"
)

// Tone is one pure tone of a Pattern.
type Tone struct {
	// Hz is the frequency; a multiple of 50 Hz falls exactly on a bin of
	// the 20 ms analysis blocks.
	Hz float64
	// Duration is how long it sounds; at least 100 ms to be found.
	Duration time.Duration
}

// Pattern is a known sequence of pure tones: one side of a bridged call
// sends it and the test looks for it on the other side, proof that audio
// crossed the guard. Single tones never look like DTMF (which takes one
// tone of each of two groups), so the guard's in-band detector ignores
// them.
type Pattern []Tone

// DefaultPattern is three 200 ms tones at 500, 1100 and 1900 Hz, away from
// the DTMF frequencies (697-941 and 1209-1633 Hz) and within the
// telephone band.
var DefaultPattern = Pattern{{Hz: 500, Duration: 200 * time.Millisecond}, {Hz: 1100, Duration: 200 * time.Millisecond}, {Hz: 1900, Duration: 200 * time.Millisecond}}

// PCM renders the pattern as 8 kHz audio at level dBm0 (-10 is a loud
// voice; 0 means -10).
func (p Pattern) PCM(level float64) []int16 {
	if level == 0 {
		level = -10
	}
	// 0 dBm0 is a sine of peak 22 301 on the 16-bit scale G.711 uses
	// (ITU-T G.711 table 5: the digital milliwatt).
	amp := 22301 * math.Pow(10, level/20)
	var out []int16
	for _, t := range p {
		n := int(t.Duration * 8000 / time.Second)
		w := 2 * math.Pi * t.Hz / 8000
		for i := range n {
			out = append(out, int16(math.Round(amp*math.Sin(w*float64(i)))))
		}
	}
	return out
}

// FoundIn reports whether pcm (8 kHz) contains the pattern: each tone, in
// order, dominant for most of its duration, with at most 100 ms of
// something else between two tones. It tolerates G.711 noise, a changed
// level, and leading or trailing audio of any kind.
func (p Pattern) FoundIn(pcm []int16) bool {
	if len(p) == 0 {
		return true
	}
	labels := p.label(pcm)
	// Run-length encode the block labels.
	type run struct{ label, n int }
	var runs []run
	for _, l := range labels {
		if len(runs) > 0 && runs[len(runs)-1].label == l {
			runs[len(runs)-1].n++
		} else {
			runs = append(runs, run{l, 1})
		}
	}
	const maxGapBlocks = 5 // 100 ms
	for start := range runs {
		want, gap := 0, 0
		for _, r := range runs[start:] {
			need := max(2, int(p[want].Duration/frameDuration)-3)
			switch {
			case r.label == want && r.n >= need:
				want, gap = want+1, 0
			case want > 0 && r.n+gap <= maxGapBlocks:
				gap += r.n
			default:
				want = -1
			}
			if want < 0 || want == len(p) {
				break
			}
		}
		if want == len(p) {
			return true
		}
	}
	return false
}

// label gives each 20 ms block of pcm the index of the pattern's tone that
// holds most of its energy, or -1.
func (p Pattern) label(pcm []int16) []int {
	const n = frameSamples
	var out []int
	for off := 0; off+n <= len(pcm); off += n {
		block := pcm[off : off+n]
		energy := 0.0
		for _, s := range block {
			energy += float64(s) * float64(s)
		}
		best := -1
		if energy > float64(n)*100*100 { // quieter than about -47 dBm0 is silence
			for i, t := range p {
				// A pure tone on a bin puts |X|^2 = (A N / 2)^2 there and
				// has energy A^2 N / 2: the ratio below is 1 for it.
				if goertzel(block, t.Hz)/(energy*float64(n)/2) > 0.5 {
					best = i
					break
				}
			}
		}
		out = append(out, best)
	}
	return out
}

// goertzel returns |X(f)|^2 of block at frequency hz (8 kHz sampling).
func goertzel(block []int16, hz float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*hz/8000)
	var s1, s2 float64
	for _, x := range block {
		s := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}
