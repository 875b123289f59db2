package dtmf_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sounds"
)

const ms = time.Millisecond

// referencePeak is the amplitude of a 0 dBm0 sine (see detector.go).
const referencePeak = 22301.0

// synth builds a DTMF tone with the imperfections of a real one: each
// frequency off by a factor, its own level (dBm0), a random phase.
type synth struct {
	key              rune
	dur              time.Duration
	lowDB, highDB    float64
	lowDev, highDev  float64 // relative frequency error, e.g. 0.015
	phaseLo, phaseHi float64
}

var freqs = map[rune][2]float64{
	'1': {697, 1209}, '2': {697, 1336}, '3': {697, 1477}, 'A': {697, 1633},
	'4': {770, 1209}, '5': {770, 1336}, '6': {770, 1477}, 'B': {770, 1633},
	'7': {852, 1209}, '8': {852, 1336}, '9': {852, 1477}, 'C': {852, 1633},
	'*': {941, 1209}, '0': {941, 1336}, '#': {941, 1477}, 'D': {941, 1633},
}

const allKeys = "0123456789*#ABCD"

func (s synth) pcm() []float64 {
	f := freqs[s.key]
	n := int(s.dur * 8000 / time.Second)
	out := make([]float64, n)
	al, ah := referencePeak*math.Pow(10, s.lowDB/20), referencePeak*math.Pow(10, s.highDB/20)
	wl, wh := 2*math.Pi*f[0]*(1+s.lowDev)/8000, 2*math.Pi*f[1]*(1+s.highDev)/8000
	for i := range out {
		out[i] = al*math.Sin(wl*float64(i)+s.phaseLo) + ah*math.Sin(wh*float64(i)+s.phaseHi)
	}
	return out
}

// line is the audio path: silence around, white noise at noiseDB dBm0, and
// G.711 µ-law, as the detector gets it from RTP.
type line struct {
	rng     *rand.Rand
	noiseDB float64 // 0: no noise
	buf     []float64
}

