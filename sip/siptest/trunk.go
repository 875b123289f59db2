package siptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/sdp"
)

// Errors of FakeTrunk and Call. Each is wrapped with what was attempted.
var (
	// ErrClosed: the trunk or PBX is closed.
	ErrClosed = errors.New("closed")
	// ErrNotAnswered: the request needs a confirmed dialog (a 2xx to the
	// INVITE) and there is none.
	ErrNotAnswered = errors.New("call not answered")
	// ErrCallEnded: the call is over (rejected, hung up, cancelled).
	ErrCallEnded = errors.New("call ended")
	// ErrFinal: CANCEL is pointless, the INVITE already has its final
	// response (RFC 3261 §9.1).
	ErrFinal = errors.New("INVITE already has a final response")
	// ErrAnswered: the call was answered although it was cancelled (the
	// 2xx crossed the CANCEL); Cancel then hung it up with a BYE, as RFC
	// 3261 §9.1 and §15 ask.
	ErrAnswered = errors.New("call answered before the CANCEL took effect")
	// ErrStatus: a request got a final response other than 2xx.
	ErrStatus = errors.New("unexpected final response")
)

// DefaultCallee is the toll-free number calls dial when CallOptions.Callee
// is empty: an 8-800 number, the Russian toll-free range.
const DefaultCallee = "88001234567"

// TrunkConfig configures a FakeTrunk. The zero value is ready to use.
type TrunkConfig struct {
	// SIPAddr is the UDP address the trunk's SIP socket binds, which is
	// also its Via and Contact. Default "127.0.0.1:0" (any free port).
	SIPAddr string
	// MediaIP is the address RTP sockets bind and SDP offers advertise.
	// Default 127.0.0.1.
	MediaIP netip.Addr
	// Logger receives sipgo's and the harness's logs. Default: discarded.
	Logger *slog.Logger
}

// FakeTrunk is the carrier's side of the guard: it places calls (Call) the
// way a carrier's SIP trunk does, on one UDP socket that also takes the
// requests the guard sends back (BYE, re-INVITE, OPTIONS).
type FakeTrunk struct {
	cfg TrunkConfig
	ep  *endpoint

	mu     sync.Mutex
	calls  map[string]*Call // by Call-ID
	closed bool
}

// NewFakeTrunk binds the trunk's SIP socket.
func NewFakeTrunk(cfg TrunkConfig) (*FakeTrunk, error) {
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if !cfg.MediaIP.IsValid() {
		cfg.MediaIP = netip.MustParseAddr("127.0.0.1")
	}
	t := &FakeTrunk{cfg: cfg, calls: make(map[string]*Call)}
	ep, err := newEndpoint("trunk", cfg.SIPAddr, cfg.Logger, t.hook, func(s *sipgo.Server) {
		s.OnBye(t.onBye)
		s.OnInvite(t.onInvite)
		s.OnAck(t.onAck)
		s.OnOptions(t.onOptions)
		s.OnInfo(t.onInfo)
		s.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
			// A CANCEL matching no INVITE of ours (RFC 3261 §9.2).
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		})
	})
	if err != nil {
		return nil, err
	}
	t.ep = ep
	return t, nil
}

// Addr is the trunk's SIP address: where its requests come from, and where
// the guard's responses and requests go.
func (t *FakeTrunk) Addr() netip.AddrPort { return t.ep.addr }

// Close stops every call's media and the SIP socket. It sends no BYE or
// CANCEL: hang calls up first.
func (t *FakeTrunk) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	calls := make([]*Call, 0, len(t.calls))
	for _, c := range t.calls {
		calls = append(calls, c)
	}
	t.mu.Unlock()
	for _, c := range calls {
		c.media.close()
	}
	return t.ep.close()
}

func (t *FakeTrunk) call(callID string) *Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.calls[callID]
}

// hook records responses and BYEs with their arrival time, from a private
// parse of the datagram.
func (t *FakeTrunk) hook(at time.Time, _ net.Addr, data []byte) {
	msg, err := parseCopy(data)
	if err != nil {
		return
	}
	id := msg.CallID()
	if id == nil {
		return
	}
	c := t.call(string(*id))
	if c == nil {
		return
	}
	switch m := msg.(type) {
	case *sip.Response:
		c.addResponse(at, m)
	case *sip.Request:
		if m.Method == sip.BYE {
			c.noteBye(at)
		}
	}
}

