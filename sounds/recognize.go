package sounds

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"
	"sync"
	"time"
)

// Errors of Recognize.
var (
	// ErrNoPhrase: the received audio does not contain the prompt phrase.
	ErrNoPhrase = errors.New("prompt phrase not found in the audio")
	// ErrNoDigits: the phrase was heard but no digit followed it.
	ErrNoDigits = errors.New("no digit found after the prompt phrase")
)

// Thresholds of Recognize, as normalised cross-correlation (1 = the same
// waveform up to gain). A recording that went through G.711 scores above
// 0.99, and still about 0.9 with noise 10 dB below the speech; another
// digit's recording scores at most 0.5 at any alignment (measured on the
// embedded sets by TestRecognizeMargins).
const (
	phraseThreshold = 0.5
	digitThreshold  = 0.7
)

// MaxGap is the longest silence Recognize accepts between the phrase and a
// digit or between two digits. It is several times PromptGap and DigitGap so
// a receiver that inserts silence for late packets still decodes the code,
// and short enough that a later, unrelated announcement is not appended.
const MaxGap = time.Second

// Recognizer finds which digit recordings of a prompt set occur in received
// audio. It caches the templates' spectra per transform size, so one
// Recognizer serves many calls; it is safe for concurrent use.
type Recognizer struct {
	p *Prompts

	mu    sync.Mutex
	cache map[int]*spectra // by FFT size
}

// spectra are the templates prepared for one FFT size.
type spectra struct {
	plan *fftPlan
	// phrase is templates[0], digit d is templates[d+1].
	templates [11]template
}

// template is one recording ready for correlation.
type template struct {
	conj   []complex128 // conjugated spectrum; nil if longer than the transform
	length int          // samples
	norm   float64      // Euclidean norm of the samples
}

// NewRecognizer returns a Recognizer for the recordings of p.
func NewRecognizer(p *Prompts) *Recognizer {
	return &Recognizer{p: p, cache: make(map[int]*spectra)}
}

// Recognize is NewRecognizer(p).Recognize(pcm), for a single use.
func Recognize(pcm []int16, p *Prompts) (string, error) {
	return NewRecognizer(p).Recognize(pcm)
}

// Recognize returns the digits announced in pcm (8 kHz audio as received,
// after G.711 decoding): it finds the prompt phrase, then each digit in
// turn, each at most MaxGap after the end of the one before.
//
// The method is template matching by normalised cross-correlation (NCC),
// computed for every alignment at once with FFTs: the guard plays exactly
// these recordings, so the received audio is each template delayed, scaled
// and with G.711 quantisation noise, and NCC is insensitive to the scale and
// peaks sharply at the right delay. Energy segmentation would instead depend
// on the gaps and on words without internal pauses, and breaks on Russian
// "четыре" or "шесть", whose stops are nearly as long as a gap.
func (r *Recognizer) Recognize(pcm []int16) (string, error) {
	phrase := r.p.phrase
	// The recording may have missed the start of the phrase (the caller's
	// receiver started late): search with silence in front, so the phrase
	// can align partly before the recording. A quarter of the phrase's
	// energy cut off still scores about 0.85.
	pad := min(len(phrase)/2, silence(time.Second))
	if pad+len(pcm) < len(phrase) {
		return "", fmt.Errorf("sounds: recognize: %w (%v of audio is shorter than the phrase)", ErrNoPhrase, samplesDuration(len(pcm)))
	}
	x := make([]float64, pad+len(pcm))
	for i, s := range pcm {
		x[pad+i] = float64(s)
	}

	// Find the phrase over the whole audio.
	sp := r.spectraFor(nextPow2(len(x)))
	X := sp.forward(x)
	ncc := sp.ncc(X, energies(x), &sp.templates[0], nil)
	best, at := bestOf(ncc[0], 0, len(ncc[0]))
	if best < phraseThreshold {
		return "", fmt.Errorf("sounds: recognize: %w (best match %.2f)", ErrNoPhrase, best)
	}

	// Find the digits in the audio after it, with a smaller transform.
	tail := x[at+len(phrase):]
	shortest := len(r.p.digits[0])
	for _, d := range r.p.digits {
		shortest = min(shortest, len(d))
	}
	if len(tail) < shortest {
		return "", fmt.Errorf("sounds: recognize: %w", ErrNoDigits)
	}
	sp = r.spectraFor(nextPow2(len(tail)))
	T := sp.forward(tail)
	prefix := energies(tail)
	var scores [10][]float64
	for d := 0; d < 10; d += 2 {
		pair := sp.ncc(T, prefix, &sp.templates[d+1], &sp.templates[d+2])
		scores[d], scores[d+1] = pair[0], pair[1]
	}

	code := []byte{}
	maxGap := silence(MaxGap)
	refine := silence(20 * time.Millisecond)
	for cur := 0; ; {
		// The first alignment where any digit crosses the threshold starts
		// a word; the best score within the next 20 ms says which word and
		// exactly where (the true digit peaks within a few samples of where
		// it first crosses).
		start := -1
		for k := cur; k <= cur+maxGap && start < 0; k++ {
			for d := range scores {
				if k < len(scores[d]) && scores[d][k] >= digitThreshold {
					start = k
					break
				}
			}
		}
		if start < 0 {
			break
		}
		digit, pos, top := -1, 0, 0.0
		for d := range scores {
			if s, k := bestOf(scores[d], start, start+refine); s > top {
				digit, pos, top = d, k, s
			}
		}
		code = append(code, byte('0'+digit))
		cur = pos + len(r.p.digits[digit])
	}
	if len(code) == 0 {
		return "", fmt.Errorf("sounds: recognize: %w", ErrNoDigits)
	}
	return string(code), nil
}

