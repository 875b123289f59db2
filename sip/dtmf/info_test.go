package dtmf

import (
	"errors"
	"testing"
	"time"
)

func TestParseInfo(t *testing.T) {
	tests := []struct {
		ct, body string
		want     InfoKey
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", InfoKey{'5', 160 * time.Millisecond}},
		{"application/dtmf-relay", "Signal=5\r\nDuration=160", InfoKey{'5', 160 * time.Millisecond}},
		{"Application/DTMF-Relay; charset=utf-8", "signal = *\nduration= 250\n\n", InfoKey{'*', 250 * time.Millisecond}},
		{"application/dtmf-relay", "  SIGNAL=#  ", InfoKey{Key: '#'}},
		{"application/dtmf-relay", "Duration=100\r\nSignal=d\r\n", InfoKey{'D', 100 * time.Millisecond}},
		{"application/dtmf-relay", "Signal=10\r\nDuration=100\r\n", InfoKey{'*', 100 * time.Millisecond}},
		{"application/dtmf-relay", "Signal=11", InfoKey{Key: '#'}},
		{"application/dtmf", "5", InfoKey{Key: '5'}},
		{"application/dtmf", " 0\r\n", InfoKey{Key: '0'}},
		{"APPLICATION/DTMF", "a", InfoKey{Key: 'A'}},
	}
	for _, tt := range tests {
		got, err := ParseInfo(tt.ct, []byte(tt.body))
		if err != nil || got != tt.want {
			t.Errorf("ParseInfo(%q, %q) = %+v, %v; want %+v", tt.ct, tt.body, got, err, tt.want)
		}
	}
}

func TestParseInfoErrors(t *testing.T) {
	tests := []struct {
		ct, body string
		want     error
	}{
		{"application/sdp", "v=0", ErrContentType},
		{"text/plain", "5", ErrContentType},
		{"", "5", ErrContentType},
		{"application/dtmf-relay;;", "Signal=5", ErrContentType},
		{"application/dtmf-relay", "", ErrInfo},
		{"application/dtmf-relay", "Duration=160", ErrInfo},
		{"application/dtmf-relay", "Signal=", ErrInfo},
		{"application/dtmf-relay", "Signal=55", ErrInfo},
		{"application/dtmf-relay", "Signal=16", ErrInfo}, // hook flash
		{"application/dtmf-relay", "Signal=x", ErrInfo},
		{"application/dtmf-relay", "Signal=5\r\nSignal=6", ErrInfo},
		{"application/dtmf-relay", "Signal=5\r\nDuration=abc", ErrInfo},
		{"application/dtmf-relay", "Signal=5\r\nDuration=-5", ErrInfo},
		{"application/dtmf-relay", "Signal=5\r\nDuration=100\r\nDuration=100", ErrInfo},
		{"application/dtmf-relay", "Signal=5\r\nVolume=10", ErrInfo},
		{"application/dtmf-relay", "Signal 5", ErrInfo},
		{"application/dtmf-relay", "Signal=5\x00", ErrInfo},
		{"application/dtmf", "", ErrInfo},
		{"application/dtmf", "55", ErrInfo},
		{"application/dtmf", "Signal=5", ErrInfo},
		{"application/dtmf", string(make([]byte, 1000)), ErrInfo},
	}
	for _, tt := range tests {
		if got, err := ParseInfo(tt.ct, []byte(tt.body)); !errors.Is(err, tt.want) {
			t.Errorf("ParseInfo(%q, %q) = %+v, %v; want %v", tt.ct, tt.body, got, err, tt.want)
		}
	}
}

// FuzzParseInfoBody: never panics; an accepted body yields a keypad key and
// a sane duration, and errors wrap one of the two sentinels.
func FuzzParseInfoBody(f *testing.F) {
	f.Add("application/dtmf-relay", []byte("Signal=5\r\nDuration=160\r\n"))
	f.Add("application/dtmf", []byte("#"))
	f.Add("application/dtmf-relay; x=y", []byte("signal=10\n"))
	f.Add("text/plain", []byte("5"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		k, err := ParseInfo(ct, body)
		if err != nil {
			if !errors.Is(err, ErrInfo) && !errors.Is(err, ErrContentType) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if _, ok := EventCode(k.Key); !ok || k.Duration < 0 || k.Duration > 10*time.Minute {
			t.Fatalf("accepted %+v", k)
		}
	})
}
