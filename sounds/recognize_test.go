package sounds

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/media"
)

// throughG711 is what an RTP receiver hears: the audio encoded with codec
// and decoded again.
func throughG711(c media.Codec, pcm []int16) []int16 {
	return c.Decode(nil, c.Encode(nil, pcm))
}

func TestRecognizeAllCodes(t *testing.T) {
	for _, lang := range Languages() {
		p, err := Load(lang, "")
		if err != nil {
			t.Fatal(err)
		}
		r := NewRecognizer(p)
		for _, codec := range []media.Codec{nil, media.PCMU{}} {
			name := "linear"
			if codec != nil {
				name = codec.Name()
			}
			t.Run(lang+"/"+name, func(t *testing.T) {
				for n := 0; n < 100; n++ {
					code := fmt.Sprintf("%02d", n)
					pcm, err := p.Sequence(code)
					if err != nil {
						t.Fatal(err)
					}
					if codec != nil {
						pcm = throughG711(codec, pcm)
					}
					got, err := r.Recognize(pcm)
					if err != nil || got != code {
						t.Errorf("Recognize(Sequence(%s)) = %q, %v", code, got, err)
					}
				}
			})
		}
	}
}

// received builds what a test caller records: silence before the
// announcement, the announcement through A-law, extra silence where a
// jitter buffer stalled, background noise at a given level, another gain.
func received(t *testing.T, p *Prompts, code string, rng *rand.Rand, noiseRMS float64) []int16 {
	t.Helper()
	seq, err := p.Sequence(code)
	if err != nil {
		t.Fatal(err)
	}
	lead := make([]int16, rng.IntN(8000))
	stall := silence(PromptGap) + len(p.Phrase()) + len(p.Digit(int(code[0]-'0')))
	out := append(lead, seq[:stall]...)
	out = append(out, make([]int16, 1200)...) // a 150 ms stall mid-announcement
	out = append(out, seq[stall:]...)
	out = append(out, make([]int16, 4000)...)
	for i := range out {
		v := 0.7*float64(out[i]) + rng.NormFloat64()*noiseRMS
		out[i] = int16(max(-32768, min(32767, v)))
	}
	return throughG711(media.PCMA{}, out)
}

func TestRecognizeRealisticReception(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, lang := range Languages() {
		p, err := Load(lang, "")
		if err != nil {
			t.Fatal(err)
		}
		r := NewRecognizer(p)
		for _, code := range []string{"7", "38", "905", "1111", "64"} {
			// Noise at RMS 300 is about 20 dB below the speech.
			pcm := received(t, p, code, rng, 300)
			if got, err := r.Recognize(pcm); err != nil || got != code {
				t.Errorf("%s: Recognize(%s with noise) = %q, %v", lang, code, got, err)
			}
		}
	}
}

// TestRecognizeLateStart: the recording began after the announcement did,
// missing part of the phrase.
func TestRecognizeLateStart(t *testing.T) {
	for _, lang := range Languages() {
		p, err := Load(lang, "")
		if err != nil {
			t.Fatal(err)
		}
		seq, err := p.Sequence("53")
		if err != nil {
			t.Fatal(err)
		}
		cut := silence(300 * time.Millisecond)
		if got, err := Recognize(throughG711(media.PCMU{}, seq[cut:]), p); err != nil || got != "53" {
			t.Errorf("%s without the first 300 ms: %q, %v", lang, got, err)
		}
	}
}

// TestRecognizerConcurrent shares one Recognizer (and its spectra cache)
// between goroutines, for the race detector.
func TestRecognizerConcurrent(t *testing.T) {
	p, err := Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRecognizer(p)
	var wg sync.WaitGroup
	for _, code := range []string{"12", "345", "6", "78"} {
		wg.Go(func() {
			seq, _ := p.Sequence(code)
			if got, err := r.Recognize(seq); err != nil || got != code {
				t.Errorf("Recognize(%s) = %q, %v", code, got, err)
			}
		})
	}
	wg.Wait()
}

func TestRecognizeErrors(t *testing.T) {
	p, err := Load("ru", "")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	noise := make([]int16, 5*8000)
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 3000)
	}
	if _, err := Recognize(noise, p); !errors.Is(err, ErrNoPhrase) {
		t.Errorf("noise: err = %v, want ErrNoPhrase", err)
	}
	if _, err := Recognize(make([]int16, 100), p); !errors.Is(err, ErrNoPhrase) {
		t.Errorf("short: err = %v, want ErrNoPhrase", err)
	}
	phraseOnly := append(append([]int16{}, p.Phrase()...), make([]int16, 8000)...)
	if _, err := Recognize(phraseOnly, p); !errors.Is(err, ErrNoDigits) {
		t.Errorf("phrase only: err = %v, want ErrNoDigits", err)
	}
	// The English announcement is not the Russian one.
	en, err := Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := en.Sequence("12")
	if got, err := Recognize(seq, p); !errors.Is(err, ErrNoPhrase) {
		t.Errorf("English audio with Russian prompts = %q, %v; want ErrNoPhrase", got, err)
	}
	// A digit later than MaxGap belongs to something else.
	late := append(append(append([]int16{}, p.Phrase()...), make([]int16, 2*silence(MaxGap))...), p.Digit(5)...)
	if got, err := Recognize(late, p); !errors.Is(err, ErrNoDigits) {
		t.Errorf("late digit = %q, %v; want ErrNoDigits", got, err)
	}
}

// TestRecognizeMargins measures how far apart the right and the wrong
// templates score, to justify the thresholds: each digit against every
// other digit recording, aligned anywhere.
func TestRecognizeMargins(t *testing.T) {
	for _, lang := range Languages() {
		p, err := Load(lang, "")
		if err != nil {
			t.Fatal(err)
		}
		r := NewRecognizer(p)
		right, wrong := 1.0, 0.0
		for d := 0; d < 10; d++ {
			x := throughG711(media.PCMU{}, p.Digit(d))
			xf := make([]float64, len(x))
			for i, v := range x {
				xf[i] = float64(v)
			}
			sp := r.spectraFor(nextPow2(len(xf)))
			X := sp.forward(xf)
			for e := 0; e < 10; e++ {
				s := sp.ncc(X, energies(xf), &sp.templates[e+1], nil)[0]
				if s == nil {
					continue // template longer than this recording
				}
				best, _ := bestOf(s, 0, len(s))
				if e == d {
					right = math.Min(right, best)
				} else {
					wrong = math.Max(wrong, best)
				}
			}
		}
		t.Logf("%s: lowest right-digit score %.3f, highest wrong-digit score %.3f (threshold %.2f)", lang, right, wrong, digitThreshold)
		if right < 0.95 || wrong > digitThreshold-0.15 {
			t.Errorf("%s: margins too small: right %.3f, wrong %.3f", lang, right, wrong)
		}
	}
}

func BenchmarkRecognize(b *testing.B) {
	p, err := Load("ru", "")
	if err != nil {
		b.Fatal(err)
	}
	r := NewRecognizer(p)
	seq, _ := p.Sequence("49")
	for b.Loop() {
		if _, err := r.Recognize(seq); err != nil {
			b.Fatal(err)
		}
	}
}
