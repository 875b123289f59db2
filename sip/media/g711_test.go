package media

import (
	"math"
	"testing"
)

// Known values of G.711 on the 16-bit scale, as the ITU reference code and
// every softswitch compute them.
func TestG711KnownValues(t *testing.T) {
	ulaw := []struct {
		in   int16
		code byte
	}{
		{0, 0xFF}, {-1, 0x7F}, {1, 0xFF}, {32767, 0x80}, {-32768, 0x00},
		{32124, 0x80}, {-32124, 0x00}, {8, 0xFE}, {1000, 0xCE}, {-1000, 0x4E},
	}
	for _, tt := range ulaw {
		if got := EncodeUlaw(tt.in); got != tt.code {
			t.Errorf("EncodeUlaw(%d) = %#02x, want %#02x", tt.in, got, tt.code)
		}
	}
	ulawDec := map[byte]int16{0xFF: 0, 0x7F: 0, 0x80: 32124, 0x00: -32124, 0xFE: 8, 0x7E: -8, 0xCE: 988, 0xF0: 120}
	for code, want := range ulawDec {
		if got := DecodeUlaw(code); got != want {
			t.Errorf("DecodeUlaw(%#02x) = %d, want %d", code, got, want)
		}
	}

	alaw := []struct {
		in   int16
		code byte
	}{
		{0, 0xD5}, {-1, 0x55}, {7, 0xD5}, {32767, 0xAA}, {-32768, 0x2A}, {1000, 0xFA}, {-1000, 0x7A},
	}
	for _, tt := range alaw {
		if got := EncodeAlaw(tt.in); got != tt.code {
			t.Errorf("EncodeAlaw(%d) = %#02x, want %#02x", tt.in, got, tt.code)
		}
	}
	alawDec := map[byte]int16{0xD5: 8, 0x55: -8, 0xAA: 32256, 0x2A: -32256, 0xFA: 1008, 0x7A: -1008}
	for code, want := range alawDec {
		if got := DecodeAlaw(code); got != want {
			t.Errorf("DecodeAlaw(%#02x) = %d, want %d", code, got, want)
		}
	}
}

// Every code decodes to a level that encodes back to the same code (µ-law
// has two zeros; 0x7F, negative zero, comes back as 0xFF).
func TestG711CodesRoundTrip(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		if got := EncodeUlaw(DecodeUlaw(b)); got != b && b != 0x7F {
			t.Errorf("µ-law %#02x → %d → %#02x", b, DecodeUlaw(b), got)
		}
		if got := EncodeAlaw(DecodeAlaw(b)); got != b {
			t.Errorf("A-law %#02x → %d → %#02x", b, DecodeAlaw(b), got)
		}
	}
}

// Over every 16-bit input the companders are monotonic, and the error is
// within half a quantisation step: at most 1/32 of the value (4-bit
// mantissa; µ-law's value with its bias) above the smallest segments,
// until the clipping level.
func TestG711AllInputs(t *testing.T) {
	for _, law := range []struct {
		name   string
		enc    func(int16) byte
		dec    func(byte) int16
		linear int     // below this, the absolute error bound applies
		abs    float64 // absolute error bound in the linear segments
		bias   float64 // µ-law's segments are powers of two above -bias
		clip   int
	}{
		{"µ-law", EncodeUlaw, DecodeUlaw, 256, 8, 132, 32124},
		{"A-law", EncodeAlaw, DecodeAlaw, 512, 16, 0, 32256},
	} {
		prev := math.MinInt
		for x := -32768; x <= 32767; x++ {
			y := int(law.dec(law.enc(int16(x))))
			if y < prev {
				t.Fatalf("%s not monotonic at %d: %d after %d", law.name, x, y, prev)
			}
			prev = y
			if x > law.clip || x < -law.clip {
				continue
			}
			err := math.Abs(float64(y - x))
			bound := law.abs
			if ax := math.Abs(float64(x)); ax >= float64(law.linear) {
				bound = (ax+law.bias)/32 + 1
			}
			if err > bound {
				t.Fatalf("%s: %d → %d, error %v > %v", law.name, x, y, err, bound)
			}
		}
	}
}

func TestCodecs(t *testing.T) {
	pcm := []int16{0, 100, -100, 30000, -30000}
	for _, c := range []Codec{PCMU{}, PCMA{}} {
		enc := c.Encode(nil, pcm)
		if len(enc) != len(pcm) {
			t.Fatalf("%s: %d bytes for %d samples", c.Name(), len(enc), len(pcm))
		}
		dec := c.Decode(nil, enc)
		for i := range pcm {
			if math.Abs(float64(dec[i]-pcm[i])) > 1000 {
				t.Errorf("%s: %d → %d", c.Name(), pcm[i], dec[i])
			}
		}
		if got, ok := CodecByName(c.Name()); !ok || got.PayloadType() != c.PayloadType() {
			t.Errorf("CodecByName(%s) = %v, %v", c.Name(), got, ok)
		}
		if got, ok := CodecByPayloadType(c.PayloadType()); !ok || got.Name() != c.Name() {
			t.Errorf("CodecByPayloadType(%d) = %v, %v", c.PayloadType(), got, ok)
		}
	}
	if c, ok := CodecByName("pcma"); !ok || c.PayloadType() != 8 {
		t.Error("CodecByName is case-sensitive")
	}
	if _, ok := CodecByName("G729"); ok {
		t.Error("G729 known")
	}
	if _, ok := CodecByPayloadType(18); ok {
		t.Error("payload type 18 known")
	}
}

func BenchmarkEncodeUlaw(b *testing.B) {
	pcm := make([]int16, FrameSamples)
	for i := range pcm {
		pcm[i] = int16(i * 200)
	}
	buf := make([]byte, 0, FrameSamples)
	for b.Loop() {
		buf = PCMU{}.Encode(buf[:0], pcm)
	}
}
