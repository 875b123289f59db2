package call

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// MaxCodeDigits bounds the code length: more digits than a caller can
// hold in mind after one hearing, and longer than the announcement fits
// in early media before the carrier's ringing timers, is no use.
const MaxCodeDigits = 8

// ErrCodeLength means a code length outside 1..MaxCodeDigits.
var ErrCodeLength = errors.New("code length out of range")

// DrawCode draws a code of n decimal digits from r (crypto/rand.Reader in
// production), each digit uniform: bytes of 250 and above are redrawn so
// that byte%10 has no bias (250 is the largest multiple of 10 below 256).
func DrawCode(r io.Reader, n int) (string, error) {
	if n < 1 || n > MaxCodeDigits {
		return "", fmt.Errorf("draw code of %d digits: %w (1..%d)", n, ErrCodeLength, MaxCodeDigits)
	}
	out := make([]byte, 0, n)
	var buf [16]byte
	for len(out) < n {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			return "", fmt.Errorf("draw code: read random source: %w", err)
		}
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out), nil
}

// codeMatches compares an attempt with the code in constant time, so the
// time the check takes says nothing about how many leading digits were
// right (the attempt's timing is visible on the wire as the moment of the
// hang-up or the bridge).
func codeMatches(code, attempt string) bool {
	return subtle.ConstantTimeCompare([]byte(code), []byte(attempt)) == 1
}
