// Package sounds holds the challenge prompts the guard plays in early media:
// the phrase "please type the code you hear" and the digits 0–9, in Russian
// and English, embedded in the binary. An operator can replace them with a
// folder of their own recordings (GUARD_SOUNDS_DIR), checked when loaded.
//
// The audio is 8000 Hz mono 16-bit PCM, the sample format the RTP sender
// (sip/media) encodes to whichever of PCMU or PCMA a call negotiated. The
// embedded files are made by generate.sh (espeak-ng and sox); its header
// tells how to regenerate them and how to convert an operator's recordings.
//
// Recognize is the other side: the test caller and the demo's simulated
// human use it to hear which digits the guard announced, black box, from the
// audio they received.
package sounds

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"
)

// SampleRate is the only sample rate of prompts: G.711's 8000 Hz (RFC 3551 §4.5.14).
const SampleRate = 8000

// Gaps of silence Sequence puts between the parts of an announcement. They
// make the digits easy to tell apart for a listener, and Recognize relies on
// none of them being longer than MaxGap.
const (
	// PromptGap follows the phrase, before the first digit.
	PromptGap = 350 * time.Millisecond
	// DigitGap separates two digits.
	DigitGap = 250 * time.Millisecond
)

// Limits on the length of a recording, so that an operator's folder with a
// wrong file in it (a whole song, an hour of silence) fails at start instead
// of delaying every challenge.
const (
	MaxPromptLength = 10 * time.Second
	MaxDigitLength  = 2 * time.Second
)

// FileNames returns the files a prompt set consists of, in a language folder
// of the embedded set or in an operator's GUARD_SOUNDS_DIR: the phrase
// first, then the digits in order.
func FileNames() []string {
	return []string{"prompt.wav", "0.wav", "1.wav", "2.wav", "3.wav", "4.wav", "5.wav", "6.wav", "7.wav", "8.wav", "9.wav"}
}

// ErrLanguage is returned by Load for a language with no embedded prompts.
var ErrLanguage = errors.New("no embedded prompts for this language")

//go:embed ru/*.wav en/*.wav
var embedded embed.FS

// Languages lists the languages of the embedded prompts.
func Languages() []string { return []string{"en", "ru"} }

// Prompts is one language's set of recordings, decoded to PCM. It is
// immutable after Load and safe for concurrent use; the slices its methods
// return are shared and must not be modified.
type Prompts struct {
	lang   string
	source string
	phrase []int16
	digits [10][]int16
}

// Lang is the language the prompts were loaded for.
func (p *Prompts) Lang() string { return p.lang }

// Source says where the recordings came from: "embedded" or the folder.
func (p *Prompts) Source() string { return p.source }

// Phrase is the recording of "please type the code you hear".
func (p *Prompts) Phrase() []int16 { return p.phrase }

// Digit is the recording of digit d (0–9); it panics for any other d.
func (p *Prompts) Digit(d int) []int16 { return p.digits[d] }

// Load returns the prompts of language lang. With dir empty they come from
// the embedded set (lang must be one of Languages, else ErrLanguage). With
// dir set they are the operator's recordings: the eleven FileNames() directly
// in dir, each an 8000 Hz mono 16-bit PCM WAV; lang is then only a label.
// Every file is checked, and the error names the first one missing or
// invalid and why (wrapping fs.ErrNotExist, ErrNotWAV or ErrFormat).
func Load(lang, dir string) (*Prompts, error) {
	if dir == "" {
		if !slices.Contains(Languages(), lang) {
			return nil, fmt.Errorf("sounds: language %q: %w (have %v)", lang, ErrLanguage, Languages())
		}
		sub, err := fs.Sub(embedded, lang)
		if err != nil {
			return nil, fmt.Errorf("sounds: embedded %s: %w", lang, err)
		}
		p, err := LoadFS(sub, lang)
		if err != nil {
			return nil, err
		}
		p.source = "embedded"
		return p, nil
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("sounds: GUARD_SOUNDS_DIR: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("sounds: GUARD_SOUNDS_DIR %q is not a directory", dir)
	}
	p, err := LoadFS(os.DirFS(dir), lang)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, dir)
	}
	p.source = dir
	return p, nil
}