func (l *line) silence(d time.Duration) {
	l.buf = append(l.buf, make([]float64, int(d*8000/time.Second))...)
}
func (l *line) add(x []float64) { l.buf = append(l.buf, x...) }
func (l *line) tone(s synth)    { l.add(s.pcm()) }
func (l *line) out() []int16 {
	pcm := make([]int16, len(l.buf))
	rms := referencePeak / math.Sqrt2 * math.Pow(10, l.noiseDB/20)
	for i, v := range l.buf {
		if l.noiseDB != 0 {
			v += l.rng.NormFloat64() * rms
		}
		pcm[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	return media.PCMU{}.Decode(nil, media.PCMU{}.Encode(nil, pcm))
}

func detect(t *testing.T, cfg dtmf.DetectorConfig, pcm []int16) string {
	t.Helper()
	d, err := dtmf.NewDetector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(d.Write(pcm))
}

func newLine(seed uint64, noiseDB float64) *line {
	return &line{rng: rand.New(rand.NewPCG(seed, 7)), noiseDB: noiseDB}
}

func TestDetectEveryKey(t *testing.T) {
	for _, k := range allKeys {
		l := newLine(uint64(k), -45)
		l.silence(30 * ms)
		l.tone(synth{key: k, dur: 100 * ms, lowDB: -8, highDB: -6, phaseLo: 1, phaseHi: 2})
		l.silence(30 * ms)
		if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != string(k) {
			t.Errorf("key %c: detected %q", k, got)
		}
	}
}

func TestDetectDialling(t *testing.T) {
	for _, tc := range []struct {
		on, off time.Duration
		level   float64
	}{
		{100 * ms, 100 * ms, -7}, // a phone's usual timing
		{50 * ms, 50 * ms, -20},
		{40 * ms, 40 * ms, -10}, // the fastest ITU-T Q.24 requires receivers to take
	} {
		pcm, err := dtmf.Dial("0123456789*#", tc.on, tc.off, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		l := newLine(1, -50)
		for _, v := range pcm {
			l.buf = append(l.buf, float64(v))
		}
		if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != "0123456789*#" {
			t.Errorf("on %v off %v at %v dBm0: detected %q", tc.on, tc.off, tc.level, got)
		}
	}
}

// TestDetectLimits checks each acceptance limit from both sides.
func TestDetectLimits(t *testing.T) {
	base := synth{dur: 80 * ms, lowDB: -10, highDB: -10}
	tests := []struct {
		name   string
		mod    func(*synth)
		accept bool
	}{
		{"loud -3 dBm0", func(s *synth) { s.lowDB, s.highDB = -3, -3 }, true},
		{"quiet -27 dBm0", func(s *synth) { s.lowDB, s.highDB = -27, -27 }, true},
		{"too quiet -34 dBm0", func(s *synth) { s.lowDB, s.highDB = -34, -34 }, false},
		{"forward twist 6 dB", func(s *synth) { s.lowDB = -16 }, true},
		{"forward twist 10 dB", func(s *synth) { s.lowDB = -20 }, false},
		{"reverse twist 4 dB", func(s *synth) { s.highDB = -14 }, true},
		{"reverse twist 9 dB", func(s *synth) { s.highDB = -19 }, false},
		{"frequencies +1.5 %", func(s *synth) { s.lowDev, s.highDev = 0.015, 0.015 }, true},
		{"frequencies -1.5 %", func(s *synth) { s.lowDev, s.highDev = -0.015, -0.015 }, true},
		{"frequencies +3.5 %", func(s *synth) { s.lowDev, s.highDev = 0.035, 0.035 }, false},
		{"frequencies -3.5 %", func(s *synth) { s.lowDev, s.highDev = -0.035, -0.035 }, false},
		{"45 ms", func(s *synth) { s.dur = 45 * ms }, true},
		{"25 ms", func(s *synth) { s.dur = 25 * ms }, false},
		{"20 ms", func(s *synth) { s.dur = 20 * ms }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			misses, false_ := 0, 0
			for i, k := range allKeys {
				s := base
				s.key, s.phaseLo, s.phaseHi = k, float64(i), float64(2*i)
				tt.mod(&s)
				// Shift the tone against the analysis grid, key by key.
				l := newLine(uint64(i), -55)
				l.silence(time.Duration(20+i) * ms)
				l.tone(s)
				l.silence(50 * ms)
				got := detect(t, dtmf.DetectorConfig{}, l.out())
				if tt.accept && got != string(k) {
					misses++
					t.Logf("key %c: detected %q", k, got)
				}
				if !tt.accept && got != "" {
					false_++
					t.Logf("key %c: detected %q", k, got)
				}
			}
			if misses+false_ > 0 {
				t.Errorf("%d of 16 keys wrong", misses+false_)
			}
		})
	}
}

func TestDetectOncePerPress(t *testing.T) {
	l := newLine(3, -45)
	// A 2 s press, a press with a 10 ms dropout in it, then the same key
	// twice with a 40 ms pause.
	l.tone(synth{key: '5', dur: 2 * time.Second, lowDB: -8, highDB: -8})
	l.silence(100 * ms)
	l.tone(synth{key: '7', dur: 60 * ms, lowDB: -8, highDB: -8})
	l.silence(10 * ms)
	l.tone(synth{key: '7', dur: 60 * ms, lowDB: -8, highDB: -8, phaseLo: 2})
	l.silence(100 * ms)
	l.tone(synth{key: '9', dur: 60 * ms, lowDB: -8, highDB: -8})
	l.silence(40 * ms)
	l.tone(synth{key: '9', dur: 60 * ms, lowDB: -8, highDB: -8})
	l.silence(40 * ms)
	if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != "5799" {
		t.Errorf("detected %q, want 5799", got)
	}
}

func TestDetectChunking(t *testing.T) {
	pcm, err := dtmf.Dial("147*2580369#", 60*ms, 60*ms, -12)
	if err != nil {
		t.Fatal(err)
	}
	want := detect(t, dtmf.DetectorConfig{}, pcm)
	rng := rand.New(rand.NewPCG(5, 5))
	d, _ := dtmf.NewDetector(dtmf.DetectorConfig{})
	var got []rune
	for rest := pcm; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(400))
		got = append(got, d.Write(rest[:n])...)
		rest = rest[n:]
	}
	if string(got) != want || want != "147*2580369#" {
		t.Errorf("whole: %q, chunked: %q", want, string(got))
	}
	d.Reset()
	if got := string(d.Write(pcm)); got != want {
		t.Errorf("after Reset: %q", got)
	}
}

// TestDetectMissRate measures false negatives over random realistic presses:
// level, twist, frequency error, duration, phase and noise all drawn at
// random within what Q.24 says a receiver must accept.
func TestDetectMissRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	const trials = 600
	wrong := 0
	for i := 0; i < trials; i++ {
		k := rune(allKeys[rng.IntN(len(allKeys))])
		level := -4 - 20*rng.Float64() // −4 … −24 dBm0
		twist := -3 + 6*rng.Float64()
		s := synth{
			key: k, dur: time.Duration(45+rng.IntN(100)) * ms,
			lowDB: level, highDB: level + twist,
			lowDev: -0.01 + 0.02*rng.Float64(), highDev: -0.01 + 0.02*rng.Float64(),
			phaseLo: 6.3 * rng.Float64(), phaseHi: 6.3 * rng.Float64(),
		}
		l := newLine(uint64(i), level-25-10*rng.Float64()) // SNR 25–35 dB
		l.silence(time.Duration(rng.IntN(40)) * ms)
		l.tone(s)
		l.silence(60 * ms)
		if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != string(k) {
			wrong++
			t.Logf("%+v: detected %q", s, got)
		}
	}
	t.Logf("false negatives: %d of %d random presses", wrong, trials)
	if wrong > trials/100 {
		t.Errorf("%d of %d presses missed", wrong, trials)
	}
}

