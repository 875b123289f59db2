package siptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/dtmf"
	"github.com/callguard/callguard/sip/sdp"
)

// Behaviour is how the RecordingPBX answers one INVITE. The zero value
// answers at once with 180 Ringing then 200 OK and SDP.
type Behaviour struct {
	// Status is the final response: 0 or 200 answers with SDP; any other
	// (486 Busy Here, 603 Decline, 480 Temporarily Unavailable...)
	// rejects the call.
	Status int
	// Reason is the reason phrase; default the status's usual one.
	Reason string
	// Delay is how long after the INVITE arrived the final response is
	// sent (after early media, if any).
	Delay time.Duration
	// NoAnswer rings for ever: no final response until the INVITE is
	// cancelled, which sipgo answers with 487 (RFC 3261 §9.2).
	NoAnswer bool
	// NoRinging leaves out the 180 Ringing.
	NoRinging bool
	// EarlyMedia, if set, is played after a 183 Session Progress with the
	// SDP answer, before the final response: what the guard does with
	// its challenge prompt, so the harness can be tested without it.
	EarlyMedia []int16
	// HangupAfter, if positive, makes the PBX hang up with a BYE that long
	// after the ACK of its 200 OK.
	HangupAfter time.Duration
	// Quiet sends no RTP unless asked; by default an answered call sends
	// silence, as a phone does.
	Quiet bool
	// IgnoreBye drops the caller's BYE unanswered, as a PBX that has lost
	// the call does; the call's media stops all the same.
	IgnoreBye bool
	// Headers are added to the final response: a PBX that answers with
	// session timers (Session-Expires, Require: timer, RFC 4028), or
	// refuses with 422 and its Min-SE.
	Headers []sip.Header
}

// AnswerAfter answers with 200 OK and SDP d after the INVITE.
func AnswerAfter(d time.Duration) Behaviour { return Behaviour{Delay: d} }

// Reject answers with a final failure status: Reject(486) is a busy PBX,
// Reject(603) one that declines.
func Reject(status int) Behaviour { return Behaviour{Status: status} }

// RingForever rings until the INVITE is cancelled: a PBX nobody answers.
func RingForever() Behaviour { return Behaviour{NoAnswer: true} }

// PBXConfig configures a RecordingPBX. The zero value answers every call.
type PBXConfig struct {
	// SIPAddr is the UDP address the PBX's SIP socket binds. Default
	// "127.0.0.1:0".
	SIPAddr string
	// MediaIP is the address RTP sockets bind and SDP advertises. Default
	// 127.0.0.1.
	MediaIP netip.Addr
	// AnnounceMediaIP, when valid, is the address the SDP answers
	// announce instead of MediaIP, which RTP still binds and is sent
	// from: a multi-homed PBX whose media the guard must latch onto
	// (RFC 4961).
	AnnounceMediaIP netip.Addr
	// Logger receives sipgo's and the harness's logs. Default: discarded.
	Logger *slog.Logger
	// Behave decides how each call is answered; it sees the call as
	// recorded (headers, offer). Nil answers every call at once.
	Behave func(*PBXCall) Behaviour
	// NoInBandDetection turns off the DTMF tone detector on received
	// audio (it costs CPU on long calls).
	NoInBandDetection bool
	// TCP makes the PBX listen on TCP too, on its SIP port, and advertise
	// TCP in its Contact and URI, as a PBX reached over TCP does. Its
	// in-dialog requests (BYE, re-INVITE) then go out over TCP.
	TCP bool
}

// RecordingPBX is the company's PBX as a test sees it: a UAS that records
// every INVITE it receives and answers as told, records the RTP and DTMF
// of each call, and sends or takes a BYE.
type RecordingPBX struct {
	cfg   PBXConfig
	ep    *endpoint
	dua   *sipgo.DialogUA
	state notifier
	stop  chan struct{}
	ready chan struct{} // closed once ep and dua are set; handlers wait for it
	wg    sync.WaitGroup

	mu     sync.Mutex
	calls  []*PBXCall
	byID   map[string]*PBXCall
	closed bool
}