// LoadFS loads the eleven FileNames() from the root of fsys, with the same
// checks as Load.
func LoadFS(fsys fs.FS, lang string) (*Prompts, error) {
	p := &Prompts{lang: lang, source: "fs"}
	for i, name := range FileNames() {
		limit := MaxDigitLength
		if i == 0 {
			limit = MaxPromptLength
		}
		pcm, err := loadFile(fsys, name, limit)
		if err != nil {
			return nil, fmt.Errorf("sounds: %s: %w", name, err)
		}
		if i == 0 {
			p.phrase = pcm
		} else {
			p.digits[i-1] = pcm
		}
	}
	return p, nil
}

func loadFile(fsys fs.FS, name string, limit time.Duration) ([]int16, error) {
	// A recording longer than the limit is rejected below; refuse to read a
	// file much bigger than that could be before parsing it.
	const slack = 1 << 20
	if st, err := fs.Stat(fsys, name); err != nil {
		return nil, err
	} else if maxSize := int64(limit.Seconds()*SampleRate*2) + slack; st.Size() > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %v of 8 kHz audio", ErrFormat, st.Size(), limit)
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	w, err := ParseWAV(b)
	if err != nil {
		return nil, err
	}
	if err := checkFormat(w.Format); err != nil {
		return nil, err
	}
	pcm, err := w.PCM16()
	if err != nil {
		return nil, err
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%w: no audio (empty data chunk)", ErrFormat)
	}
	if d := samplesDuration(len(pcm)); d > limit {
		return nil, fmt.Errorf("%w: %v long, at most %v allowed", ErrFormat, d, limit)
	}
	return pcm, nil
}

// convertHint tells an operator how to fix a recording in the wrong format.
const convertHint = "convert with: sox in.wav -r 8000 -c 1 -b 16 -e signed-integer out.wav"

func checkFormat(f Format) error {
	switch {
	case f.Tag != formatPCM:
		return fmt.Errorf("%w: format tag %d, want 1 (integer PCM); %s", ErrFormat, f.Tag, convertHint)
	case f.SampleRate != SampleRate:
		return fmt.Errorf("%w: sample rate %d Hz, want %d Hz; %s", ErrFormat, f.SampleRate, SampleRate, convertHint)
	case f.Channels != 1:
		return fmt.Errorf("%w: %d channels, want mono; %s", ErrFormat, f.Channels, convertHint)
	case f.BitsPerSample != 16:
		return fmt.Errorf("%w: %d bits per sample, want 16; %s", ErrFormat, f.BitsPerSample, convertHint)
	}
	return nil
}

func samplesDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / SampleRate
}

func silence(d time.Duration) int { return int(d * SampleRate / time.Second) }

// ErrCode is returned by Sequence for a code that is not all decimal digits.
var ErrCode = errors.New("code must be one or more decimal digits")

// Sequence is the announcement of code: the phrase, PromptGap of silence,
// then each digit separated by DigitGap. It is a new slice the caller owns.
func (p *Prompts) Sequence(code string) ([]int16, error) {
	if code == "" {
		return nil, fmt.Errorf("sounds: sequence %q: %w", code, ErrCode)
	}
	n := len(p.phrase) + silence(PromptGap) + (len(code)-1)*silence(DigitGap)
	for _, c := range code {
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("sounds: sequence %s: %w", strconv.Quote(code), ErrCode)
		}
		n += len(p.digits[c-'0'])
	}
	out := make([]int16, 0, n)
	out = append(out, p.phrase...)
	out = append(out, make([]int16, silence(PromptGap))...)
	for i, c := range code {
		if i > 0 {
			out = append(out, make([]int16, silence(DigitGap))...)
		}
		out = append(out, p.digits[c-'0']...)
	}
	return out, nil
}

// Duration is how long the announcement of a code of n digits plays at most
// (with the longest digit each time): what a caller waits before typing.
func (p *Prompts) Duration(n int) time.Duration {
	longest := 0
	for _, d := range p.digits {
		longest = max(longest, len(d))
	}
	if n <= 0 {
		return samplesDuration(len(p.phrase))
	}
	return samplesDuration(len(p.phrase)+n*longest) + PromptGap + time.Duration(n-1)*DigitGap
}