// Options sends an OPTIONS request to target (host:port) and returns the
// final response: the keep-alive a carrier sends, and a probe of whether
// something answers SIP there at all.
func (t *FakeTrunk) Options(ctx context.Context, target string) (*sip.Response, error) {
	host, port, err := splitTarget(target)
	if err != nil {
		return nil, err
	}
	uri := sip.Uri{Scheme: "sip", Host: host, Port: port}
	req := sip.NewRequest(sip.OPTIONS, uri)
	req.AppendHeader(t.ep.via())
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "trunk", Host: t.ep.addr.Addr().String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri})
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res, err := t.ep.cli.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("siptest: OPTIONS %s: %w", target, err)
	}
	return res, nil
}

// CallOptions describe one call the trunk places.
type CallOptions struct {
	// Target is the guard's SIP address, host:port. Required.
	Target string
	// Caller is the calling number as the carrier presents it, e.g.
	// "+79990001122". It goes into P-Asserted-Identity (RFC 3325) and
	// the From user. Required.
	Caller string
	// PAIScheme is the URI scheme of the P-Asserted-Identity: "sip" (the
	// default: <sip:+79990001122@trunk-ip>) or "tel" (<tel:+79990001122>).
	PAIScheme string
	// NoPAI leaves P-Asserted-Identity out; the guard then identifies the
	// caller by From.
	NoPAI bool
	// FromUser overrides the From user (for example "anonymous" with the
	// real number only in P-Asserted-Identity). Default: Caller.
	FromUser string
	// Callee is the dialled number: the Request-URI and To user. Default
	// DefaultCallee.
	Callee string
	// Codecs are the codecs offered, in order of preference. Default
	// PCMU, PCMA. Telephone-event is offered at payload type 101.
	Codecs []sdp.Codec
	// NoTelephoneEvent leaves telephone-event (RFC 4733) out of the offer.
	NoTelephoneEvent bool
	// Quiet sends no RTP unless asked to. By default the trunk sends
	// silence from the answer on, as a phone does.
	Quiet bool
	// EarlyRTP starts the silence at the first SDP answer (a 183's early
	// media) instead of the 2xx, as many phones do; Quiet overrides it.
	EarlyRTP bool
	// AnnounceMediaIP, when valid, is the address the SDP offer announces
	// instead of the one the RTP socket binds and sends from: a
	// multi-homed host or a gateway behind NAT, whose media the guard must
	// latch onto (RFC 4961).
	AnnounceMediaIP netip.Addr
	// Headers are extra headers for the INVITE.
	Headers []sip.Header
}

func (o *CallOptions) validate() error {
	if o.Target == "" {
		return errors.New("siptest: call: no target")
	}
	if o.Caller == "" {
		return errors.New("siptest: call: no caller number")
	}
	switch o.PAIScheme {
	case "":
		o.PAIScheme = "sip"
	case "sip", "tel":
	default:
		return fmt.Errorf("siptest: call: P-Asserted-Identity scheme %q: want sip or tel", o.PAIScheme)
	}
	if o.FromUser == "" {
		o.FromUser = o.Caller
	}
	if o.Callee == "" {
		o.Callee = DefaultCallee
	}
	return nil
}