// TestDetectOverEcho types while the prompt plays back as echo 15 dB down,
// as it does when the carrier's echo canceller is weak.
func TestDetectOverEcho(t *testing.T) {
	p, err := sounds.Load("ru", "")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := p.Sequence("2864")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := dtmf.Dial("2864", 80*ms, 300*ms, -7)
	if err != nil {
		t.Fatal(err)
	}
	l := newLine(9, -50)
	at := 4000
	for i, v := range seq {
		x := float64(v) * math.Pow(10, -15.0/20)
		if j := i - at; j >= 0 && j < len(keys) {
			x += float64(keys[j])
		}
		l.buf = append(l.buf, x)
	}
	if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != "2864" {
		t.Errorf("detected %q over echo, want 2864", got)
	}
}

// TestNoDetectionInPrompts is the talk-off test that matters most: the
// guard listens while it plays the prompts, and their echo must never type
// a key. Each prompt set is fed plain, through µ-law and A-law, and louder
// than it is recorded (as a hot echo path would).
func TestNoDetectionInPrompts(t *testing.T) {
	for _, lang := range sounds.Languages() {
		p, err := sounds.Load(lang, "")
		if err != nil {
			t.Fatal(err)
		}
		var all []int16
		for code := 0; code < 100; code += 11 {
			seq, err := p.Sequence(fmt.Sprintf("%02d", code))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, seq...)
		}
		for _, v := range []struct {
			name string
			pcm  []int16
		}{
			{"linear", all},
			{"PCMU", media.PCMU{}.Decode(nil, media.PCMU{}.Encode(nil, all))},
			{"PCMA", media.PCMA{}.Decode(nil, media.PCMA{}.Encode(nil, all))},
			{"+6 dB", gain(all, 2)},
		} {
			if got := detect(t, dtmf.DetectorConfig{}, v.pcm); got != "" {
				t.Errorf("%s prompts, %s: false keys %q", lang, v.name, got)
			}
		}
		t.Logf("%s: %.1f s of prompts, no false key", lang, float64(len(all))/8000)
	}
}

func gain(pcm []int16, g float64) []int16 {
	out := make([]int16, len(pcm))
	for i, v := range pcm {
		out[i] = int16(max(-32768, min(32767, g*float64(v))))
	}
	return out
}

// TestNoDetectionInSpeech runs a minute of varied synthetic speech
// (testdata/generate-talkoff.sh), and white noise at several levels.
func TestNoDetectionInSpeech(t *testing.T) {
	b, err := os.ReadFile("testdata/talkoff.wav")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sounds.ParseWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if w.Tag != 7 || w.SampleRate != 8000 || w.Channels != 1 {
		t.Fatalf("talkoff.wav is %+v, want 8 kHz mono µ-law", w.Format)
	}
	speech := media.PCMU{}.Decode(nil, w.Data)
	if got := detect(t, dtmf.DetectorConfig{}, speech); got != "" {
		t.Errorf("false keys in speech: %q", got)
	}
	t.Logf("%.0f s of speech, no false key", float64(len(speech))/8000)
	for _, level := range []float64{-40, -25, -10} {
		l := newLine(uint64(-level), level)
		l.silence(5 * time.Second)
		if got := detect(t, dtmf.DetectorConfig{}, l.out()); got != "" {
			t.Errorf("false keys in noise at %v dBm0: %q", level, got)
		}
	}
}

func TestDetectorConfigValidate(t *testing.T) {
	if err := (dtmf.DetectorConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
	for _, c := range []dtmf.DetectorConfig{
		{MinLevel: 10}, {MinPurity: 1.5}, {MaxForwardTwist: -1}, {MinDuration: 5 * ms}, {MinGap: time.Hour},
	} {
		if _, err := dtmf.NewDetector(c); !errors.Is(err, dtmf.ErrConfig) {
			t.Errorf("%+v: err = %v, want ErrConfig", c, err)
		}
	}
}

func TestToneErrors(t *testing.T) {
	if _, err := dtmf.Tone('x', 50*ms, -10); err == nil {
		t.Error("Tone('x') did not fail")
	}
	if _, err := dtmf.Dial("12e", 50*ms, 50*ms, -10); err == nil {
		t.Error("Dial(12e) did not fail")
	}
}