// NewRecordingPBX binds the PBX's SIP socket.
func NewRecordingPBX(cfg PBXConfig) (*RecordingPBX, error) {
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if !cfg.MediaIP.IsValid() {
		cfg.MediaIP = netip.MustParseAddr("127.0.0.1")
	}
	if !cfg.AnnounceMediaIP.IsValid() {
		cfg.AnnounceMediaIP = cfg.MediaIP
	}
	p := &RecordingPBX{cfg: cfg, byID: make(map[string]*PBXCall), stop: make(chan struct{}), ready: make(chan struct{})}
	wait := func(h sipgo.RequestHandler) sipgo.RequestHandler {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			<-p.ready
			h(req, tx)
		}
	}
	ep, err := newEndpoint("pbx", cfg.SIPAddr, cfg.Logger, nil, func(s *sipgo.Server) {
		s.OnInvite(wait(p.onInvite))
		s.OnAck(wait(p.onAck))
		s.OnBye(wait(p.onBye))
		s.OnInfo(wait(p.onInfo))
		s.OnUpdate(wait(p.onReinvite))
		s.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		})
	})
	if err != nil {
		return nil, err
	}
	p.ep = ep
	cli, contact := ep.cli, *ep.contact("pbx")
	if cfg.TCP {
		if err := ep.listenTCP("pbx"); err != nil {
			ep.close()
			return nil, err
		}
		// The endpoint's client sends from the UDP socket's address; over
		// TCP that would bind the listening port again, so requests go
		// out through a client that lets the transport pick the local
		// address (the connection the guard opened, when it is reused).
		if cli, err = sipgo.NewClient(ep.ua, sipgo.WithClientLogger(cfg.Logger), sipgo.WithClientHostname(ep.addr.Addr().String())); err != nil {
			ep.close()
			return nil, fmt.Errorf("siptest: pbx: tcp client: %w", err)
		}
		contact.Address.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
	}
	p.dua = &sipgo.DialogUA{Client: cli, ContactHDR: contact}
	close(p.ready)
	return p, nil
}

// Addr is the PBX's SIP address.
func (p *RecordingPBX) Addr() netip.AddrPort { return p.ep.addr }

// URI is the PBX's SIP URI, for GUARD_PBX_URI: "sip:pbx@127.0.0.1:port",
// with ";transport=tcp" when PBXConfig.TCP is set.
func (p *RecordingPBX) URI() string {
	if p.cfg.TCP {
		return "sip:pbx@" + p.ep.addr.String() + ";transport=tcp"
	}
	return "sip:pbx@" + p.ep.addr.String()
}

// Calls returns every call received so far, in arrival order.
func (p *RecordingPBX) Calls() []*PBXCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// WaitCalls waits until at least n calls have arrived and returns them all.
func (p *RecordingPBX) WaitCalls(ctx context.Context, n int) ([]*PBXCall, error) {
	err := p.state.until(ctx, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.calls) >= n
	})
	if err != nil {
		return p.Calls(), fmt.Errorf("siptest: pbx: waiting for %d calls (have %d): %w", n, len(p.Calls()), err)
	}
	return p.Calls(), nil
}

// Close stops the calls' media and the SIP socket. It sends no BYE.
func (p *RecordingPBX) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	calls := slices.Clone(p.calls)
	p.mu.Unlock()
	close(p.stop)
	err := p.ep.close()
	p.wg.Wait()
	for _, c := range calls {
		if c.media != nil {
			c.media.close()
		}
	}
	return err
}

func (p *RecordingPBX) call(req *sip.Request) *PBXCall {
	id := req.CallID()
	if id == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byID[id.Value()]
}

// PBXCall is one INVITE the RecordingPBX received, as it was and as it went.
type PBXCall struct {
	// At is when the INVITE arrived; Source is the address it came from.
	At     time.Time
	Source string
	// Invite is a copy of the INVITE, headers parsed.
	Invite *sip.Request
	// CallID is the INVITE's Call-ID.
	CallID string
	// Transport is what the INVITE came over: "UDP" or "TCP".
	Transport string
	// From, PAI and RequestURI are the raw values of From,
	// P-Asserted-Identity ("" if absent) and the Request-URI.
	From, PAI, RequestURI string
	// Caller is the user part of P-Asserted-Identity if present, else of
	// From: the number the PBX would display. Callee is the Request-URI's
	// user part.
	Caller, Callee string
	// Offer is the INVITE's SDP offer (nil without one); OfferErr says
	// why a body did not parse or negotiate.
	Offer    *sdp.Session
	OfferErr error
	// Behaviour is how the PBX answers this call.
	Behaviour Behaviour

	pbx    *RecordingPBX
	sess   *sipgo.DialogServerSession
	media  *mediaSession
	answer sdp.Answer
	state  notifier
	done   chan struct{}

	mu         sync.Mutex
	answeredAt time.Time
	ackedAt    time.Time
	status     int // final status sent
	endedAt    time.Time
	endReason  string
	midCall    []*sip.Request // re-INVITEs and UPDATEs received
	midAcks    []*sip.Request // ACKs of re-INVITEs' 2xx
	midRefuse  int            // status for mid-call offers; 0 answers them
}

