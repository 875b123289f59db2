package siptest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/sdp"
	"github.com/callguard/callguard/sounds"
)

// Response is one response the trunk received for a call, as it arrived.
type Response struct {
	// Status and Reason are the status line's code and phrase.
	Status int
	Reason string
	// Method is the CSeq method: which request this answers (INVITE, BYE,
	// CANCEL, INFO).
	Method sip.RequestMethod
	// At is when the datagram arrived; Since is At minus the time the
	// INVITE was sent.
	At    time.Time
	Since time.Duration
	// Retransmission is set when an earlier response had the same status
	// and CSeq (the guard retransmitting, RFC 3261 §17.2.1, §13.3.1.4).
	Retransmission bool
	// Msg is the parsed response (the harness's own copy, its headers
	// already parsed, so reading it is safe from any goroutine).
	Msg *sip.Response

	seq uint32 // CSeq number
	// SDP is the parsed body when it is application/sdp; SDPErr says why
	// a body of that type did not parse.
	SDP    *sdp.Session
	SDPErr error
}

// Call is one call placed by a FakeTrunk. Its methods are safe for
// concurrent use; the recorded data stays readable after the call ends.
type Call struct {
	trunk   *FakeTrunk
	ep      *endpoint
	opts    CallOptions
	callID  string
	ruri    sip.Uri
	via     *sip.ViaHeader // the INVITE's, for CANCEL (RFC 3261 §9.1)
	from    *sip.FromHeader
	to      *sip.ToHeader // the INVITE's, without tag
	contact *sip.ContactHeader
	cseq    uint32 // the INVITE's CSeq number
	caps    sdp.Capabilities
	offer   *sdp.Session
	invite  *sip.Request // a copy of the INVITE as built
	media   *mediaSession
	sentAt  time.Time
	tx      sip.ClientTransaction
	state   notifier
	done    chan struct{}

	mu         sync.Mutex
	responses  []Response
	final      int // index into responses of the INVITE's final response, -1 before
	hasFinal   bool
	answeredAt time.Time
	dialog     struct {
		established bool
		remoteTo    *sip.ToHeader // To of the 2xx, with the guard's tag
		target      sip.Uri       // remote target: the 2xx's Contact (RFC 3261 §12.1.2)
		routes      []string      // route set: Record-Route reversed
	}
	neg        sdp.Negotiated
	negOK      bool
	negErr     error
	localCSeq  uint32
	byeAt      time.Time // when the guard's BYE arrived
	ended      bool
	endReason  string
	txErr      error
	pendingAck map[uint32]chan struct{} // re-INVITE 2xx awaiting ACK, by CSeq
}

// CallID is the call's Call-ID.
func (c *Call) CallID() string { return c.callID }

// Invite returns a copy of the INVITE as the trunk built it (sipgo adds
// nothing but Content-Length).
func (c *Call) Invite() *sip.Request { return c.invite.Clone() }

// Offer is the SDP offer the INVITE carried.
func (c *Call) Offer() *sdp.Session { return c.offer }

// SentAt is when the INVITE was sent.
func (c *Call) SentAt() time.Time { return c.sentAt }

// MediaAddr is the trunk's RTP address for this call.
func (c *Call) MediaAddr() string { return c.media.local.String() }

// Responses returns every response received so far, in arrival order,
// retransmissions included.
func (c *Call) Responses() []Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.responses)
}

// Final returns the INVITE's final response, if it has arrived.
func (c *Call) Final() (Response, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.hasFinal {
		return Response{}, false
	}
	return c.responses[c.final], true
}

// Answered returns when the 2xx arrived, if it did.
func (c *Call) Answered() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answeredAt, !c.answeredAt.IsZero()
}

// Negotiated returns the media negotiated from the guard's SDP answer (in
// a 183 or the 2xx), or the error reading it.
func (c *Call) Negotiated() (sdp.Negotiated, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.negOK:
		return c.neg, nil
	case c.negErr != nil:
		return sdp.Negotiated{}, c.negErr
	}
	return sdp.Negotiated{}, fmt.Errorf("siptest: call %s: %w (no SDP answer yet)", c.callID, ErrNoMedia)
}

