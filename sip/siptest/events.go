package siptest

import (
	"errors"
	"fmt"
	"time"

	"github.com/callguard/callguard/sip/dtmf"
)

// ErrDigit is wrapped by the errors of EncodeDigit and of typing a key that
// is not on the DTMF keypad.
var ErrDigit = errors.New("not a DTMF key")

// EventPacket is one RTP packet of an RFC 4733 telephone-event, as a sender
// emits it: the payload, and whether the packet starts the event.
type EventPacket struct {
	// Payload is the 4-byte telephone-event payload (RFC 4733 §2.3).
	Payload []byte
	// Marker is the RTP marker bit: set on the first packet of an event
	// (RFC 4733 §2.2.2).
	Marker bool
	// End reports the E bit (RFC 4733 §2.3.2).
	End bool
}

// Defaults of EncodeDigit and of DTMFOptions.
const (
	// DefaultDigitDuration is how long a key is held: phones send 70-100 ms.
	DefaultDigitDuration = 100 * time.Millisecond
	// DefaultDigitGap is the pause between two keys.
	DefaultDigitGap = 100 * time.Millisecond
	// DefaultEventVolume is the power level of the tone an event stands
	// for, in -dBm0 (RFC 4733 §2.3.4): 10 is what most phones report.
	DefaultEventVolume = 10
	// frameDuration is the packetisation interval of audio and of event
	// updates: 20 ms, 160 samples at 8 kHz.
	frameDuration = 20 * time.Millisecond
	frameSamples  = 160
	// maxEventDuration keeps an event within one segment: the 16-bit
	// duration field holds 65535 timestamp units, about 8.2 s at 8 kHz
	// (RFC 4733 §2.5.1.3 cuts longer events into segments; no one types a
	// key that long).
	maxEventDuration = 8 * time.Second
)

// EncodeDigit is the RFC 4733 encoder: the telephone-event packets of one
// key held for d, one every 20 ms (the audio packetisation interval). The
// sender gives all of them the RTP timestamp of the event's start and a new
// sequence number each (RFC 4733 §2.2.1, RFC 3550 §5.1):
//
//   - the first packet has the marker bit (§2.2.2) and a duration of one
//     interval; each update after it reports the duration so far
//     (§2.5.1.2), in timestamp units from the event's start;
//   - the final packet has the E bit and the whole duration, and is sent a
//     total of three times at the update interval (§2.5.1.4), so a receiver
//     that counts a key per end packet counts it three times.
//
// volume is the tone's power in -dBm0, 0-63; d is rounded up to whole
// intervals and must be at most 8 s (one segment, §2.5.1.3).
func EncodeDigit(key rune, d time.Duration, volume uint8) ([]EventPacket, error) {
	code, ok := dtmf.EventCode(key)
	if !ok {
		return nil, fmt.Errorf("siptest: rfc 4733: %q: %w", key, ErrDigit)
	}
	if d <= 0 || d > maxEventDuration {
		return nil, fmt.Errorf("siptest: rfc 4733: key %q held %v: must be more than 0 and at most %v", key, d, maxEventDuration)
	}
	if volume > 63 {
		return nil, fmt.Errorf("siptest: rfc 4733: volume %d: must be 0-63 (-dBm0)", volume)
	}
	updates := int((d + frameDuration - 1) / frameDuration)
	out := make([]EventPacket, 0, updates+3)
	for k := 1; k <= updates; k++ {
		ev := dtmf.TelephoneEvent{Event: code, Volume: volume, Duration: uint16(k * frameSamples)}
		out = append(out, EventPacket{Payload: ev.Marshal(), Marker: k == 1})
	}
	end := dtmf.TelephoneEvent{Event: code, End: true, Volume: volume, Duration: uint16(updates * frameSamples)}
	for range 3 {
		out = append(out, EventPacket{Payload: end.Marshal(), End: true})
	}
	return out, nil
}