// RefuseMidCall makes the PBX answer every later re-INVITE or UPDATE
// with status (491 Request Pending, 488 Not Acceptable Here) instead of
// an answer.
func (c *PBXCall) RefuseMidCall(status int) {
	c.mu.Lock()
	c.midRefuse = status
	c.mu.Unlock()
}

// Answered returns when the PBX sent its 200 OK, if it did.
func (c *PBXCall) Answered() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answeredAt, !c.answeredAt.IsZero()
}

// Status is the final status the PBX sent (0 before one).
func (c *PBXCall) Status() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Done is closed when the call has ended.
func (c *PBXCall) Done() <-chan struct{} { return c.done }

// Ended says how the call ended: "cancelled", "rejected 486", "BYE from
// the caller", "BYE from the PBX", ...; ok is false while it goes on.
func (c *PBXCall) Ended() (reason string, at time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason, c.endedAt, c.endReason != ""
}

// WaitAnswered waits until the PBX has answered and the ACK has come.
func (c *PBXCall) WaitAnswered(ctx context.Context) error {
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.ackedAt.IsZero() || c.endReason != ""
	})
	if err != nil {
		return fmt.Errorf("siptest: pbx call %s: waiting for the answer to be acknowledged: %w", c.CallID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ackedAt.IsZero() {
		return fmt.Errorf("siptest: pbx call %s: %w (%s)", c.CallID, ErrCallEnded, c.endReason)
	}
	return nil
}

// WaitEnded waits for the call to end and returns how.
func (c *PBXCall) WaitEnded(ctx context.Context) (string, error) {
	select {
	case <-c.done:
		r, _, _ := c.Ended()
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("siptest: pbx call %s: waiting for the end: %w", c.CallID, context.Cause(ctx))
	}
}

// Audio returns the audio received so far (decoded G.711, 8 kHz).
func (c *PBXCall) Audio() []int16 {
	ms := c.mediaNow()
	if ms == nil {
		return nil
	}
	return ms.audio(time.Time{})
}

// RTP returns the RTP packets received so far.
func (c *PBXCall) RTP() []RTPPacket {
	ms := c.mediaNow()
	if ms == nil {
		return nil
	}
	return ms.rtpPackets()
}

// Digits returns the DTMF keys received so far, by any method.
func (c *PBXCall) Digits() []Digit {
	ms := c.mediaNow()
	if ms == nil {
		return nil
	}
	return ms.receivedDigits()
}

// WaitDigits waits until n keys have arrived and returns them as a string.
func (c *PBXCall) WaitDigits(ctx context.Context, n int) (string, error) {
	keys := func() string {
		var b strings.Builder
		for _, d := range c.Digits() {
			b.WriteRune(d.Key)
		}
		return b.String()
	}
	err := c.state.until(ctx, func() bool { return len(c.Digits()) >= n })
	if err != nil {
		return keys(), fmt.Errorf("siptest: pbx call %s: waiting for %d keys (have %q): %w", c.CallID, n, keys(), err)
	}
	return keys(), nil
}

// MediaAddr is the address of the call's RTP socket, as its SDP answer
// advertises it; empty if the PBX refused the call before it had one.
func (c *PBXCall) MediaAddr() string {
	ms := c.mediaNow()
	if ms == nil {
		return ""
	}
	return ms.local.String()
}

// Type sends keys to the caller's side as RFC 4733 telephone-events or
// in-band tones (opts.Method; SIP INFO is the caller's way here, not the
// PBX's), as an IVR or a test-tone generator behind the PBX would, and
// returns once the last one is sent. The call must be answered.
func (c *PBXCall) Type(ctx context.Context, keys string, opts DTMFOptions) error {
	ms := c.mediaNow()
	for _, k := range keys {
		if _, ok := dtmf.EventCode(k); !ok {
			return fmt.Errorf("siptest: pbx call %s: type %q: %q: %w", c.CallID, keys, k, ErrDigit)
		}
	}
	if _, ok := c.Answered(); !ok || ms == nil {
		return fmt.Errorf("siptest: pbx call %s: type: %w", c.CallID, ErrNotAnswered)
	}
	opts.defaults()
	var err error
	switch opts.Method {
	case DTMFRFC4733:
		err = ms.sendEvents(ctx, keys, opts.Duration, opts.Gap, opts.Volume)
	case DTMFInBand:
		var pcm []int16
		if pcm, err = dtmf.Dial(keys, opts.Duration, opts.Gap, opts.Level); err == nil {
			err = ms.sendAudio(ctx, pcm)
		}
	default:
		err = fmt.Errorf("method %v is not one the PBX sends", opts.Method)
	}
	if err != nil {
		return fmt.Errorf("siptest: pbx call %s: type %q by %v: %w", c.CallID, keys, opts.Method, err)
	}
	return nil
}

// SendAudio sends pcm to the caller's side in paced RTP packets.
func (c *PBXCall) SendAudio(ctx context.Context, pcm []int16) error {
	ms := c.mediaNow()
	if ms == nil {
		return fmt.Errorf("siptest: pbx call %s: %w", c.CallID, ErrNoMedia)
	}
	if err := ms.sendAudio(ctx, pcm); err != nil {
		return fmt.Errorf("siptest: pbx call %s: send audio: %w", c.CallID, err)
	}
	return nil
}

// Hangup ends the answered call with a BYE (RFC 3261 §15.1.1).
func (c *PBXCall) Hangup(ctx context.Context) error {
	if _, ok := c.Answered(); !ok {
		return fmt.Errorf("siptest: pbx call %s: hangup: %w", c.CallID, ErrNotAnswered)
	}
	if err := c.sess.Bye(ctx); err != nil {
		return fmt.Errorf("siptest: pbx call %s: BYE: %w", c.CallID, err)
	}
	c.end("BYE from the PBX")
	return nil
}

// Reinvite sends a re-INVITE within the answered call (RFC 3261 §14.1),
// offering the PBX's media again with a higher o= version (RFC 3264 §8),
// as a PBX does to refresh a session or change its media; it acknowledges
// a 2xx and returns the final response. The other side's answer redirects
// the PBX's RTP.
func (c *PBXCall) Reinvite(ctx context.Context) (*sip.Response, error) {
	if _, ok := c.Answered(); !ok || c.answer.SDP == nil {
		return nil, fmt.Errorf("siptest: pbx call %s: re-INVITE: %w", c.CallID, ErrNotAnswered)
	}
	contact := c.Invite.Contact()
	if contact == nil {
		return nil, fmt.Errorf("siptest: pbx call %s: re-INVITE: the INVITE had no Contact", c.CallID)
	}
	c.mu.Lock()
	offer := *c.answer.SDP
	offer.Origin.SessionVersion++
	c.answer.SDP = &offer
	c.mu.Unlock()

	req := sip.NewRequest(sip.INVITE, *contact.Address.Clone())
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(offer.Marshal())
	res, err := c.sess.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("siptest: pbx call %s: re-INVITE: %w", c.CallID, err)
	}
	if !res.IsSuccess() {
		return res, fmt.Errorf("siptest: pbx call %s: re-INVITE answered %d %s: %w", c.CallID, res.StatusCode, res.Reason, ErrStatus)
	}
	if ans, err := sdp.Parse(res.Body()); err == nil {
		if neg, err := sdp.ReadAnswer(&offer, ans); err == nil {
			var dtmfPT uint8
			if neg.DTMF {
				dtmfPT = neg.DTMFPayloadType
			}
			c.media.setRemote(neg.Remote, neg.Codec.PayloadType, dtmfPT)
		}
	}
	// The ACK of a 2xx is the UA core's, with the re-INVITE's CSeq
	// (RFC 3261 §13.2.2.4); sipgo's dialog keeps that number for ACK.
	ack := sip.NewRequest(sip.ACK, *contact.Address.Clone())
	if err := c.sess.WriteRequest(ack); err != nil {
		return res, fmt.Errorf("siptest: pbx call %s: ACK of the re-INVITE: %w", c.CallID, err)
	}
	return res, nil
}