// Done is closed when the call has ended: a non-2xx final response, a BYE
// either way, a completed CANCEL, or the INVITE transaction failing.
func (c *Call) Done() <-chan struct{} { return c.done }

// EndReason says why the call ended ("" while it has not).
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// WaitResponse waits for the first INVITE response with status and
// returns it.
func (c *Call) WaitResponse(ctx context.Context, status int) (Response, error) {
	var out Response
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, r := range c.responses {
			// A 2xx counts once the call holds the dialog (ACK sent).
			if r.Method == sip.INVITE && r.Status == status && (status/100 != 2 || c.dialog.established) {
				out = r
				return true
			}
		}
		return c.ended && !c.hasFinal // the transaction died: nothing more will come
	})
	if err != nil {
		return Response{}, fmt.Errorf("siptest: call %s: waiting for %d (have %s): %w", c.callID, status, c.statuses(), err)
	}
	if out.Status != status {
		return Response{}, fmt.Errorf("siptest: call %s: waiting for %d: %w (%s)", c.callID, status, ErrCallEnded, c.EndReason())
	}
	return out, nil
}

// WaitFinal waits for the INVITE's final response; for a 2xx, until the
// call has also acknowledged it and holds the dialog.
func (c *Call) WaitFinal(ctx context.Context) (Response, error) {
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ended {
			return true
		}
		return c.hasFinal && (c.responses[c.final].Status/100 != 2 || c.dialog.established)
	})
	if err != nil {
		return Response{}, fmt.Errorf("siptest: call %s: waiting for a final response (have %s): %w", c.callID, c.statuses(), err)
	}
	if r, ok := c.Final(); ok {
		return r, nil
	}
	return Response{}, fmt.Errorf("siptest: call %s: no final response: %w (%s)", c.callID, ErrCallEnded, c.EndReason())
}

// WaitAnswer waits for the 2xx (which the call acknowledges by itself)
// and returns it; a non-2xx final is an error wrapping ErrStatus.
func (c *Call) WaitAnswer(ctx context.Context) (Response, error) {
	r, err := c.WaitFinal(ctx)
	if err != nil {
		return r, err
	}
	if r.Status/100 != 2 {
		return r, fmt.Errorf("siptest: call %s: answered %d %s: %w", c.callID, r.Status, r.Reason, ErrStatus)
	}
	return r, nil
}

// statuses lists the INVITE's responses for error messages: "100 183 200".
func (c *Call) statuses() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, r := range c.responses {
		if r.Method == sip.INVITE && !r.Retransmission {
			fmt.Fprintf(&b, " %d", r.Status)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return strings.TrimSpace(b.String())
}

// addResponse records a response on arrival (from the trunk's raw hook).
func (c *Call) addResponse(at time.Time, m *sip.Response) {
	touchHeaders(m)
	r := Response{Status: m.StatusCode, Reason: m.Reason, At: at, Since: at.Sub(c.sentAt), Msg: m}
	if cs := m.CSeq(); cs != nil {
		r.Method, r.seq = cs.MethodName, cs.SeqNo
	}
	seq := r.seq
	if ct := m.ContentType(); ct != nil && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct.Value())), "application/sdp") && len(m.Body()) > 0 {
		r.SDP, r.SDPErr = sdp.Parse(m.Body())
	}
	c.mu.Lock()
	for _, p := range c.responses {
		if p.Status == r.Status && p.Method == r.Method && p.seq == seq {
			r.Retransmission = true
			break
		}
	}
	c.responses = append(c.responses, r)
	if r.Method == sip.INVITE && seq == c.cseq && r.Status >= 200 && !c.hasFinal {
		c.final, c.hasFinal = len(c.responses)-1, true
	}
	if r.Method == sip.INVITE && seq == c.cseq && r.SDP != nil && r.Status > 100 && !r.Retransmission {
		c.readAnswerLocked(r.SDP)
	}
	c.mu.Unlock()
	c.state.notify()
}