// bestOf returns the maximum of s[from:to] (clipped to s) and its index.
func bestOf(s []float64, from, to int) (float64, int) {
	best, at := math.Inf(-1), from
	for k := from; k < min(to, len(s)); k++ {
		if s[k] > best {
			best, at = s[k], k
		}
	}
	return best, at
}

func (r *Recognizer) spectraFor(n int) *spectra {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sp, ok := r.cache[n]; ok {
		return sp
	}
	sp := &spectra{plan: newFFTPlan(n)}
	for i, t := range append([][]int16{r.p.phrase}, r.p.digits[:]...) {
		e := 0.0
		for _, v := range t {
			e += float64(v) * float64(v)
		}
		tp := template{length: len(t), norm: math.Sqrt(e)}
		if len(t) <= n { // a longer template cannot occur in n samples
			a := make([]complex128, n)
			for i, v := range t {
				a[i] = complex(float64(v), 0)
			}
			sp.plan.transform(a, false)
			for i := range a {
				a[i] = cmplx.Conj(a[i])
			}
			tp.conj = a
		}
		sp.templates[i] = tp
	}
	r.cache[n] = sp
	return sp
}

// forward returns the spectrum of x zero-padded to the plan's size.
//
//go:norace
func (sp *spectra) forward(x []float64) []complex128 {
	a := make([]complex128, sp.plan.n)
	for i, v := range x {
		a[i] = complex(v, 0)
	}
	sp.plan.transform(a, false)
	return a
}

// ncc returns the normalised cross-correlation of x (spectrum X, energies
// prefix from energies(x)) with template a, and with b if not nil, for
// every lag at which the template lies inside x. Two templates share one inverse transform: x and both
// templates are real, so X·conj(A) + i·X·conj(B) transforms back to
// corrA + i·corrB.
func (sp *spectra) ncc(X []complex128, prefix []float64, a, b *template) [2][]float64 {
	var out [2][]float64
	n := sp.plan.n
	prod := make([]complex128, n)
	if b != nil {
		mulConj(prod, X, a.conj, b.conj)
	} else {
		mulConj(prod, X, a.conj, nil)
	}
	sp.plan.transform(prod, true)

	for j, t := range []*template{a, b} {
		if t == nil || t.conj == nil || t.length > len(prefix)-1 || t.norm == 0 {
			continue
		}
		out[j] = make([]float64, len(prefix)-t.length)
		normalise(out[j], prod, prefix, j == 1, t.length, t.norm*float64(n))
	}
	return out
}

// The loops below are the arithmetic kernels of Recognize, exempt from race
// instrumentation like fftPlan.transform and for the same reason: they
// write only buffers the calling goroutine allocated, and read the cached
// template spectra, which are never written after they are published.

// mulConj sets prod to X·A + i·X·B, where A and B hold conjugated template
// spectra (either may be nil, standing for zero).
//
//go:norace
func mulConj(prod, X, A, B []complex128) {
	for i := range prod {
		var v complex128
		if A != nil {
			v = X[i] * A[i]
		}
		if B != nil {
			v += complex(0, 1) * X[i] * B[i]
		}
		prod[i] = v
	}
}

// energies returns prefix sums of the energy of x: prefix[i] is the energy
// of x[:i], so the energy of any window is one subtraction.
//
//go:norace
func energies(x []float64) []float64 {
	prefix := make([]float64, len(x)+1)
	for i, v := range x {
		prefix[i+1] = prefix[i] + v*v
	}
	return prefix
}

// normalise divides the correlation at every lag k by the window's norm:
// s[k] = corr[k] / (scale·‖x[k:k+length]‖), where corr is the real part of
// prod (the imaginary part with imag) and scale folds in the template norm
// and the 1/n of the inverse transform. Windows quieter than one LSB RMS
// score 0.
//
//go:norace
func normalise(s []float64, prod []complex128, prefix []float64, imaginary bool, length int, scale float64) {
	for k := range s {
		e := prefix[k+length] - prefix[k]
		if e < float64(length) {
			s[k] = 0
			continue
		}
		c := real(prod[k])
		if imaginary {
			c = imag(prod[k])
		}
		s[k] = c / (scale * math.Sqrt(e))
	}
}