// mediaNow is the call's media session, nil before the PBX has one.
func (c *PBXCall) mediaNow() *mediaSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media
}

func (c *PBXCall) end(reason string) {
	c.mu.Lock()
	if c.endReason != "" {
		c.mu.Unlock()
		return
	}
	c.endReason, c.endedAt = reason, time.Now()
	c.mu.Unlock()
	close(c.done)
	if c.media != nil {
		c.media.silence.Store(false)
		go c.media.close() // not on a sipgo goroutine: close waits for the media goroutines
	}
	c.state.notify()
	c.pbx.state.notify()
}

// onInvite records the INVITE and plays the call's Behaviour. sipgo runs
// it on a goroutine of its own and keeps the transaction while it runs, so
// it returns only once the final response is sent (and, for a 2xx,
// acknowledged) or the INVITE is cancelled.
func (p *RecordingPBX) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		p.onReinvite(req, tx)
		return
	}
	at := time.Now()
	inv := req.Clone()
	touchHeaders(inv)
	c := &PBXCall{
		At: at, Source: req.Source(), Invite: inv, RequestURI: inv.Recipient.String(),
		Callee: inv.Recipient.User, pbx: p, done: make(chan struct{}),
	}
	if id := inv.CallID(); id != nil {
		c.CallID = id.Value()
	}
	c.Transport = req.Transport()
	if f := inv.From(); f != nil {
		c.From = f.Value()
	}
	if h := inv.GetHeader("P-Asserted-Identity"); h != nil {
		c.PAI = h.Value()
	}
	c.Caller = userOf(c.From)
	if c.PAI != "" {
		c.Caller = userOf(c.PAI)
	}
	if ct := inv.ContentType(); ct != nil && strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") && len(inv.Body()) > 0 {
		c.Offer, c.OfferErr = sdp.Parse(inv.Body())
	}
	beh := Behaviour{}
	if p.cfg.Behave != nil {
		beh = p.cfg.Behave(c)
	}
	c.Behaviour = beh

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "PBX closed", nil))
		return
	}
	p.calls = append(p.calls, c)
	p.byID[c.CallID] = c
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	p.state.notify()

	fail := func(status int, reason string, err error) {
		c.mu.Lock()
		c.status = status
		c.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, status, reason, nil))
		c.end(fmt.Sprintf("rejected %d %s: %v", status, reason, err))
	}
	ms, err := newMediaSession(p.cfg.MediaIP, !p.cfg.NoInBandDetection, p.cfg.Logger)
	if err != nil {
		fail(sip.StatusInternalServerError, "No RTP socket", err)
		return
	}
	ms.onDigit = func(Digit) { c.state.notify() }
	c.mu.Lock() // tests read the call's media as soon as it is listed
	c.media = ms
	c.mu.Unlock()
	caps := sdp.Capabilities{Addr: p.cfg.AnnounceMediaIP, Port: int(ms.local.Port()), Username: "pbx", SessionID: uint64(random32()), SessionVersion: 1}
	var body []byte
	switch {
	case c.OfferErr != nil:
		fail(sdp.StatusFor(c.OfferErr), "Bad SDP", c.OfferErr)
		return
	case c.Offer != nil:
		ans, err := sdp.Negotiate(c.Offer, caps)
		if err != nil {
			c.OfferErr = err
			fail(sdp.StatusFor(err), "Not Acceptable Here", err)
			return
		}
		c.answer = ans
		var dtmfPT uint8
		if ans.DTMF {
			dtmfPT = ans.DTMFPayloadType
		}
		ms.setRemote(ans.Remote, ans.Codec.PayloadType, dtmfPT)
		body = ans.Body()
	default:
		// No offer (RFC 3261 §13.2.1: the offer then goes in the 2xx
		// and the answer comes in the ACK, see onAck).
		offer, err := sdp.NewOffer(caps)
		if err != nil {
			fail(sip.StatusInternalServerError, "SDP", err)
			return
		}
		c.answer = sdp.Answer{SDP: offer}
		body = offer.Marshal()
	}

	sess, err := p.dua.ReadInvite(req, tx)
	if err != nil {
		fail(sip.StatusInternalServerError, "Dialog", err)
		return
	}
	c.sess = sess
	dctx := sess.Context() // ends on CANCEL or a dead transaction

	sdpType := sip.ContentTypeHeader("application/sdp")
	if !beh.NoRinging {
		_ = sess.Respond(sip.StatusRinging, "Ringing", nil)
	}
	if len(beh.EarlyMedia) > 0 && c.Offer != nil {
		if err := sess.Respond(sip.StatusSessionInProgress, "Session Progress", body, &sdpType); err == nil {
			_ = ms.sendAudio(dctx, beh.EarlyMedia)
		}
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-dctx.Done():
		case <-p.stop:
		}
		return false
	}
	cancelled := func() {
		reason := "cancelled"
		if cause := context.Cause(dctx); cause != nil && !errors.Is(cause, sip.ErrTransactionCanceled) && !errors.Is(cause, context.Canceled) {
			reason = "INVITE transaction ended: " + cause.Error()
		}
		c.mu.Lock()
		if dctx.Err() != nil && c.status == 0 {
			c.status = sip.StatusRequestTerminated
		}
		c.mu.Unlock()
		c.end(reason)
	}
	if beh.NoAnswer {
		wait(time.Duration(1<<63 - 1))
		cancelled()
		return
	}
	if !wait(time.Until(at.Add(beh.Delay))) {
		cancelled()
		return
	}
	if beh.Status != 0 && beh.Status != sip.StatusOK {
		reason := beh.Reason
		if reason == "" {
			reason = reasonPhrase(beh.Status)
		}
		c.mu.Lock()
		c.status = beh.Status
		c.mu.Unlock()
		_ = sess.Respond(beh.Status, reason, nil, cloneHeaders(beh.Headers)...) // waits for the ACK
		c.end(fmt.Sprintf("rejected %d %s", beh.Status, reason))
		return
	}
	c.mu.Lock()
	c.status, c.answeredAt = sip.StatusOK, time.Now()
	c.mu.Unlock()
	c.state.notify()
	// RespondSDP retransmits the 2xx until the ACK (RFC 3261 §13.3.1.4).
	res := sip.NewSDPResponseFromRequest(sess.InviteRequest, body)
	for _, h := range cloneHeaders(beh.Headers) {
		res.AppendHeader(h)
	}
	if err := sess.WriteResponse(res); err != nil {
		c.end("no ACK for the 200 OK: " + err.Error())
		return
	}
	c.mu.Lock()
	c.ackedAt = time.Now()
	c.mu.Unlock()
	if !beh.Quiet {
		ms.silence.Store(true)
	}
	c.state.notify()
	if beh.HangupAfter > 0 {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if !wait(beh.HangupAfter) {
				return
			}
			select {
			case <-c.done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Hangup(ctx); err != nil {
				p.cfg.Logger.Warn("siptest: pbx hangup", "call", c.CallID, "error", err)
			}
		}()
	}
}