// Call places a call: it sends the INVITE with an SDP offer and returns at
// once. The call then records every response with its arrival time,
// acknowledges a 2xx (RFC 3261 §13.2.2.4; sipgo's transaction acknowledges
// a non-2xx, §17.1.1.3), and takes its RTP. ctx bounds sending the INVITE
// only; the call lives until it ends or Close.
func (t *FakeTrunk) Call(ctx context.Context, opts CallOptions) (*Call, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	host, port, err := splitTarget(opts.Target)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("siptest: call: trunk %w", ErrClosed)
	}

	ms, err := newMediaSession(t.cfg.MediaIP, false, t.cfg.Logger)
	if err != nil {
		return nil, err
	}
	announce := t.cfg.MediaIP
	if opts.AnnounceMediaIP.IsValid() {
		announce = opts.AnnounceMediaIP
	}
	caps := sdp.Capabilities{
		Addr: announce, Port: int(ms.local.Port()), Codecs: opts.Codecs,
		NoTelephoneEvent: opts.NoTelephoneEvent, Username: "trunk",
		SessionID: uint64(random32()), SessionVersion: 1,
	}
	offer, err := sdp.NewOffer(caps)
	if err != nil {
		ms.close()
		return nil, fmt.Errorf("siptest: call: sdp offer: %w", err)
	}

	ep := t.ep
	me := ep.addr.Addr().String()
	ruri := sip.Uri{Scheme: "sip", User: opts.Callee, Host: host, Port: port}
	c := &Call{
		trunk:   t,
		ep:      ep,
		opts:    opts,
		callID:  sip.GenerateTagN(24) + "@" + me,
		ruri:    ruri,
		via:     ep.via(),
		from:    &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: opts.FromUser, Host: me}, Params: sip.NewParams()},
		to:      &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: opts.Callee, Host: host}},
		contact: ep.contact("trunk"),
		cseq:    1 + random32()%1000,
		caps:    caps,
		offer:   offer,
		media:   ms,
		done:    make(chan struct{}),
	}
	c.from.Params.Add("tag", sip.GenerateTagN(16))
	c.localCSeq = c.cseq

	req := sip.NewRequest(sip.INVITE, ruri)
	req.AppendHeader(sip.HeaderClone(c.via))
	req.AppendHeader(sip.HeaderClone(c.from))
	req.AppendHeader(sip.HeaderClone(c.to))
	callID := sip.CallIDHeader(c.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: sip.INVITE})
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxFwd)
	req.AppendHeader(sip.HeaderClone(c.contact))
	if !opts.NoPAI {
		pai := "<sip:" + opts.Caller + "@" + me + ">"
		if opts.PAIScheme == "tel" {
			pai = "<tel:" + opts.Caller + ">"
		}
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai))
	}
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS"))
	req.AppendHeader(sip.NewHeader("User-Agent", "callguard-siptest-trunk"))
	for _, h := range opts.Headers {
		req.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader("application/sdp")
	req.AppendHeader(&ct)
	req.SetBody(offer.Marshal())
	c.invite = req.Clone()

	t.mu.Lock()
	t.calls[c.callID] = c
	t.mu.Unlock()

	c.sentAt = time.Now()
	tx, err := ep.cli.TransactionRequest(ctx, req)
	if err != nil {
		t.forget(c)
		ms.close()
		return nil, fmt.Errorf("siptest: call %s -> %s: send INVITE: %w", opts.Caller, opts.Target, err)
	}
	c.tx = tx
	go c.run()
	return c, nil
}

func (t *FakeTrunk) forget(c *Call) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls[c.callID] == c {
		delete(t.calls, c.callID)
	}
}

// onBye answers a BYE from the guard (RFC 3261 §15.1.2): 200 OK for a call
// of ours, 481 for anything else.
func (t *FakeTrunk) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := t.call(req.CallID().Value())
	if c == nil || !c.isOurDialog(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	c.noteBye(time.Now())
	c.end("BYE from the guard")
}

// onInvite takes a re-INVITE (RFC 3261 §14.2), for a guard that bridges by
// re-negotiating media: answer the new offer and send RTP where it says. A
// new INVITE (no To tag) is refused: a trunk places calls, it takes none.
func (t *FakeTrunk) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to == nil || !to.Params.Has("tag") {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusForbidden, "Fake trunk takes no calls", nil))
		return
	}
	c := t.call(req.CallID().Value())
	if c == nil || !c.isOurDialog(req) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.reinvite(req, tx)
}

func (t *FakeTrunk) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if c := t.call(req.CallID().Value()); c != nil {
		c.ackReceived(req.CSeq().SeqNo)
	}
}

func (t *FakeTrunk) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, INFO, OPTIONS"))
	_ = tx.Respond(res)
}

func (t *FakeTrunk) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	code, reason := sip.StatusOK, "OK"
	if c := t.call(req.CallID().Value()); c == nil {
		code, reason = sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist"
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// userOf returns the user part of a name-addr header value such as
// "<tel:+7999>;tag=x" or "Bob <sip:+7999@host>".
func userOf(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.IndexAny(v, "@;"); i >= 0 {
		v = v[:i]
	}
	return v
}
