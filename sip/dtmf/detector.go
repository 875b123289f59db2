package dtmf

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// The DTMF frequency plan (ITU-T Q.23): a key is one low-group (row) tone
// plus one high-group (column) tone.
var (
	rowFreqs = [4]float64{697, 770, 852, 941}
	colFreqs = [4]float64{1209, 1336, 1477, 1633}
	keypad   = [4][4]rune{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
)

// SampleRate is the sample rate of the audio the detector and the tone
// generator work on: G.711's.
const SampleRate = 8000

// Analysis geometry. Each analysis window is 20 ms (160 samples) and a new
// window starts every 10 ms, so tone onsets and ends are timed to 10 ms.
// With the Hann window below, 20 ms still keeps the closest DTMF tones
// (697 and 770 Hz, 73 Hz apart) more than 9 dB apart at ±1.5 % frequency
// error, while a 20 ms block matches the RTP frame and reacts quickly.
const (
	windowSize = 160
	hopSize    = 80
	hop        = hopSize * time.Second / SampleRate
	window     = windowSize * time.Second / SampleRate
)

// hann is the analysis window, with its sum and its sum of squares. A
// rectangular window would lose up to 4 dB on a tone 1.5 % off its nominal
// frequency (the tolerance ITU-T Q.24 asks receivers to accept) and fail
// the purity test on it; the Hann window's wider main lobe loses under
// 1.5 dB there while its low sidelobes still keep 697 and 770 Hz 9 dB apart.
var hann, hannSum, hannPower = func() (w [windowSize]float64, sum, power float64) {
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*(float64(i)+0.5)/windowSize)
		sum += w[i]
		power += w[i] * w[i]
	}
	return w, sum, power
}()

// maxHalfRatio is the least share of the louder half's energy the quieter
// half of a window must hold for the window to hold a steady tone (3 dB).
const maxHalfRatio = 0.5

// referencePeak is the peak amplitude, in 16-bit linear PCM, of a 0 dBm0
// sine: G.711 µ-law overloads at +3.17 dBm0, which decodes to ±32124.
const referencePeak = 22301.0

// DetectorConfig tunes the in-band detector. The zero value of a field
// selects its default; Validate reports values that make no sense.
type DetectorConfig struct {
	// MinLevel is the weakest tone accepted, per frequency, in dBm0.
	// Default −30: ITU-T Q.24 receivers accept down to about −25 dBm0 per
	// tone; phones send −4 to −10. Lower values admit quieter speech.
	MinLevel float64
	// MaxForwardTwist is how much louder, in dB, the high-group tone may be
	// than the low-group one (phones pre-emphasise the high group). Default 8.
	MaxForwardTwist float64
	// MaxReverseTwist is how much louder the low-group tone may be than the
	// high-group one. Default 6 (Q.24's most common figure is 4; G.711 paths
	// are flat, so a little more is safe and tolerates lossy analogue legs).
	MaxReverseTwist float64
	// MinPeakRatio is how many dB each of the two tones must stand above
	// every other frequency of its group. Default 8.
	MinPeakRatio float64
	// MinPurity is the share of the window's energy the two tones must hold
	// (0–1). Pure DTMF holds nearly all of it; speech and music spread their
	// energy over harmonics and formants. Default 0.7.
	MinPurity float64
	// MinDuration is how long one key's tone must persist to count.
	// Default 40 ms, the shortest tone ITU-T Q.24 requires receivers to
	// accept. It is rounded up to whole 10 ms steps after the first 20 ms.
	MinDuration time.Duration
	// MinGap is how long the tone must be absent before the next key,
	// the same key included, can count. Default 30 ms: ITU-T Q.24 pauses
	// are at least 40 ms, and an interruption of 10 ms is a dropout within
	// one press, not two presses.
	MinGap time.Duration
}

// DefaultDetectorConfig returns the defaults described on each field.
func DefaultDetectorConfig() DetectorConfig {
	return DetectorConfig{
		MinLevel:        -30,
		MaxForwardTwist: 8,
		MaxReverseTwist: 6,
		MinPeakRatio:    8,
		MinPurity:       0.7,
		MinDuration:     40 * time.Millisecond,
		MinGap:          30 * time.Millisecond,
	}
}

