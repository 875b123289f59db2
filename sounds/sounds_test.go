package sounds

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadEmbedded(t *testing.T) {
	for _, lang := range Languages() {
		p, err := Load(lang, "")
		if err != nil {
			t.Fatalf("Load(%q): %v", lang, err)
		}
		if p.Lang() != lang || p.Source() != "embedded" {
			t.Errorf("Lang, Source = %q, %q", p.Lang(), p.Source())
		}
		if d := samplesDuration(len(p.Phrase())); d < 500*time.Millisecond || d > 3*time.Second {
			t.Errorf("%s phrase is %v long", lang, d)
		}
		for d := 0; d < 10; d++ {
			if l := samplesDuration(len(p.Digit(d))); l < 150*time.Millisecond || l > 600*time.Millisecond {
				t.Errorf("%s digit %d is %v long", lang, d, l)
			}
		}
		// The announcement of a two-digit code must leave the caller time:
		// it plays in early media, before the grace interval starts.
		if d := p.Duration(2); d > 4500*time.Millisecond {
			t.Errorf("%s two-digit announcement lasts %v", lang, d)
		}
		t.Logf("%s: phrase %v, two-digit announcement at most %v", lang, samplesDuration(len(p.Phrase())), p.Duration(2))
	}
}

func TestLoadUnknownLanguage(t *testing.T) {
	if _, err := Load("de", ""); !errors.Is(err, ErrLanguage) {
		t.Errorf("err = %v, want ErrLanguage", err)
	}
}

// operatorDir writes a valid prompt set (tones) to a temporary folder.
func operatorDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range FileNames() {
		pcm := make([]int16, 2000+100*i)
		for k := range pcm {
			pcm[k] = int16((k*(i+3))%200 - 100)
		}
		if err := os.WriteFile(filepath.Join(dir, name), EncodeWAV(8000, pcm), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := operatorDir(t)
	p, err := Load("kk", dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Lang() != "kk" || p.Source() != dir || len(p.Phrase()) != 2000 || len(p.Digit(9)) != 3000 {
		t.Errorf("loaded %q from %q: phrase %d, digit 9 %d samples", p.Lang(), p.Source(), len(p.Phrase()), len(p.Digit(9)))
	}
}

func TestLoadDirErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content []byte // nil: remove the file
		wantErr error
		wantMsg string
	}{
		{"missing", "7.wav", nil, fs.ErrNotExist, "7.wav"},
		{"not wav", "prompt.wav", []byte("ID3\x03 this is an mp3"), ErrNotWAV, "prompt.wav"},
		{"16 kHz", "3.wav", EncodeWAV(16000, make([]int16, 100)), ErrFormat, "3.wav: unsupported audio format: sample rate 16000 Hz, want 8000 Hz"},
		{"stereo", "0.wav", riff(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", make([]byte, 8))), ErrFormat, "2 channels, want mono"},
		{"8 bit", "1.wav", riff(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", make([]byte, 8))), ErrFormat, "8 bits per sample, want 16"},
		{"mu-law wav", "2.wav", riff(chunk("fmt ", fmtBody(7, 1, 8000, 8)), chunk("data", make([]byte, 8))), ErrFormat, "format tag 7"},
		{"empty", "4.wav", EncodeWAV(8000, nil), ErrFormat, "no audio"},
		{"too long", "5.wav", EncodeWAV(8000, make([]int16, 3*8000)), ErrFormat, "at most 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := operatorDir(t)
			path := filepath.Join(dir, tt.file)
			var err error
			if tt.content == nil {
				err = os.Remove(path)
			} else {
				err = os.WriteFile(path, tt.content, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load("ru", dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), dir) {
				t.Errorf("err = %q, want it to name %q and the folder", err, tt.wantMsg)
			}
			t.Log(err)
		})
	}
	if _, err := Load("ru", filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing folder: err = %v", err)
	}
}

func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, name := range FileNames() {
		fsys[name] = &fstest.MapFile{Data: EncodeWAV(8000, []int16{1, 2, 3})}
	}
	if _, err := LoadFS(fsys, "x"); err != nil {
		t.Fatal(err)
	}
}

func TestSequence(t *testing.T) {
	p, err := Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := p.Sequence("907")
	if err != nil {
		t.Fatal(err)
	}
	want := len(p.Phrase()) + silence(PromptGap) + len(p.Digit(9)) + len(p.Digit(0)) + len(p.Digit(7)) + 2*silence(DigitGap)
	if len(seq) != want {
		t.Fatalf("len = %d, want %d", len(seq), want)
	}
	at := len(p.Phrase()) + silence(PromptGap)
	for i, s := range p.Digit(9) {
		if seq[at+i] != s {
			t.Fatalf("digit 9 not at %d", at)
		}
	}
	if samplesDuration(len(seq)) > p.Duration(3) {
		t.Errorf("Duration(3) = %v < actual %v", p.Duration(3), samplesDuration(len(seq)))
	}
	for _, bad := range []string{"", "1a", "１", "-1"} {
		if _, err := p.Sequence(bad); !errors.Is(err, ErrCode) {
			t.Errorf("Sequence(%q) err = %v, want ErrCode", bad, err)
		}
	}
}