// touchHeaders parses every header the harness or a test reads, once:
// sipgo parses some headers lazily on first access, writing to the
// message, so a message is fully parsed before it is shared.
func touchHeaders(m interface {
	sip.Message
	Contact() *sip.ContactHeader
	ContentType() *sip.ContentTypeHeader
	MaxForwards() *sip.MaxForwardsHeader
	Route() *sip.RouteHeader
	RecordRoute() *sip.RecordRouteHeader
}) {
	m.Via()
	m.From()
	m.To()
	m.CallID()
	m.CSeq()
	m.Contact()
	m.ContentType()
	m.ContentLength()
	m.MaxForwards()
	m.Route()
	m.RecordRoute()
}

// readAnswerLocked takes the guard's SDP answer: from the 183 that starts
// early media, or the 2xx (RFC 3264 §8: the same description, or a new
// version). Called with c.mu held.
func (c *Call) readAnswerLocked(answer *sdp.Session) {
	neg, err := sdp.ReadAnswer(c.offer, answer)
	if err != nil {
		c.negErr = fmt.Errorf("siptest: call %s: reading the SDP answer: %w", c.callID, err)
		return
	}
	c.neg, c.negOK, c.negErr = neg, true, nil
	var dtmfPT uint8
	if neg.DTMF {
		dtmfPT = neg.DTMFPayloadType
	}
	c.media.setRemote(neg.Remote, neg.Codec.PayloadType, dtmfPT)
	if c.opts.EarlyRTP && !c.opts.Quiet {
		c.media.silence.Store(true)
	}
}

// run follows the INVITE transaction: it acknowledges the 2xx and ends the
// call on a non-2xx final response or a dead transaction.
func (c *Call) run() {
	for {
		select {
		case res := <-c.tx.Responses():
			switch {
			case res.IsSuccess():
				c.answer()
			case res.StatusCode >= 300:
				// sipgo's transaction sends the ACK (RFC 3261 §17.1.1.3).
				c.end(fmt.Sprintf("rejected %d %s", res.StatusCode, res.Reason))
			}
		case <-c.tx.Done():
			c.mu.Lock()
			answered, final := !c.answeredAt.IsZero(), c.hasFinal
			if !final {
				c.txErr = c.tx.Err()
			}
			c.mu.Unlock()
			if !final && !answered {
				c.end(fmt.Sprintf("INVITE transaction failed: %v", c.tx.Err()))
			}
			return
		case <-c.done:
			return
		}
	}
}

// answer establishes the dialog from the 2xx (RFC 3261 §12.1.2) and sends
// the ACK (§13.2.2.4), again for each retransmitted 2xx.
func (c *Call) answer() {
	c.mu.Lock()
	var r *Response
	for i := range c.responses {
		p := &c.responses[i]
		if p.Method == sip.INVITE && p.Status/100 == 2 {
			r = p
			break
		}
	}
	if r == nil || c.dialog.established {
		c.mu.Unlock()
		return
	}
	m := r.Msg
	c.answeredAt = r.At
	c.dialog.established = true
	if to := m.To(); to != nil {
		c.dialog.remoteTo = sip.HeaderClone(to).(*sip.ToHeader)
	}
	c.dialog.target = c.ruri
	if ct := m.Contact(); ct != nil {
		c.dialog.target = *ct.Address.Clone()
	}
	rr := m.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		c.dialog.routes = append(c.dialog.routes, rr[i].Value())
	}
	ack := c.newInDialogLocked(sip.ACK, c.cseq)
	c.mu.Unlock()

	if err := c.ep.cli.WriteRequest(ack.Clone()); err != nil {
		c.ep.log.Warn("siptest: ACK", "call", c.callID, "error", err)
	}
	c.tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			_ = c.ep.cli.WriteRequest(ack.Clone())
		}
	})
	if !c.opts.Quiet {
		c.media.silence.Store(true)
	}
	c.state.notify()
}