// ErrConfig is wrapped by the errors of DetectorConfig.Validate.
var ErrConfig = errors.New("invalid DTMF detector configuration")

// withDefaults fills zero fields with their defaults.
func (c DetectorConfig) withDefaults() DetectorConfig {
	d := DefaultDetectorConfig()
	if c.MinLevel == 0 {
		c.MinLevel = d.MinLevel
	}
	if c.MaxForwardTwist == 0 {
		c.MaxForwardTwist = d.MaxForwardTwist
	}
	if c.MaxReverseTwist == 0 {
		c.MaxReverseTwist = d.MaxReverseTwist
	}
	if c.MinPeakRatio == 0 {
		c.MinPeakRatio = d.MinPeakRatio
	}
	if c.MinPurity == 0 {
		c.MinPurity = d.MinPurity
	}
	if c.MinDuration == 0 {
		c.MinDuration = d.MinDuration
	}
	if c.MinGap == 0 {
		c.MinGap = d.MinGap
	}
	return c
}

// Validate reports the first field (after defaults) out of range.
func (c DetectorConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MinLevel > 3 || c.MinLevel < -60:
		return fmt.Errorf("%w: MinLevel %v dBm0 outside [-60, 3]", ErrConfig, c.MinLevel)
	case c.MaxForwardTwist < 0 || c.MaxReverseTwist < 0:
		return fmt.Errorf("%w: twist limits must not be negative", ErrConfig)
	case c.MinPeakRatio < 0:
		return fmt.Errorf("%w: MinPeakRatio must not be negative", ErrConfig)
	case c.MinPurity < 0 || c.MinPurity > 1:
		return fmt.Errorf("%w: MinPurity %v outside [0, 1]", ErrConfig, c.MinPurity)
	case c.MinDuration < window || c.MinDuration > 2*time.Second:
		return fmt.Errorf("%w: MinDuration %v outside [%v, 2s]", ErrConfig, c.MinDuration, window)
	case c.MinGap < hop || c.MinGap > 2*time.Second:
		return fmt.Errorf("%w: MinGap %v outside [%v, 2s]", ErrConfig, c.MinGap, hop)
	}
	return nil
}

// Detector finds DTMF keys in 8 kHz 16-bit PCM by the Goertzel algorithm:
// every 10 ms it measures the power at the eight DTMF frequencies over the
// last 20 ms, and calls the window a hit for key k when
//
//   - the strongest row and column tones are each at least MinLevel;
//   - their levels differ by no more than the twist limits;
//   - each stands MinPeakRatio above the other tones of its group;
//   - together they hold MinPurity of the window's energy;
//   - the two halves of the window carry energy within 3 dB of each other
//     (a steady tone, not an onset or a decay).
//
// A key counts when consecutive hits for it span MinDuration, and the next
// key only after MinGap without it. The purity test is what rejects speech
// (the prompts the guard plays come back as echo); persistence rejects
// clicks and short vowels that pass it by chance.
//
// A Detector is not safe for concurrent use: one RTP read loop owns it.
type Detector struct {
	cfg          DetectorConfig
	minPower     float64 // mean power A²/2 of a tone at MinLevel
	forward      float64 // power ratios
	reverse      float64
	peak         float64
	hitsToStart  int
	missesToStop int

	coeff [8]float64
	detectorState
}

// detectorState is what a Detector learns from the audio; Reset clears it.
type detectorState struct {
	buf    [windowSize]float64
	filled int // samples in buf
	fresh  int // samples since the last analysis

	candidate rune // key of the current run of hits
	hits      int
	active    rune // key already reported and still sounding
	misses    int
}

// NewDetector returns a detector with cfg (zero fields take defaults).
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	amp := referencePeak * math.Pow(10, cfg.MinLevel/20)
	d := &Detector{
		cfg:      cfg,
		minPower: amp * amp / 2,
		forward:  math.Pow(10, cfg.MaxForwardTwist/10),
		reverse:  math.Pow(10, cfg.MaxReverseTwist/10),
		peak:     math.Pow(10, cfg.MinPeakRatio/10),
		// A run of n hits spans window + (n-1)·hop.
		hitsToStart:  1 + int((cfg.MinDuration-window+hop-1)/hop),
		missesToStop: int((cfg.MinGap + hop - 1) / hop),
	}
	for i, f := range append(rowFreqs[:], colFreqs[:]...) {
		d.coeff[i] = 2 * math.Cos(2*math.Pi*f/SampleRate)
	}
	return d, nil
}

