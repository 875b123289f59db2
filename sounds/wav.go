package sounds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of the WAV parser. ParseWAV wraps one of them, so callers can tell a
// file that is not WAV at all from one whose audio format is unsupported.
var (
	// ErrNotWAV: the bytes are not a well-formed RIFF/WAVE file (bad magic,
	// truncated chunk, missing or duplicated fmt/data chunk).
	ErrNotWAV = errors.New("not a valid RIFF/WAVE file")
	// ErrFormat: a well-formed WAV file whose audio format is not the one
	// required (see Load: 8000 Hz, mono, 16-bit PCM).
	ErrFormat = errors.New("unsupported audio format")
)

// Format tags of the WAVE fmt chunk.
const (
	formatPCM        = 0x0001
	formatExtensible = 0xFFFE
)

// subtypeTail is the fixed tail of a WAVE_FORMAT_EXTENSIBLE SubFormat GUID;
// its first two bytes are the plain format tag (KSDATAFORMAT_SUBTYPE_PCM is
// 00000001-0000-0010-8000-00aa00389b71).
var subtypeTail = []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

// Format is the audio format of a WAV file, from its fmt chunk.
type Format struct {
	// Tag is the format tag: 1 for integer PCM. A WAVE_FORMAT_EXTENSIBLE file
	// reports the tag of its SubFormat, so an extensible PCM file reads as 1.
	Tag           uint16
	Channels      uint16
	SampleRate    uint32
	BitsPerSample uint16
	// BlockAlign is the size in bytes of one frame (one sample of every channel).
	BlockAlign uint16
}

// WAV is a parsed WAV file: its format and its raw sample data.
type WAV struct {
	Format
	// Data is the body of the data chunk (aliases the parsed buffer).
	Data []byte
}

// ParseWAV parses a RIFF/WAVE file strictly: the RIFF and every chunk must
// fit in b, exactly one fmt chunk must come before exactly one data chunk,
// the fmt fields must agree with each other (block align, byte rate) and the
// data must be a whole number of frames. Unknown chunks (LIST, fact, cue …)
// are skipped; bytes after the RIFF chunk (some tools append tags) are
// ignored. It returns an error wrapping ErrNotWAV or ErrFormat.
func ParseWAV(b []byte) (*WAV, error) {
	if len(b) < 12 || !bytes.Equal(b[0:4], []byte("RIFF")) || !bytes.Equal(b[8:12], []byte("WAVE")) {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotWAV)
	}
	riffSize := uint64(binary.LittleEndian.Uint32(b[4:8]))
	if riffSize < 4 || riffSize+8 > uint64(len(b)) {
		return nil, fmt.Errorf("%w: RIFF size %d does not fit the %d-byte file", ErrNotWAV, riffSize, len(b))
	}
	body := b[12 : 8+riffSize]

	var (
		w       WAV
		haveFmt bool
		haveDat bool
	)
	for len(body) > 0 {
		if len(body) < 8 {
			return nil, fmt.Errorf("%w: %d stray bytes after the last chunk", ErrNotWAV, len(body))
		}
		id := string(body[0:4])
		size := uint64(binary.LittleEndian.Uint32(body[4:8]))
		if size > uint64(len(body)-8) {
			return nil, fmt.Errorf("%w: chunk %q of %d bytes is truncated (%d left)", ErrNotWAV, id, size, len(body)-8)
		}
		chunk := body[8 : 8+size]
		// Chunks are padded to an even size; tolerate a missing pad byte on
		// the last chunk, which several writers omit.
		next := 8 + size + size&1
		if next > uint64(len(body)) {
			next = uint64(len(body))
		}
		body = body[next:]

		switch id {
		case "fmt ":
			if haveFmt {
				return nil, fmt.Errorf("%w: two fmt chunks", ErrNotWAV)
			}
			f, err := parseFmt(chunk)
			if err != nil {
				return nil, err
			}
			w.Format, haveFmt = f, true
		case "data":
			if !haveFmt {
				return nil, fmt.Errorf("%w: data chunk before the fmt chunk", ErrNotWAV)
			}
			if haveDat {
				return nil, fmt.Errorf("%w: two data chunks", ErrNotWAV)
			}
			if len(chunk)%int(w.BlockAlign) != 0 {
				return nil, fmt.Errorf("%w: data size %d is not a multiple of the %d-byte frame", ErrNotWAV, len(chunk), w.BlockAlign)
			}
			w.Data, haveDat = chunk, true
		}
	}
	if !haveFmt {
		return nil, fmt.Errorf("%w: no fmt chunk", ErrNotWAV)
	}
	if !haveDat {
		return nil, fmt.Errorf("%w: no data chunk", ErrNotWAV)
	}
	return &w, nil
}