// newInDialogLocked builds a request within the dialog (RFC 3261 §12.2.1.1):
// Request-URI the remote target, To with the remote tag, the route set,
// CSeq seq. Called with c.mu held.
func (c *Call) newInDialogLocked(method sip.RequestMethod, seq uint32) *sip.Request {
	req := sip.NewRequest(method, *c.dialog.target.Clone())
	req.AppendHeader(c.ep.via())
	req.AppendHeader(sip.HeaderClone(c.from))
	to := c.dialog.remoteTo
	if to == nil {
		to = c.to
	}
	req.AppendHeader(sip.HeaderClone(to))
	callID := sip.CallIDHeader(c.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	for _, r := range c.dialog.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	if method != sip.ACK {
		req.AppendHeader(sip.HeaderClone(c.contact))
	}
	return req
}

// request sends method within the confirmed dialog and waits for its final
// response; a non-2xx is an error wrapping ErrStatus.
func (c *Call) request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte) (*sip.Response, error) {
	c.mu.Lock()
	if c.ended {
		reason := c.endReason
		c.mu.Unlock()
		return nil, fmt.Errorf("siptest: call %s: %s: %w (%s)", c.callID, method, ErrCallEnded, reason)
	}
	if !c.dialog.established {
		c.mu.Unlock()
		return nil, fmt.Errorf("siptest: call %s: %s: %w", c.callID, method, ErrNotAnswered)
	}
	c.localCSeq++
	req := c.newInDialogLocked(method, c.localCSeq)
	c.mu.Unlock()
	if contentType != "" {
		ct := sip.ContentTypeHeader(contentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(body)
	res, err := c.ep.cli.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("siptest: call %s: %s: %w", c.callID, method, err)
	}
	if !res.IsSuccess() {
		return res, fmt.Errorf("siptest: call %s: %s answered %d %s: %w", c.callID, method, res.StatusCode, res.Reason, ErrStatus)
	}
	return res, nil
}

// Hangup ends the answered call with a BYE (RFC 3261 §15.1.1) and waits
// for its response. Before the answer it is ErrNotAnswered (use Cancel).
func (c *Call) Hangup(ctx context.Context) error {
	_, err := c.request(ctx, sip.BYE, "", nil)
	if err != nil && !errors.Is(err, ErrStatus) {
		return err
	}
	c.end("BYE from the trunk")
	return err
}

// Cancel cancels the INVITE (RFC 3261 §9.1): it waits for a provisional
// response (a CANCEL SHOULD NOT be sent before one), sends the CANCEL,
// and waits for the INVITE's final response, normally 487 Request
// Terminated. If a 2xx crossed the CANCEL, Cancel hangs the call up and
// returns ErrAnswered; a final response before the CANCEL is ErrFinal.
func (c *Call) Cancel(ctx context.Context) error {
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.responses) > 0 || c.ended
	})
	if err != nil {
		return fmt.Errorf("siptest: call %s: CANCEL: waiting for a provisional response: %w", c.callID, err)
	}
	if r, ok := c.Final(); ok {
		return fmt.Errorf("siptest: call %s: CANCEL: %w (%d %s)", c.callID, ErrFinal, r.Status, r.Reason)
	}
	// RFC 3261 §9.1: the same Request-URI, Call-ID, To, From and CSeq
	// number as the INVITE, method CANCEL, and a single Via equal to the
	// INVITE's top Via, so it matches the INVITE's server transaction.
	req := sip.NewRequest(sip.CANCEL, *c.ruri.Clone())
	req.AppendHeader(sip.HeaderClone(c.via))
	req.AppendHeader(sip.HeaderClone(c.from))
	req.AppendHeader(sip.HeaderClone(c.to))
	callID := sip.CallIDHeader(c.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: sip.CANCEL})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.SetBody(nil)
	res, err := c.ep.cli.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("siptest: call %s: CANCEL: %w", c.callID, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("siptest: call %s: CANCEL answered %d %s: %w", c.callID, res.StatusCode, res.Reason, ErrStatus)
	}
	final, err := c.WaitFinal(ctx)
	if err != nil {
		return fmt.Errorf("siptest: call %s: after CANCEL: %w", c.callID, err)
	}
	if final.Status/100 == 2 {
		herr := c.Hangup(ctx)
		return errors.Join(fmt.Errorf("siptest: call %s: %w", c.callID, ErrAnswered), herr)
	}
	if final.Status != sip.StatusRequestTerminated {
		return fmt.Errorf("siptest: call %s: INVITE answered %d %s after CANCEL, want 487: %w", c.callID, final.Status, final.Reason, ErrStatus)
	}
	return nil
}