// onReinvite answers a re-INVITE within a call (a session refresh or a
// guard re-negotiating): the same answer again, as nothing changed on our
// side (RFC 3264 §8 keeps the o= version then).
func (p *RecordingPBX) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c := p.call(req)
	if c == nil || c.sess == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	mid := req.Clone()
	touchHeaders(mid)
	c.mu.Lock()
	c.midCall = append(c.midCall, mid)
	body := c.answer.Body()
	refuse := c.midRefuse
	c.mu.Unlock()
	c.state.notify()
	if refuse != 0 {
		_ = tx.Respond(sip.NewResponseFromRequest(req, refuse, reasonPhrase(refuse), nil))
		return
	}
	if len(req.Body()) == 0 {
		body = nil // a refresh without an offer gets none
	} else if offer, err := sdp.Parse(req.Body()); err == nil {
		// A new offer gets a new answer: a hold (a=sendonly) is answered
		// a=recvonly (RFC 3264 §6.1).
		if ans, err := sdp.Negotiate(offer, sdp.Capabilities{Addr: p.cfg.AnnounceMediaIP, Port: int(c.media.local.Port())}); err == nil {
			var dtmfPT uint8
			if ans.DTMF {
				dtmfPT = ans.DTMFPayloadType
			}
			c.media.setRemote(ans.Remote, ans.Codec.PayloadType, dtmfPT)
			body = ans.Body()
		}
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", body)
	if len(body) > 0 {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	if ct := c.sess.InviteResponse.Contact(); ct != nil {
		res.AppendHeader(sip.HeaderClone(ct))
	}
	// A session refresh is answered with its interval (RFC 4028 §9).
	if h := req.GetHeader("Session-Expires"); h != nil {
		res.AppendHeader(sip.NewHeader("Session-Expires", h.Value()))
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
	_ = tx.Respond(res)
}

// MidCall returns the re-INVITEs and UPDATEs received within the call so
// far, as they came.
func (c *PBXCall) MidCall() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.midCall)
}

