package sounds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// chunk builds one RIFF chunk with its pad byte.
func chunk(id string, body []byte) []byte {
	b := append([]byte(id), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(body)))
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func riff(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return chunk("RIFF", body)
}

func fmtBody(tag, channels uint16, rate uint32, bits uint16) []byte {
	b := make([]byte, 16)
	align := channels * bits / 8
	binary.LittleEndian.PutUint16(b[0:], tag)
	binary.LittleEndian.PutUint16(b[2:], channels)
	binary.LittleEndian.PutUint32(b[4:], rate)
	binary.LittleEndian.PutUint32(b[8:], rate*uint32(align))
	binary.LittleEndian.PutUint16(b[12:], align)
	binary.LittleEndian.PutUint16(b[14:], bits)
	return b
}

func extensibleBody(channels uint16, rate uint32, bits, sub uint16) []byte {
	b := fmtBody(formatExtensible, channels, rate, bits)
	ext := make([]byte, 24)
	binary.LittleEndian.PutUint16(ext[0:], 22)
	binary.LittleEndian.PutUint16(ext[2:], bits)
	binary.LittleEndian.PutUint32(ext[4:], 4) // front centre
	binary.LittleEndian.PutUint16(ext[8:], sub)
	copy(ext[10:], subtypeTail)
	return append(b, ext...)
}

func TestEncodeParseRoundTrip(t *testing.T) {
	pcm := []int16{0, 1, -1, 32767, -32768, 1234}
	w, err := ParseWAV(EncodeWAV(8000, pcm))
	if err != nil {
		t.Fatal(err)
	}
	if w.Format != (Format{Tag: 1, Channels: 1, SampleRate: 8000, BitsPerSample: 16, BlockAlign: 2}) {
		t.Errorf("format = %+v", w.Format)
	}
	got, err := w.PCM16()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, pcm) {
		t.Errorf("samples = %v, want %v", got, pcm)
	}
}

func TestParseWAV(t *testing.T) {
	data := chunk("data", []byte{1, 0, 2, 0})
	pcm8k := chunk("fmt ", fmtBody(1, 1, 8000, 16))
	tests := []struct {
		name    string
		in      []byte
		wantErr error
		want    Format
	}{
		{"plain", riff(pcm8k, data), nil, Format{1, 1, 8000, 16, 2}},
		{"list chunk skipped", riff(pcm8k, chunk("LIST", []byte("INFOabc")), data), nil, Format{1, 1, 8000, 16, 2}},
		{"extensible PCM", riff(chunk("fmt ", extensibleBody(1, 8000, 16, 1)), data), nil, Format{1, 1, 8000, 16, 2}},
		{"extensible float", riff(chunk("fmt ", extensibleBody(1, 8000, 32, 3)), chunk("data", make([]byte, 8))), nil, Format{3, 1, 8000, 32, 4}},
		{"trailing bytes after RIFF ignored", append(riff(pcm8k, data), "ID3junk"...), nil, Format{1, 1, 8000, 16, 2}},
		{"empty", nil, ErrNotWAV, Format{}},
		{"not riff", []byte("RIFX\x00\x00\x00\x00WAVE"), ErrNotWAV, Format{}},
		{"not wave", chunk("RIFF", []byte("AVI ")), ErrNotWAV, Format{}},
		{"riff size too big", func() []byte {
			b := riff(pcm8k, data)
			binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
			return b
		}(), ErrNotWAV, Format{}},
		{"truncated data chunk", func() []byte {
			b := riff(pcm8k, data)
			binary.LittleEndian.PutUint32(b[len(b)-8:], 100)
			return b
		}(), ErrNotWAV, Format{}},
		{"no fmt", riff(data), ErrNotWAV, Format{}},
		{"no data", riff(pcm8k), ErrNotWAV, Format{}},
		{"data before fmt", riff(data, pcm8k), ErrNotWAV, Format{}},
		{"two fmt", riff(pcm8k, pcm8k, data), ErrNotWAV, Format{}},
		{"two data", riff(pcm8k, data, data), ErrNotWAV, Format{}},
		{"short fmt", riff(chunk("fmt ", fmtBody(1, 1, 8000, 16)[:14]), data), ErrNotWAV, Format{}},
		{"zero channels", riff(chunk("fmt ", fmtBody(1, 0, 8000, 16)), data), ErrNotWAV, Format{}},
		{"bad block align", riff(chunk("fmt ", func() []byte {
			b := fmtBody(1, 1, 8000, 16)
			b[12] = 4
			return b
		}()), data), ErrNotWAV, Format{}},
		{"bad byte rate", riff(chunk("fmt ", func() []byte {
			b := fmtBody(1, 1, 8000, 16)
			b[8] = 1
			return b
		}()), data), ErrNotWAV, Format{}},
		{"odd data for 16 bit", riff(pcm8k, chunk("data", []byte{1, 2, 3})), ErrNotWAV, Format{}},
		{"stray bytes", chunk("RIFF", slices.Concat([]byte("WAVE"), pcm8k, data, []byte{1, 2, 3, 4})), ErrNotWAV, Format{}},
		{"extensible odd subformat", riff(chunk("fmt ", func() []byte {
			b := extensibleBody(1, 8000, 16, 1)
			b[len(b)-1] = 0
			return b
		}()), data), ErrFormat, Format{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWAV(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Format != tt.want {
				t.Errorf("format = %+v, want %+v", w.Format, tt.want)
			}
		})
	}
}

func TestPCM16RejectsOtherFormats(t *testing.T) {
	w, err := ParseWAV(riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", []byte{1, 2})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PCM16(); !errors.Is(err, ErrFormat) {
		t.Errorf("8-bit PCM16() err = %v, want ErrFormat", err)
	}
}

// FuzzParseWAV checks that the parser never panics and that what it
// accepts is self-consistent: the data is whole frames and a mono 16-bit
// file survives a re-encode.
func FuzzParseWAV(f *testing.F) {
	f.Add(EncodeWAV(8000, []int16{1, -2, 3}))
	f.Add(riff(chunk("fmt ", extensibleBody(2, 44100, 16, 1)), chunk("LIST", []byte("x")), chunk("data", make([]byte, 8))))
	f.Add(riff(chunk("data", nil)))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt "))
	for _, lang := range Languages() {
		if b, err := embedded.ReadFile(lang + "/1.wav"); err == nil {
			f.Add(b[:min(len(b), 200)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ParseWAV(b)
		if err != nil {
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrFormat) {
				t.Fatalf("error wraps neither sentinel: %v", err)
			}
			return
		}
		if w.BlockAlign == 0 || len(w.Data)%int(w.BlockAlign) != 0 {
			t.Fatalf("accepted %d data bytes with block align %d", len(w.Data), w.BlockAlign)
		}
		if w.Tag == formatPCM && w.BitsPerSample == 16 && w.Channels == 1 {
			pcm, err := w.PCM16()
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseWAV(EncodeWAV(int(w.SampleRate), pcm))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Data, w.Data) {
				t.Fatal("re-encoded data differs")
			}
		}
	})
}