// noteBye records the arrival of the guard's BYE (first one only).
func (c *Call) noteBye(at time.Time) {
	c.mu.Lock()
	if c.byeAt.IsZero() {
		c.byeAt = at
	}
	c.mu.Unlock()
	c.state.notify()
}

// ByeReceived returns when the guard's BYE arrived, and how long after the
// 2xx: the challenge window the guard gave.
func (c *Call) ByeReceived() (at time.Time, afterAnswer time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byeAt.IsZero() {
		return time.Time{}, 0, false
	}
	if c.answeredAt.IsZero() {
		return c.byeAt, 0, true
	}
	return c.byeAt, c.byeAt.Sub(c.answeredAt), true
}

// WaitBye waits for a BYE from the guard and returns how long after the
// 2xx it arrived. If the call ends another way, it is ErrCallEnded.
func (c *Call) WaitBye(ctx context.Context) (time.Duration, error) {
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.byeAt.IsZero() || c.ended
	})
	if err != nil {
		return 0, fmt.Errorf("siptest: call %s: waiting for the guard's BYE: %w", c.callID, err)
	}
	_, d, ok := c.ByeReceived()
	if !ok {
		return 0, fmt.Errorf("siptest: call %s: waiting for the guard's BYE: %w (%s)", c.callID, ErrCallEnded, c.EndReason())
	}
	return d, nil
}

// isOurDialog checks that a request from the guard is in this call's dialog:
// its To tag is our From tag (RFC 3261 §12.2.2).
func (c *Call) isOurDialog(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	tag, _ := to.Params.Get("tag")
	ours, _ := c.from.Params.Get("tag")
	return tag == ours
}

func (c *Call) end(reason string) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.endReason = true, reason
	c.mu.Unlock()
	close(c.done)
	c.media.silence.Store(false)
	go c.media.close() // not on a sipgo goroutine: close waits for the media goroutines
	c.state.notify()
}

// Close releases the call's RTP socket and forgets it. It sends nothing:
// Hangup or Cancel first.
func (c *Call) Close() {
	c.end("closed")
	c.media.close()
	c.trunk.forget(c)
}

// reinvite answers a re-INVITE: the new offer is answered with our
// capabilities and a higher o= version (RFC 3264 §8), media goes where
// the offer says, and the 2xx is retransmitted until the ACK comes (RFC
// 3261 §13.3.1.4).
func (c *Call) reinvite(req *sip.Request, tx sip.ServerTransaction) {
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sdp.StatusFor(err), "Bad SDP", nil))
		return
	}
	c.mu.Lock()
	c.caps.SessionVersion++
	caps := c.caps
	c.mu.Unlock()
	ans, err := sdp.Negotiate(offer, caps)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sdp.StatusFor(err), "Not Acceptable Here", nil))
		return
	}
	var dtmfPT uint8
	if ans.DTMF {
		dtmfPT = ans.DTMFPayloadType
	}
	c.media.setRemote(ans.Remote, ans.Codec.PayloadType, dtmfPT)
	c.mu.Lock()
	c.neg, c.negOK, c.negErr = ans.Negotiated, true, nil
	acked := make(chan struct{})
	seq := req.CSeq().SeqNo
	if c.pendingAck == nil {
		c.pendingAck = make(map[uint32]chan struct{})
	}
	c.pendingAck[seq] = acked
	c.mu.Unlock()

	res := sip.NewSDPResponseFromRequest(req, ans.Body())
	res.AppendHeader(sip.HeaderClone(c.contact))
	if err := tx.Respond(res); err != nil {
		return
	}
	interval := sip.T1
	deadline := time.After(64 * sip.T1)
	for {
		select {
		case <-acked:
			return
		case <-c.done:
			return
		case <-deadline:
			return
		case <-time.After(interval):
			_ = tx.Respond(res)
			interval = min(2*interval, sip.T2)
		}
	}
}