// WaitMidCall waits until the call has received n re-INVITEs or UPDATEs
// and returns them.
func (c *PBXCall) WaitMidCall(ctx context.Context, n int) ([]*sip.Request, error) {
	err := c.state.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.midCall) >= n
	})
	if err != nil {
		return c.MidCall(), fmt.Errorf("siptest: pbx call %s: waiting for %d mid-call requests: %w", c.CallID, n, err)
	}
	return c.MidCall(), nil
}

func (p *RecordingPBX) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := p.call(req)
	if c == nil || c.sess == nil {
		return
	}
	if c.Offer == nil && len(req.Body()) > 0 {
		// The answer to the offer we made in the 2xx (RFC 3261 §13.2.1).
		c.mu.Lock()
		offer := c.answer.SDP
		c.mu.Unlock()
		if ans, err := sdp.Parse(req.Body()); err == nil {
			if neg, err := sdp.ReadAnswer(offer, ans); err == nil {
				var dtmfPT uint8
				if neg.DTMF {
					dtmfPT = neg.DTMFPayloadType
				}
				c.media.setRemote(neg.Remote, neg.Codec.PayloadType, dtmfPT)
			}
		}
	}
	if cs := req.CSeq(); cs != nil && c.Invite.CSeq() != nil && cs.SeqNo != c.Invite.CSeq().SeqNo {
		ack := req.Clone()
		touchHeaders(ack)
		c.mu.Lock()
		c.midAcks = append(c.midAcks, ack)
		c.mu.Unlock()
		c.state.notify()
		return
	}
	_ = c.sess.ReadAck(req, tx)
}

