// Package siptest is the harness that tests callguard as a black box over
// real sockets on loopback, and the parts `callguard demo` places its calls
// with (a carrier with bots and people calling, and a PBX):
//
//   - FakeTrunk is the carrier's side: a UAC (sipgo, UDP) that places calls
//     with an SDP offer (PCMU, PCMA, telephone-event), records every response
//     with its arrival time, acknowledges 2xx answers, receives the guard's
//     RTP as decoded audio, hears the announced code in the early media
//     (sounds.Recognizer: from the audio alone, never from the guard's
//     state), types digits three ways (RFC 4733 telephone-events, SIP INFO,
//     in-band G.711 tones), sends audio, hangs up or cancels, and reports a
//     BYE from the guard with its time since the 200 OK.
//   - RecordingPBX is the company's side: a UAS (sipgo, UDP) that records
//     every INVITE it receives (headers, SDP offer), answers as each test
//     asks (answer after a delay, busy, decline, ring for ever, optional
//     early media), records the RTP and DTMF it receives, and sends or
//     takes a BYE.
//   - LoadRun is a lean load client for latency percentiles of the
//     INVITE-to-final-response time, measured with Go's monotonic clock
//     (SIPp 3.6 stamps its own with CLOCK_MONOTONIC_COARSE, 4 ms ticks here).
//
// The trunk and the PBX speak plain SIP to each other, so the harness is
// tested without the guard (siptest's own tests do exactly that); pointed at
// a running guard, the same calls test the guard.
//
// Ownership: each FakeTrunk and RecordingPBX owns one SIP socket, read by
// sipgo's transport goroutine; each call owns one RTP socket with one reader
// goroutine and one sender goroutine. All exported methods are safe for
// concurrent use. Waiting is event-driven (a state change wakes the
// waiters), so tests do not sleep.
//
// Everything binds to loopback by default, and LoadRun refuses targets that
// are not loopback addresses: this is a test tool, not a traffic generator.
package siptest