func (c *Call) ackReceived(seq uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.pendingAck[seq]; ok {
		close(ch)
		delete(c.pendingAck, seq)
	}
}

// Audio returns all audio received so far (decoded G.711, 8 kHz), with
// silence where RTP timestamps jump.
func (c *Call) Audio() []int16 { return c.media.audio(time.Time{}) }

// EarlyAudio returns the audio that arrived before the 2xx: the early
// media of a 183 Session Progress (all audio so far if not answered).
func (c *Call) EarlyAudio() []int16 {
	at, _ := c.Answered()
	return c.media.audio(at)
}

// RTP returns the RTP packets received so far.
func (c *Call) RTP() []RTPPacket { return c.media.rtpPackets() }

// RTPSent is the number of RTP packets the call has sent.
func (c *Call) RTPSent() int { return c.media.packetsSent() }

// HearOptions tune HearCode.
type HearOptions struct {
	// Digits is the length of the code (GUARD_CODE_DIGITS). With it,
	// HearCode returns as soon as two attempts in a row hear that many
	// digits; without it, it waits for the 2xx, which the guard sends
	// once the announcement is over, or the end of the call.
	Digits int
	// Interval between attempts while waiting; default 100 ms.
	Interval time.Duration
}

// HearCode returns the code announced in the audio received so far, as a
// listener hears it: it matches the audio against the digit prompts with
// r (sounds.Recognizer), and knows nothing else about the guard. Errors
// wrap sounds.ErrNoPhrase or sounds.ErrNoDigits, or ctx's error.
func (c *Call) HearCode(ctx context.Context, r *sounds.Recognizer, opts HearOptions) (string, error) {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	var last string
	var lastErr error
	answeredSeen := false
	for {
		_, answered := c.Answered()
		ended := false
		select {
		case <-c.done:
			ended = true
		default:
		}
		code, err := r.Recognize(c.Audio())
		complete := err == nil && len(code) >= opts.Digits
		switch {
		case ended:
			if err != nil {
				return "", fmt.Errorf("siptest: call %s: hearing the code in %v of audio: %w", c.callID, time.Duration(len(c.Audio()))*time.Second/8000, err)
			}
			return code, nil
		case opts.Digits > 0 && complete && code == last:
			return code, nil
		case opts.Digits == 0 && answeredSeen:
			// The 2xx can overtake the announcement's last RTP packets:
			// one more attempt after it lets them land.
			if err != nil {
				return "", fmt.Errorf("siptest: call %s: hearing the code in %v of audio: %w", c.callID, time.Duration(len(c.Audio()))*time.Second/8000, err)
			}
			return code, nil
		}
		answeredSeen = answered
		last, lastErr = code, err
		select {
		case <-t.C:
		case <-c.done:
		case <-ctx.Done():
			return "", fmt.Errorf("siptest: call %s: hearing the code (last attempt %q, %v): %w", c.callID, last, lastErr, context.Cause(ctx))
		}
	}
}

// DTMFOptions say how Type types.
type DTMFOptions struct {
	// Method is how the keys travel; default RFC 4733 telephone-events.
	Method DTMFMethod
	// Duration is how long each key is held; default DefaultDigitDuration.
	Duration time.Duration
	// Gap is the pause after each key; default DefaultDigitGap.
	Gap time.Duration
	// Volume is the RFC 4733 volume in -dBm0 (0 means
	// DefaultEventVolume).
	Volume uint8
	// Level is the in-band tone level in dBm0 per frequency (0 means
	// -7, a phone's level).
	Level float64
}

func (o *DTMFOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = DefaultDigitDuration
	}
	if o.Gap <= 0 {
		o.Gap = DefaultDigitGap
	}
	if o.Volume == 0 {
		o.Volume = DefaultEventVolume
	}
	if o.Level == 0 {
		o.Level = -7
	}
}