// MidCallAcks returns the ACKs of the re-INVITEs the call answered.
func (c *PBXCall) MidCallAcks() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.midAcks)
}

func (p *RecordingPBX) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.call(req)
	if c == nil || c.sess == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	if c.Behaviour.IgnoreBye {
		c.end("BYE from the caller, ignored")
		return
	}
	if err := c.sess.ReadBye(req, tx); err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, err.Error(), nil))
		return
	}
	c.end("BYE from the caller")
}

// onInfo takes DTMF by SIP INFO: application/dtmf-relay or
// application/dtmf (415 for another body, RFC 3261 §21.4.13).
func (p *RecordingPBX) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := p.call(req)
	if c == nil || c.media == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	k, err := dtmf.ParseInfo(ct, req.Body())
	switch {
	case errors.Is(err, dtmf.ErrContentType):
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusUnsupportedMediaType, "Unsupported Media Type", nil))
		return
	case err != nil:
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusBadRequest, "Bad DTMF", nil))
		return
	}
	method := DTMFInfoPlain
	if strings.HasPrefix(strings.ToLower(ct), dtmf.ContentTypeRelay) {
		method = DTMFInfoRelay
	}
	c.media.addDigit(Digit{Key: k.Key, Method: method, At: time.Now()})
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
}

// reasonPhrase is RFC 3261 §21's phrase for the statuses a PBX sends.
func reasonPhrase(status int) string {
	switch status {
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Failed"
}

// cloneHeaders copies hs: a Behaviour is shared by every call it answers.
func cloneHeaders(hs []sip.Header) []sip.Header {
	out := make([]sip.Header, 0, len(hs))
	for _, h := range hs {
		out = append(out, sip.NewHeader(h.Name(), h.Value()))
	}
	return out
}
