package dtmf

import (
	"fmt"
	"math"
	"time"
)

// Tone returns d of the DTMF tone of key as 8 kHz 16-bit PCM, each of its
// two frequencies at level dBm0 (phones send about −7; −30 is the weakest
// the default detector accepts). It is for callers that type in-band: the
// test caller and the demo's simulated human.
func Tone(key rune, d time.Duration, level float64) ([]int16, error) {
	row, col, ok := position(key)
	if !ok {
		return nil, fmt.Errorf("dtmf: tone: %q is not a DTMF key", key)
	}
	n := int(d * SampleRate / time.Second)
	amp := referencePeak * math.Pow(10, level/20)
	out := make([]int16, n)
	wr, wc := 2*math.Pi*rowFreqs[row]/SampleRate, 2*math.Pi*colFreqs[col]/SampleRate
	for i := range out {
		v := amp * (math.Sin(wr*float64(i)) + math.Sin(wc*float64(i)))
		out[i] = int16(max(-32768, min(32767, math.Round(v))))
	}
	return out, nil
}

// Dial returns keys as a phone sends them: each key's tone for on, then
// off of silence, at level dBm0 per frequency.
func Dial(keys string, on, off time.Duration, level float64) ([]int16, error) {
	var out []int16
	for _, k := range keys {
		t, err := Tone(k, on, level)
		if err != nil {
			return nil, err
		}
		out = append(out, t...)
		out = append(out, make([]int16, int(off*SampleRate/time.Second))...)
	}
	return out, nil
}

// position finds key on the keypad (A–D also in lower case).
func position(key rune) (row, col int, ok bool) {
	if key >= 'a' && key <= 'd' {
		key -= 'a' - 'A'
	}
	for r := range keypad {
		for c, k := range keypad[r] {
			if k == key {
				return r, c, true
			}
		}
	}
	return 0, 0, false
}