// Type types keys on the caller's keypad, by opts.Method, and returns
// once the last one is sent (for SIP INFO: answered). The call must be
// answered. Keys are '0'-'9', '*', '#', 'A'-'D'.
func (c *Call) Type(ctx context.Context, keys string, opts DTMFOptions) error {
	for _, k := range keys {
		if _, ok := dtmf.EventCode(k); !ok {
			return fmt.Errorf("siptest: call %s: type %q: %q: %w", c.callID, keys, k, ErrDigit)
		}
	}
	opts.defaults()
	c.mu.Lock()
	established, ended := c.dialog.established, c.ended
	c.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("siptest: call %s: type: %w (%s)", c.callID, ErrCallEnded, c.EndReason())
	case !established:
		return fmt.Errorf("siptest: call %s: type: %w", c.callID, ErrNotAnswered)
	}
	var err error
	switch opts.Method {
	case DTMFRFC4733:
		err = c.media.sendEvents(ctx, keys, opts.Duration, opts.Gap, opts.Volume)
	case DTMFInBand:
		var pcm []int16
		if pcm, err = dtmf.Dial(keys, opts.Duration, opts.Gap, opts.Level); err == nil {
			err = c.media.sendAudio(ctx, pcm)
		}
	case DTMFInfoRelay, DTMFInfoPlain:
		err = c.typeInfo(ctx, keys, opts)
	default:
		err = fmt.Errorf("unknown method %v", opts.Method)
	}
	if err != nil {
		return fmt.Errorf("siptest: call %s: type %q by %v: %w", c.callID, keys, opts.Method, err)
	}
	return nil
}

// typeInfo sends one INFO per key, in the dialog, with the bodies gateways
// use: application/dtmf-relay or application/dtmf. That is the legacy,
// package-less INFO usage of RFC 2976, which RFC 6086 §2 keeps working.
func (c *Call) typeInfo(ctx context.Context, keys string, opts DTMFOptions) error {
	for i, k := range keys {
		ct, body := dtmf.ContentTypeDTMF, string(k)
		if opts.Method == DTMFInfoRelay {
			ct = dtmf.ContentTypeRelay
			body = fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", k, opts.Duration.Milliseconds())
		}
		if _, err := c.request(ctx, sip.INFO, ct, []byte(body)); err != nil {
			return err
		}
		if i < len(keys)-1 {
			t := time.NewTimer(opts.Gap) // the caller's pause between keys
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			}
		}
	}
	return nil
}

// SendAudio sends pcm (8 kHz) to the guard in 20 ms RTP packets of the
// negotiated codec, paced in real time, and returns once it is sent.
func (c *Call) SendAudio(ctx context.Context, pcm []int16) error {
	if err := c.media.sendAudio(ctx, pcm); err != nil {
		return fmt.Errorf("siptest: call %s: send audio: %w", c.callID, err)
	}
	return nil
}

// Reoffer sends a new offer within the answered call, by re-INVITE (then
// ACKed) or UPDATE: the call's own offer with its o= version raised and
// the direction dir ("sendonly" or "inactive" to hold, "sendrecv" to
// resume, RFC 3264 §8.4). It returns the final response; a non-2xx is an
// error wrapping ErrStatus.
func (c *Call) Reoffer(ctx context.Context, method sip.RequestMethod, dir string) (*sip.Response, error) {
	c.mu.Lock()
	c.caps.SessionVersion++
	caps := c.caps
	c.mu.Unlock()
	offer, err := sdp.NewOffer(caps)
	if err != nil {
		return nil, fmt.Errorf("siptest: call %s: re-offer: %w", c.callID, err)
	}
	body := strings.Replace(string(offer.Marshal()), "a=sendrecv", "a="+dir, 1)
	res, err := c.request(ctx, method, "application/sdp", []byte(body))
	if err != nil || method != sip.INVITE {
		return res, err
	}
	c.mu.Lock()
	ack := c.newInDialogLocked(sip.ACK, res.CSeq().SeqNo)
	c.mu.Unlock()
	if err := c.ep.cli.WriteRequest(ack); err != nil {
		return res, fmt.Errorf("siptest: call %s: ACK of the re-INVITE: %w", c.callID, err)
	}
	return res, nil
}
