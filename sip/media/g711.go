package media

import "strings"

// G.711 (ITU-T G.711, 1988) companding between 16-bit linear PCM and 8-bit
// µ-law (PCMU) or A-law (PCMA). Decoding is a 256-entry table per law;
// encoding finds the segment (the exponent) with a table of the position
// of the highest set bit and shifts out the 4-bit mantissa, as in the
// reference implementation that accompanies the ITU software tools (and
// the classic Sun g711.c). Both laws use the 16-bit scale: µ-law decodes to
// at most ±32124, A-law to at most ±32256.

const (
	ulawBias = 0x84 // 132: µ-law adds this before finding the segment
	ulawClip = 32635
)

// segmentOf[v] is the index of the highest set bit of v (0 for v ≤ 1): the
// µ-law exponent of a biased magnitude m is segmentOf[m>>7], the A-law
// segment of a 12-bit magnitude m ≥ 32 is segmentOf[m>>5]+1.
var segmentOf = func() (t [256]uint8) {
	for v := 1; v < 256; v++ {
		s := uint8(0)
		for x := v >> 1; x > 0; x >>= 1 {
			s++
		}
		t[v] = s
	}
	return t
}()

var (
	ulawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = ulawDecode(byte(i))
		}
		return t
	}()
	alawTable = func() (t [256]int16) {
		for i := range t {
			t[i] = alawDecode(byte(i))
		}
		return t
	}()
)

// EncodeUlaw compands one 16-bit sample to µ-law.
func EncodeUlaw(s int16) byte {
	v := int32(s)
	sign := byte(0)
	if v < 0 {
		v, sign = -v, 0x80
	}
	v = min(v, ulawClip) + ulawBias
	exp := segmentOf[(v>>7)&0xFF]
	mant := byte(v>>(exp+3)) & 0x0F
	return ^(sign | exp<<4 | mant)
}

// DecodeUlaw expands one µ-law byte to a 16-bit sample.
func DecodeUlaw(b byte) int16 { return ulawTable[b] }

func ulawDecode(b byte) int16 {
	u := ^b
	t := (int32(u&0x0F) << 3) + ulawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// EncodeAlaw compands one 16-bit sample to A-law (even bits inverted, as
// transmitted: G.711 §2 inverts them with the 0x55 mask).
func EncodeAlaw(s int16) byte {
	v := int32(s) >> 3 // A-law works on 13 bits
	mask := byte(0xD5)
	if v < 0 {
		mask, v = 0x55, -v-1
	}
	if v > 0xFFF {
		return 0x7F ^ mask
	}
	var seg byte
	if v >= 0x20 {
		seg = segmentOf[v>>5] + 1
	}
	a := seg << 4
	if seg < 2 {
		a |= byte(v>>1) & 0x0F
	} else {
		a |= byte(v>>seg) & 0x0F
	}
	return a ^ mask
}

// DecodeAlaw expands one A-law byte to a 16-bit sample.
func DecodeAlaw(b byte) int16 { return alawTable[b] }

func alawDecode(b byte) int16 {
	a := b ^ 0x55
	t := int32(a&0x0F) << 4
	switch seg := (a & 0x70) >> 4; seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t = (t + 0x108) << (seg - 1)
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// Codec is an audio payload format the guard can send and receive: one of
// the two G.711 laws, each with its static payload type (RFC 3551 §6,
// table 4) at 8000 Hz with one byte per sample.
type Codec interface {
	// Name is the encoding name of the SDP rtpmap attribute ("PCMU", "PCMA").
	Name() string
	// PayloadType is the static RTP payload type (0 or 8).
	PayloadType() uint8
	// Encode appends the encoding of pcm to dst.
	Encode(dst []byte, pcm []int16) []byte
	// Decode appends the samples of payload to dst.
	Decode(dst []int16, payload []byte) []int16
}

// PCMU is G.711 µ-law, RTP payload type 0.
type PCMU struct{}

// PCMA is G.711 A-law, RTP payload type 8.
type PCMA struct{}

// Name implements Codec.
func (PCMU) Name() string { return "PCMU" }

// PayloadType implements Codec.
func (PCMU) PayloadType() uint8 { return 0 }

// Encode implements Codec.
func (PCMU) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, EncodeUlaw(s))
	}
	return dst
}

// Decode implements Codec.
func (PCMU) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, ulawTable[b])
	}
	return dst
}

// Name implements Codec.
func (PCMA) Name() string { return "PCMA" }

// PayloadType implements Codec.
func (PCMA) PayloadType() uint8 { return 8 }

// Encode implements Codec.
func (PCMA) Encode(dst []byte, pcm []int16) []byte {
	for _, s := range pcm {
		dst = append(dst, EncodeAlaw(s))
	}
	return dst
}

// Decode implements Codec.
func (PCMA) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, alawTable[b])
	}
	return dst
}

// CodecByName returns the codec of an SDP encoding name, case-insensitively
// (RFC 4855 §3: media subtype names are case-insensitive).
func CodecByName(name string) (Codec, bool) {
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU{}, true
	case "PCMA":
		return PCMA{}, true
	}
	return nil, false
}

// CodecByPayloadType returns the codec of a static payload type.
func CodecByPayloadType(pt uint8) (Codec, bool) {
	switch pt {
	case 0:
		return PCMU{}, true
	case 8:
		return PCMA{}, true
	}
	return nil, false
}