// Write feeds samples and returns the keys whose tones reached MinDuration
// within them, in order (usually none). Samples may come in any chunk size.
func (d *Detector) Write(pcm []int16) []rune {
	var keys []rune
	for len(pcm) > 0 {
		// Fill the window, then analyse every hopSize new samples.
		n := min(len(pcm), hopSize-d.fresh)
		if d.filled < windowSize {
			n = min(len(pcm), windowSize-d.filled)
		}
		d.push(pcm[:n])
		pcm = pcm[n:]
		if d.filled == windowSize && d.fresh >= hopSize {
			d.fresh = 0
			if k, ok := d.step(d.analyse()); ok {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// push appends samples to the window, sliding out the oldest.
func (d *Detector) push(pcm []int16) {
	if over := d.filled + len(pcm) - windowSize; over > 0 {
		copy(d.buf[:], d.buf[over:d.filled])
		d.filled -= over
	}
	for _, s := range pcm {
		d.buf[d.filled] = float64(s)
		d.filled++
	}
	d.fresh += len(pcm)
}

// step advances the persistence state machine by one window whose hit is
// key (0 for none) and reports a key when one starts counting.
func (d *Detector) step(key rune) (rune, bool) {
	if d.active != 0 {
		if key == d.active {
			d.misses = 0
			return 0, false
		}
		d.misses++
		if d.misses < d.missesToStop {
			return 0, false
		}
		d.active, d.candidate, d.hits = 0, 0, 0
		// The window that completed the gap may already hold the next key.
	}
	if key == 0 {
		d.candidate, d.hits = 0, 0
		return 0, false
	}
	if key != d.candidate {
		d.candidate, d.hits = key, 0
	}
	d.hits++
	if d.hits < d.hitsToStart {
		return 0, false
	}
	d.active, d.misses = key, 0
	return key, true
}

// analyse classifies the current window: the key whose tones it holds, or 0.
func (d *Detector) analyse() rune {
	var (
		power  [8]float64
		x      [windowSize]float64
		total  float64
		halves [2]float64
	)
	for i, v := range d.buf {
		x[i] = v * hann[i]
		total += x[i] * x[i]
		halves[2*i/windowSize] += v * v
	}
	total /= hannPower // mean power of the window
	if total < d.minPower {
		return 0 // too quiet to hold even one tone at MinLevel
	}
	// A tone is steady: both halves of the window carry about the same
	// energy. This rejects windows that only partly overlap a tone (so a
	// tone's measured duration is its real one, not stretched by up to a
	// window at each end) and the onsets and decays of speech.
	if min(halves[0], halves[1]) < maxHalfRatio*max(halves[0], halves[1]) {
		return 0
	}
	for i, c := range d.coeff {
		var s1, s2 float64
		for _, v := range x {
			s1, s2 = v+c*s1-s2, s1
		}
		// |X|² of the Goertzel bin; a sine of amplitude A at the bin
		// frequency gives |X| = A·Σw/2, so its mean power A²/2 is 2|X|²/(Σw)².
		power[i] = 2 * (s1*s1 + s2*s2 - c*s1*s2) / (hannSum * hannSum)
	}
	row, col := argmax(power[:4]), argmax(power[4:])
	pr, pc := power[row], power[4+col]
	switch {
	case pr < d.minPower || pc < d.minPower:
		return 0
	case pc > pr*d.forward || pr > pc*d.reverse:
		return 0
	case (pr+pc)/total < d.cfg.MinPurity:
		return 0
	}
	for i := 0; i < 4; i++ {
		if (i != row && power[i]*d.peak > pr) || (i != col && power[4+i]*d.peak > pc) {
			return 0
		}
	}
	return keypad[row][col]
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// Reset forgets all audio seen so far, as if the detector were new.
func (d *Detector) Reset() { d.detectorState = detectorState{} }
