// Package dtmf turns what a caller types into keys, whichever way the
// carrier conveys them: RFC 4733 telephone-events in RTP, SIP INFO bodies
// (application/dtmf-relay and application/dtmf), or in-band tones in the
// G.711 audio (a Goertzel detector). A Collector gathers the keys of one call
// from all three in arrival order.
//
// Keys are runes: '0'–'9', '*', '#' and 'A'–'D' (the fourth column of the
// DTMF keypad, RFC 4733 §3.2 events 12–15).
package dtmf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrEvent is wrapped by every error of ParseTelephoneEvent.
var ErrEvent = errors.New("invalid telephone-event payload")

// keys maps RFC 4733 §3.2 DTMF event codes (table 1) to keys.
const keys = "0123456789*#ABCD"

// EventCode returns the RFC 4733 event code of a DTMF key (case-insensitive
// for A–D), and false for anything else.
func EventCode(key rune) (uint8, bool) {
	if key >= 'a' && key <= 'd' {
		key -= 'a' - 'A'
	}
	for i, k := range keys {
		if k == key {
			return uint8(i), true
		}
	}
	return 0, false
}

// EventKey returns the DTMF key of an RFC 4733 event code (0–15), and false
// for the other events (16 is hook flash; 17 and up belong to other tone
// registries, RFC 4734).
func EventKey(code uint8) (rune, bool) {
	if int(code) < len(keys) {
		return rune(keys[code]), true
	}
	return 0, false
}

// TelephoneEvent is the payload of one RFC 4733 telephone-event packet
// (§2.3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TelephoneEvent struct {
	// Event is the event code (§2.3.1); DTMF keys are 0–15.
	Event uint8
	// End is the E bit (§2.3.2): this packet reports the end of the event.
	End bool
	// Volume is the power level of the tone in −dBm0, 0–63 (§2.3.4).
	Volume uint8
	// Duration is how long the event has lasted so far, in RTP timestamp
	// units from the packet's timestamp, which is the event's start
	// (§2.3.5, §2.2.1).
	Duration uint16
}

// EventSize is the size of one telephone-event payload.
const EventSize = 4

// ParseTelephoneEvent decodes a telephone-event payload. It must be exactly
// EventSize bytes: several events in one packet (RFC 4733 §2.5.1.5) travel
// as RFC 2198 redundant audio under a payload type of their own, which the
// guard does not offer, so anything longer here is malformed. The R bit is
// reserved (§2.3.3): senders set it to zero and receivers ignore it.
func ParseTelephoneEvent(b []byte) (TelephoneEvent, error) {
	if len(b) != EventSize {
		return TelephoneEvent{}, fmt.Errorf("%w: %d bytes, want %d", ErrEvent, len(b), EventSize)
	}
	return TelephoneEvent{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// Marshal returns the 4-byte payload of e (R bit zero, volume cut to 6 bits).
func (e TelephoneEvent) Marshal() []byte {
	b := make([]byte, EventSize)
	b[0] = e.Event
	b[1] = e.Volume & 0x3F
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], e.Duration)
	return b
}

// EventDecoder turns the stream of telephone-event packets of one call into
// keys, each exactly once. RFC 4733 makes one key many packets: the first,
// with the marker bit, starts the event (§2.2.2); updates repeat the same
// RTP timestamp with a growing duration (§2.5.1.2); the final packet, with
// the E bit, is sent three times (§2.5.1.4). All of them carry the start of
// the event as their timestamp (§2.2.1), so the decoder keys events by
// (SSRC, timestamp) and reports a key on the first packet of a new one,
// whichever packet of the event that is (the first may be lost, §2.5.2.3).
//
// An event longer than the 16-bit duration field can hold (about 8 s at
// 8 kHz) is cut into segments with new timestamps, none but the last with
// the E bit (§2.5.1.3); a segment that starts where the previous segment of
// the same unfinished event ends continues it and is not a new key (see
// continues for the exact rule).
//
// An EventDecoder is not safe for concurrent use: one RTP read loop owns it.
type EventDecoder struct {
	// recent holds the last events seen, newest last, so that end packets
	// retransmitted or reordered behind the next event still match.
	recent []eventKey
	// last is the state of the newest event, for segment continuation.
	last struct {
		key      eventKey
		event    uint8
		duration uint16
		ended    bool
		valid    bool
	}
}

type eventKey struct {
	ssrc, timestamp uint32
}

// recentEvents bounds the decoder's memory of old events. At the three end
// packets per key, reordering deeper than a few events does not occur.
const recentEvents = 8

// Decode takes the SSRC, RTP timestamp and payload of one telephone-event
// packet and returns the key it starts, if any: ok is false for updates,
// retransmissions, segment continuations and non-DTMF events (such as hook
// flash). A malformed payload is an error wrapping ErrEvent.
func (d *EventDecoder) Decode(ssrc, timestamp uint32, payload []byte) (key rune, ok bool, err error) {
	ev, err := ParseTelephoneEvent(payload)
	if err != nil {
		return 0, false, err
	}
	k := eventKey{ssrc, timestamp}
	for _, r := range d.recent {
		if r == k {
			d.update(k, ev)
			return 0, false, nil
		}
	}
	continuation := d.continues(ssrc, timestamp, ev.Event)
	d.recent = append(d.recent, k)
	if len(d.recent) > recentEvents {
		d.recent = d.recent[1:]
	}
	d.last.key, d.last.valid = k, true
	d.last.event, d.last.duration, d.last.ended = ev.Event, ev.Duration, ev.End
	if continuation {
		return 0, false, nil
	}
	key, ok = EventKey(ev.Event)
	return key, ok, nil
}

// continues reports whether an event starting at timestamp is the next
// segment of the last event (§2.5.1.3): same SSRC and event, the last one
// not ended, long enough to have been cut (more than half the field), and
// the new segment starting where its last seen packet ended or later
// (update packets of the old segment may be lost), but no later than the
// longest segment the field can express.
func (d *EventDecoder) continues(ssrc, timestamp uint32, event uint8) bool {
	l := &d.last
	if !l.valid || l.ended || l.key.ssrc != ssrc || l.event != event || l.duration <= 0xFFFF/2 {
		return false
	}
	gap := timestamp - l.key.timestamp // modulo 2^32, RFC 3550 §5.1
	return gap >= uint32(l.duration) && gap <= 0xFFFF
}

// update records the newest state of the event k, if it is the last one.
func (d *EventDecoder) update(k eventKey, ev TelephoneEvent) {
	if d.last.key != k {
		return
	}
	d.last.duration = max(d.last.duration, ev.Duration)
	d.last.ended = d.last.ended || ev.End
}