func parseFmt(c []byte) (Format, error) {
	if len(c) < 16 {
		return Format{}, fmt.Errorf("%w: fmt chunk of %d bytes, want at least 16", ErrNotWAV, len(c))
	}
	f := Format{
		Tag:           binary.LittleEndian.Uint16(c[0:2]),
		Channels:      binary.LittleEndian.Uint16(c[2:4]),
		SampleRate:    binary.LittleEndian.Uint32(c[4:8]),
		BlockAlign:    binary.LittleEndian.Uint16(c[12:14]),
		BitsPerSample: binary.LittleEndian.Uint16(c[14:16]),
	}
	byteRate := binary.LittleEndian.Uint32(c[8:12])
	if f.Tag == formatExtensible {
		// WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) GUID(16).
		if len(c) < 40 || binary.LittleEndian.Uint16(c[16:18]) < 22 {
			return Format{}, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE fmt chunk too short", ErrNotWAV)
		}
		if !bytes.Equal(c[26:40], subtypeTail) {
			return Format{}, fmt.Errorf("%w: WAVE_FORMAT_EXTENSIBLE with a non-standard SubFormat", ErrFormat)
		}
		if valid := binary.LittleEndian.Uint16(c[18:20]); valid != 0 && valid != f.BitsPerSample {
			return Format{}, fmt.Errorf("%w: %d valid bits in %d-bit containers", ErrFormat, valid, f.BitsPerSample)
		}
		f.Tag = binary.LittleEndian.Uint16(c[24:26])
	}
	if f.Channels == 0 || f.SampleRate == 0 || f.BitsPerSample == 0 || f.BitsPerSample%8 != 0 {
		return Format{}, fmt.Errorf("%w: %d channels, %d Hz, %d bits per sample", ErrNotWAV, f.Channels, f.SampleRate, f.BitsPerSample)
	}
	if want := uint32(f.Channels) * uint32(f.BitsPerSample/8); uint32(f.BlockAlign) != want {
		return Format{}, fmt.Errorf("%w: block align %d, want %d for %d channels of %d bits", ErrNotWAV, f.BlockAlign, want, f.Channels, f.BitsPerSample)
	}
	if want := uint64(f.SampleRate) * uint64(f.BlockAlign); uint64(byteRate) != want {
		return Format{}, fmt.Errorf("%w: byte rate %d, want %d", ErrNotWAV, byteRate, want)
	}
	return f, nil
}

// PCM16 returns the samples of a 16-bit integer PCM file, channels
// interleaved. Any other format is an error wrapping ErrFormat.
func (w *WAV) PCM16() ([]int16, error) {
	if w.Tag != formatPCM || w.BitsPerSample != 16 {
		return nil, fmt.Errorf("%w: format tag %d with %d bits per sample, want 16-bit PCM (tag 1)", ErrFormat, w.Tag, w.BitsPerSample)
	}
	out := make([]int16, len(w.Data)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(w.Data[2*i:]))
	}
	return out, nil
}

// EncodeWAV returns a canonical 44-byte-header WAV file of mono 16-bit PCM at
// rate Hz. Tests and tools use it to write what the guard plays or hears.
func EncodeWAV(rate int, pcm []int16) []byte {
	n := 2 * len(pcm)
	b := make([]byte, 44+n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], formatPCM)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(n))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}
