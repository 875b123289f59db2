// Package guard is the SIP side of callguard: it listens for the carrier's
// INVITEs on UDP and TCP, refuses untrusted sources, validates what sipgo
// parsed, reads the caller and the callee, and hands each call to a call
// actor (actors/call), which asks the caller grain for the verdict and
// orders the session here to carry it out.
//
// # B2BUA, not a proxy
//
// The guard is a back-to-back user agent: each call has a caller leg (the
// guard as UAS towards the carrier) and, when it goes through, a PBX leg
// (the guard as UAC towards GUARD_PBX_URI), each its own dialog. A proxy
// could forward passed calls, but a challenged call must be answered by
// the guard itself (183 with its own SDP, then 200 OK) and later joined to
// the PBX, and the guard must know when each leg was answered and ended to
// time the grace window and record billing. One B2BUA model serves both
// paths, and keeps the PBX's topology and the carrier's apart.
//
// Pass path: the PBX INVITE carries the caller's SDP offer and the PBX's
// answer goes back unchanged, so media flows end to end between carrier
// and PBX; the guard relays signalling only: the PBX's 18x, 200 and error
// responses, CANCEL, BYE both ways and INFO, and ACKs each leg's 2xx
// itself. The caller's identity (From, P-Asserted-Identity, Privacy) is
// copied to the PBX leg. Re-INVITE and UPDATE inside a call are answered
// by the guard with the description it already gave that leg (a session
// refresh keeps the session), not relayed.
//
// Challenge path: the guard answers with its own media (sip/sdp, sip/media),
// plays the code (sounds) and collects keys (sip/dtmf). A caller who types
// the code is bridged: the guard INVITEs the PBX with an offer of its own
// media and relays RTP between the two legs (transcoding between PCMU and
// PCMA if the PBX chose the other one, and rewriting telephone-event
// payload types), because the caller's leg is already answered with the
// guard's SDP.
//
// # Who builds what
//
// cmd/callguard builds the guard: it starts the node, builds the call
// spawner (actors/call) with the node's actor system, the grain client, the
// store and the call settings (call.Config), and hands it to New as Calls.
// The guard owns the SIP side only: its listeners, sessions, dialogs and
// media ports; it knows no store, actor system or PID.
//
// # Who owns what
//
// sipgo runs each request's handler on its own goroutine. A call's SIP
// state (both legs, the media) belongs to its session, whose loop goroutine
// runs every change in order (session.post); handlers, sipgo callbacks,
// the call actor's orders and the PBX leg's goroutine all post to it.
// Blocking SIP operations (waiting for an ACK, a BYE's 200, the PBX's
// answer) run on helper goroutines that post their results back. The
// dialog registry maps dialog IDs to sessions for in-dialog requests.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/trust"
	"github.com/callguard/callguard/sip/validate"
)

// Calls starts the call actors that decide and time each call, and waits
// for them on shutdown. cmd fills it with the node's *call.Spawner.
type Calls interface {
	// Start starts the actor of one call; the session tells the returned
	// Call the call's facts and receives its orders through fx.
	Start(setup call.Setup, fx call.Effects) (*call.Call, error)
	// Wait returns once every call has finished its work (actors, outcome
	// reports, call stream writes), or with ctx's error.
	Wait(ctx context.Context) error
	// Counters are the counters of every call started.
	Counters() *call.Counters
	// Saturated reports whether the node is too busy to decide one more
	// call now (its decisions in flight are at their bound).
	Saturated() bool
}

// Deps is what a Guard uses but does not own.
type Deps struct {
	// Calls runs the calls (required).
	Calls   Calls
	Numbers *phone.Normalizer
	// Clock stamps the SIP side's facts (when an INVITE arrived, when a
	// leg answered or ended); time.Now in production.
	Clock  func() time.Time
	Logger *slog.Logger
	// Observer counts SIP messages and refusals; nil is fine.
	Observer Observer
}

// Observer is told of the SIP traffic, for metrics. Its methods must not
// block.
type Observer interface {
	RequestIn(method string)
	ResponseOut(method string, status int)
	// RejectedUntrusted: a request refused for its untrusted source.
	RejectedUntrusted()
	// Overloaded: the guard shed load; reason is one of the Overload
	// constants.
	Overloaded(reason string)
	// Transfer: a transfer (REFER) or redirect (3xx) of the PBX was
	// handled; kind and outcome are the Transfer* constants.
	Transfer(kind, outcome string)
}

// Why the guard shed load, as Observer.Overloaded says it.
const (
	// OverloadMaxCalls: an INVITE refused with 503 because MAX_CALLS
	// calls were in progress.
	OverloadMaxCalls = "max-calls"
	// OverloadBusy: a call refused with 503 because the node was too busy
	// to decide it (caller.ErrBusy).
	OverloadBusy = "busy"
	// OverloadTCP: a TCP connection closed at accept because
	// SIP_TCP_MAX_CONNS were open.
	OverloadTCP = "tcp-conns"
)

type noObserver struct{}

func (noObserver) RequestIn(string)        {}
func (noObserver) ResponseOut(string, int) {}
func (noObserver) RejectedUntrusted()      {}
func (noObserver) Overloaded(string)       {}
func (noObserver) Transfer(string, string) {}

// Guard is the SIP front of one node.
type Guard struct {
	set  settings
	d    Deps
	log  *slog.Logger
	sips *slog.Logger // sipgo's own logs, bounded

	ports   *media.PortAllocator
	calls   Calls
	dialogs registry
	stats   counters

	ua  *sipgo.UserAgent
	srv *sipgo.Server

	provisionals *provisionals // the PBX's 18x in order of arrival, see order.go

	// Set by Serve once listening; read after ready is closed.
	ready    chan struct{}
	udpAddr  netip.AddrPort
	tcpAddr  netip.AddrPort
	client   *sipgo.Client
	dialogUA map[string]*sipgo.DialogUA // by transport, "UDP" / "TCP"
	laddr    sip.Addr                   // the UDP listener, to send from

	mu       sync.Mutex
	sessions map[*session]struct{}
	// starting counts INVITEs admitted under MAX_CALLS whose session is
	// being started; with the sessions they make up the calls in
	// progress.
	starting int
	closing  bool
	served   atomic.Bool
}

// counters are the guard's own statistics; the call actors keep theirs.
type counters struct {
	requests, invites, options, refused, invalid, malformed atomic.Uint64
	noDialog, panics                                        atomic.Uint64
	maxCalls, busy, tcpShed                                 atomic.Uint64
	noPrack, lateOfferRejected                              atomic.Uint64
	lateOfferChallenged                                     atomic.Uint64
	mediaLatched, mediaRefused                              atomic.Uint64
	rtcpRelayed                                             atomic.Uint64
}

// New checks cfg and prepares a guard; Serve starts it.
func New(cfg Config, deps Deps) (*Guard, error) {
	set, err := cfg.parse()
	if err != nil {
		return nil, err
	}
	switch {
	case deps.Calls == nil:
		return nil, errors.New("guard: no Calls")
	case deps.Numbers == nil:
		return nil, errors.New("guard: no phone number normaliser")
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Observer == nil {
		deps.Observer = noObserver{}
	}
	ports, err := media.NewPortAllocator(set.rtpLo, set.rtpHi)
	if err != nil {
		return nil, fmt.Errorf("%w: GUARD_RTP_PORTS: %v", ErrConfig, err)
	}
	g := &Guard{
		set: set, d: deps, log: deps.Logger.With("component", "sip"), ports: ports, calls: deps.Calls,
		ready: make(chan struct{}), sessions: map[*session]struct{}{},
		dialogUA: map[string]*sipgo.DialogUA{},
	}
	g.dialogs.m = map[string]dialogRef{}
	// sipgo logs a datagram it cannot parse with its bytes; bound that,
	// and count the failures.
	g.sips = newBoundedLogger(deps.Logger.With("component", "sipgo"), 20, 512, func(r slog.Record) {
		if r.Message == "failed to parse" {
			g.stats.malformed.Add(1)
		}
	})
	g.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent("callguard"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(g.sips)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(g.sips),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				g.log.Debug("response matches no transaction", "status", r.StatusCode, "callId", callIDOf(r))
			}),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("guard: SIP user agent: %w", err)
	}
	g.provisionals = newProvisionals()
	g.ua.TransportLayer().OnMessage(g.provisionals.observe)
	g.srv, err = sipgo.NewServer(g.ua, sipgo.WithServerLogger(g.sips))
	if err != nil {
		return nil, fmt.Errorf("guard: SIP server: %w", err)
	}
	g.srv.OnInvite(g.guarded(g.onInvite))
	g.srv.OnAck(g.guarded(g.onAck))
	g.srv.OnBye(g.guarded(g.onBye))
	g.srv.OnCancel(g.guarded(g.onCancel))
	g.srv.OnInfo(g.guarded(g.onInfo))
	g.srv.OnOptions(g.guarded(g.onOptions))
	g.srv.OnPrack(g.guarded(g.onPrack))
	g.srv.OnUpdate(g.guarded(g.onUpdate))
	g.srv.OnRefer(g.guarded(g.onRefer))
	g.srv.OnNoRoute(g.guarded(g.onOther))
	return g, nil
}

// Serve listens on UDP and TCP at GUARD_SIP_LISTEN and serves until ctx
// ends; then it hangs up the calls in progress, waits (a few seconds at
// most) for their BYEs and records, and closes. It returns nil after a
// clean stop.
func (g *Guard) Serve(ctx context.Context) error {
	if !g.served.CompareAndSwap(false, true) {
		return errors.New("guard: Serve called twice")
	}
	udp, tcp, err := listen(ctx, g.set.listen)
	if err != nil {
		return err
	}
	g.udpAddr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	g.tcpAddr = tcp.Addr().(*net.TCPAddr).AddrPort()
	if err := g.setupClient(udp); err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	close(g.ready)
	g.log.Info("SIP guard listening", "udp", g.udpAddr.String(), "tcp", g.tcpAddr.String(),
		"pbx", g.set.pbx.String(), "trusted", g.set.trusted.String(),
		"media", g.set.mediaIP.String(), "rtpPorts", fmt.Sprintf("%d-%d", g.set.rtpLo, g.set.rtpHi))
	errc := make(chan error, 2)
	go func() { errc <- g.srv.ServeUDP(udp) }()
	bounded := newBoundedListener(tcp, g.set.maxTCP, g.set.tcpIdle, func() { g.overloaded(OverloadTCP) })
	go func() { errc <- g.srv.ServeTCP(bounded) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("guard: SIP listener stopped: %w", serveErr)
	}
	g.shutdown()
	udp.Close()
	tcp.Close()
	drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.calls.Wait(drain); err != nil {
		g.log.Warn("call records still pending at shutdown", "err", err)
	}
	if err := g.ua.Close(); err != nil {
		g.log.Debug("close SIP user agent", "err", err)
	}
	return serveErr
}

// udpBuffer is the SIP UDP socket's receive and send buffer. The kernel's
// default (~208 KiB on Linux) holds a few hundred datagrams: a burst, or a
// pause of the guard (a GC cycle, a slow fsync), overflows it, and a
// datagram dropped there is an INVITE retransmitted 500 ms later at best,
// or a provisional response lost for good. 4 MiB is what the SIPp peers of
// the benchmark use; raise net.core.rmem_max/wmem_max on the host to get it.
const udpBuffer = 4 << 20

// listen binds UDP and TCP on the same address. With port 0 the UDP
// socket picks the port and TCP takes the same one (retrying a few times
// if that TCP port happens to be taken).
func listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	host, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		udp, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("guard: listen on UDP %s: %w", addr, err)
		}
		if u, ok := udp.(*net.UDPConn); ok {
			// Best effort: the kernel caps both at net.core.rmem_max and
			// wmem_max, and an error leaves the defaults.
			_ = u.SetReadBuffer(udpBuffer)
			_ = u.SetWriteBuffer(udpBuffer)
		}
		uport := strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port)
		tcp, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, uport))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt >= 5 {
			return nil, nil, fmt.Errorf("guard: listen on TCP %s: %w", net.JoinHostPort(host, uport), err)
		}
	}
}

// setupClient creates the client side of the user agent: requests (to the
// PBX, BYEs to callers) leave from the listening UDP socket, so replies
// and in-dialog requests come back to the address in our Via and Contact.
func (g *Guard) setupClient(udp net.PacketConn) error {
	host := g.advertisedHost()
	port := int(g.udpAddr.Port())
	cli, err := sipgo.NewClient(g.ua, sipgo.WithClientHostname(host), sipgo.WithClientPort(port), sipgo.WithClientLogger(g.sips))
	if err != nil {
		return fmt.Errorf("guard: SIP client: %w", err)
	}
	g.client = cli
	lhost, _, _ := net.SplitHostPort(udp.LocalAddr().String())
	g.laddr = sip.Addr{IP: net.ParseIP(lhost), Port: port, Hostname: lhost}
	for _, tp := range []string{"UDP", "TCP"} {
		contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "callguard", Host: host, Port: port}}
		if tp == "TCP" {
			contact.Address.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
		}
		g.dialogUA[tp] = &sipgo.DialogUA{Client: cli, ContactHDR: contact}
	}
	return nil
}

// advertisedHost is the host the guard puts in Via and Contact: the listen
// host when it is a specific address, else the media address.
func (g *Guard) advertisedHost() string {
	if a := g.udpAddr.Addr(); a.IsValid() && !a.IsUnspecified() {
		return a.Unmap().String()
	}
	return g.set.mediaIP.String()
}

// Ready is closed once Serve listens.
func (g *Guard) Ready() <-chan struct{} { return g.ready }

// UDPAddr and TCPAddr are the listening addresses (valid after Ready).
func (g *Guard) UDPAddr() netip.AddrPort { return g.udpAddr }

// TCPAddr is the TCP listening address (valid after Ready).
func (g *Guard) TCPAddr() netip.AddrPort { return g.tcpAddr }

// Refused is the counter of requests refused for their source.
func (g *Guard) Refused() *trust.Refused { return g.set.trusted.Refused() }

// Drain waits until every call actor, outcome report and call stream
// writer has finished, or ctx ends.
func (g *Guard) Drain(ctx context.Context) error { return g.calls.Wait(ctx) }

// Stats is a snapshot of the guard's counters, for metrics.
type Stats struct {
	// Requests counts every request handled; Invites the initial INVITEs
	// among them; Options the OPTIONS answered.
	Requests, Invites, Options uint64
	// Refused counts requests refused because of their source (403).
	Refused uint64
	// Invalid counts requests refused by validation (4xx/5xx before any
	// decision); Malformed the datagrams sipgo could not parse at all.
	Invalid, Malformed uint64
	// NoDialog counts in-dialog requests matching no live call (481).
	NoDialog uint64
	// Panics counts handler panics caught (each answered 500).
	Panics uint64
	// OverMaxCalls counts INVITEs refused for MAX_CALLS, Busy the calls
	// refused because the node was too busy to decide them (both 503 with
	// Retry-After), TCPShed the TCP connections closed at accept for
	// SIP_TCP_MAX_CONNS.
	OverMaxCalls, Busy, TCPShed uint64
	// NoPrack counts calls ended because a reliable provisional response
	// got no PRACK in 64*T1 (RFC 3262 §3).
	NoPrack uint64
	// LateOfferRejected counts INVITEs without an SDP offer refused
	// because the call was to be challenged (488).
	LateOfferRejected uint64
	// LateOfferChallenged counts late offers challenged with the guard's
	// own offer in a reliable 183 (the carrier has 100rel). Those passed
	// by GUARD_LATE_OFFER=pass are counted by the call actors
	// (call.Counters.ChallengeFallbacks): only they know the verdict.
	LateOfferChallenged uint64
	// MediaLatched counts RTP streams latched onto a trusted source other
	// than their SDP address (symmetric RTP); MediaRefused the RTP
	// packets dropped for their source.
	MediaLatched, MediaRefused uint64
	// RTCPRelayed counts RTCP packets relayed between the legs of calls
	// bridged after a challenge.
	RTCPRelayed uint64
	// ActiveSessions is the calls in progress on the SIP side; Dialogs
	// the dialogs they hold (one or two each).
	ActiveSessions, Dialogs int
	// RTPPortsFree is the free RTP ports.
	RTPPortsFree int
	// Calls are the call actors' counters.
	Calls CallStats
}

// CallStats are the call actors' counters (see call.Counters).
type CallStats struct {
	Started, Passed, Challenged, Rejected, Observed, StoreDown uint64
	ChallengesPassed, ChallengesFailed, ChallengesAbandoned    uint64
	Answered, Billed, Unbilled                                 uint64
	EventsWritten, EventsDropped, OutcomesFailed               uint64
	Active                                                     int64
}

// Stats returns the counters now.
func (g *Guard) Stats() Stats {
	c := g.calls.Counters()
	g.mu.Lock()
	active := len(g.sessions)
	g.mu.Unlock()
	return Stats{
		Requests: g.stats.requests.Load(), Invites: g.stats.invites.Load(), Options: g.stats.options.Load(),
		Refused: g.stats.refused.Load(), Invalid: g.stats.invalid.Load(), Malformed: g.stats.malformed.Load(),
		NoDialog: g.stats.noDialog.Load(), Panics: g.stats.panics.Load(),
		OverMaxCalls: g.stats.maxCalls.Load(), Busy: g.stats.busy.Load(), TCPShed: g.stats.tcpShed.Load(),
		NoPrack: g.stats.noPrack.Load(), LateOfferRejected: g.stats.lateOfferRejected.Load(),
		LateOfferChallenged: g.stats.lateOfferChallenged.Load(),
		MediaLatched:        g.stats.mediaLatched.Load(), MediaRefused: g.stats.mediaRefused.Load(),
		RTCPRelayed:    g.stats.rtcpRelayed.Load(),
		ActiveSessions: active, Dialogs: g.dialogs.len(), RTPPortsFree: g.ports.Available(),
		Calls: CallStats{
			Started: c.Started.Load(), Passed: c.Passed.Load(), Challenged: c.Challenged.Load(),
			Rejected: c.Rejected.Load(), Observed: c.Observed.Load(), StoreDown: c.StoreDown.Load(),
			ChallengesPassed: c.ChallengesPassed.Load(), ChallengesFailed: c.ChallengesFailed.Load(),
			ChallengesAbandoned: c.ChallengesAbandoned.Load(),
			Answered:            c.Answered.Load(), Billed: c.Billed.Load(), Unbilled: c.Unbilled.Load(),
			EventsWritten: c.EventsWritten.Load(), EventsDropped: c.EventsDropped.Load(),
			OutcomesFailed: c.OutcomesFailed.Load(), Active: c.Active.Load(),
		},
	}
}

// shutdown hangs up every call in progress and waits (3 s at most) for
// their sessions to finish: BYEs and final responses sent, PBX legs
// cancelled, media stopped.
func (g *Guard) shutdown() {
	g.mu.Lock()
	g.closing = true
	all := make([]*session, 0, len(g.sessions))
	for s := range g.sessions {
		all = append(all, s)
	}
	g.mu.Unlock()
	for _, s := range all {
		s.Hangup(call.Hangup{Cause: schema.EndShutdown, Detail: textShutdown})
	}
	deadline := time.After(3 * time.Second)
	for _, s := range all {
		select {
		case <-s.quit:
		case <-deadline:
			g.log.Warn("calls still ending at shutdown", "calls", len(all))
			return
		}
	}
}

// admit reserves a place for a new call under MAX_CALLS; false when the
// node is full. The caller calls started once the session is started, or
// failed to.
func (g *Guard) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sessions)+g.starting >= g.set.maxCalls {
		return false
	}
	g.starting++
	return true
}

// started releases the reservation of admit: the session is in sessions
// now, or will never be.
func (g *Guard) started() {
	g.mu.Lock()
	g.starting--
	g.mu.Unlock()
}

// overloaded counts load shed for reason (an Overload constant).
func (g *Guard) overloaded(reason string) {
	switch reason {
	case OverloadMaxCalls:
		g.stats.maxCalls.Add(1)
	case OverloadBusy:
		g.stats.busy.Add(1)
	case OverloadTCP:
		g.stats.tcpShed.Add(1)
	}
	g.d.Observer.Overloaded(reason)
}

func (g *Guard) addSession(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.sessions[s] = struct{}{}
	return true
}

func (g *Guard) dropSession(s *session) {
	g.mu.Lock()
	delete(g.sessions, s)
	g.mu.Unlock()
}

// guarded wraps a handler: counts the request, and turns a panic into a
// 500 and a log line instead of a crashed process (sipgo runs handlers on
// bare goroutines).
func (g *Guard) guarded(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		g.stats.requests.Add(1)
		g.d.Observer.RequestIn(string(req.Method))
		defer func() {
			if r := recover(); r != nil {
				g.stats.panics.Add(1)
				g.log.Error("SIP handler panicked", "method", req.Method, "panic", r, "source", req.Source())
				if req.Method != sip.ACK {
					g.refuseWith(req, tx, refusalOf(refPanic))
				}
			}
		}()
		h(req, tx)
	}
}

// respond sends a response built from req, with optional extra headers.
// A non-empty reasonText adds a Reason header (RFC 3326).
func (g *Guard) respond(req *sip.Request, tx sip.ServerTransaction, status int, reasonText string, hdrs []sip.Header) {
	res := sip.NewResponseFromRequest(req, status, phrase(status), nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if reasonText != "" {
		res.AppendHeader(reasonHeader("SIP", status, reasonText))
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug("respond failed", "status", status, "method", req.Method, "err", err)
		return
	}
	g.d.Observer.ResponseOut(string(req.Method), status)
}

// trusted checks the request's source against GUARD_TRUSTED_PEERS,
// counting refusals.
func (g *Guard) trusted(req *sip.Request) bool {
	src, err := trust.ParseSource(req.Source())
	if err != nil {
		g.set.trusted.Refused().Add(netip.Addr{})
		return false
	}
	return g.set.trusted.Check(src)
}

// refuse answers an untrusted source: 403 Forbidden (RFC 3261 §21.4.4:
// "the server understood the request, but is refusing to fulfill it").
func (g *Guard) refuse(req *sip.Request, tx sip.ServerTransaction) {
	g.stats.refused.Add(1)
	g.d.Observer.RejectedUntrusted()
	g.log.Debug("request from an untrusted source refused", "method", req.Method, "source", req.Source())
	g.refuseWith(req, tx, refusalOf(refUntrusted))
}

// valid runs package validate's checks (RFC 3261 §8.2, §16.3) and answers
// a bad request; it reports whether the request may be processed.
func (g *Guard) valid(req *sip.Request, tx sip.ServerTransaction) bool {
	exts := []string{tag100rel}
	if req.Method == sip.INVITE || req.Method == sip.UPDATE {
		// Session timers (RFC 4028): see timers.go. A refresh is relayed
		// on a passed call and answered by the guard otherwise.
		exts = append(exts, tagTimer)
	}
	r := validate.Check(req, validate.Options{Extensions: exts})
	if r.OK {
		return true
	}
	g.stats.invalid.Add(1)
	g.log.Debug("invalid request", "method", req.Method, "status", r.Status, "why", r.Reason, "source", req.Source())
	if req.Method == sip.ACK {
		return false // never answered (RFC 3261 §17.2.3)
	}
	var hdrs []sip.Header
	if len(r.Unsupported) > 0 {
		hdrs = append(hdrs, sip.NewHeader("Unsupported", joinComma(r.Unsupported)))
	}
	if r.Accept != "" {
		hdrs = append(hdrs, sip.NewHeader("Accept", r.Accept))
	}
	if r.AcceptEncoding != "" {
		hdrs = append(hdrs, sip.NewHeader("Accept-Encoding", r.AcceptEncoding))
	}
	res := sip.NewResponseFromRequest(req, r.Status, r.Reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug("respond failed", "status", r.Status, "err", err)
	}
	return false
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

func callIDOf(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// inDialog reports whether req belongs to a dialog: its To has a tag (RFC
// 3261 §12.2).
func inDialog(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params.Has("tag")
}

// allowed is the Allow header value: the methods the guard handles.
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER"

// onOptions answers keep-alives. A trusted source gets 200 OK with what
// the guard supports (RFC 3261 §11.2). An untrusted one gets 403, as any
// other request of its: one rule ("untrusted sources are refused and
// counted") is easier to audit than a special case, a 403 is no larger
// than the request (no amplification), and a misconfigured trunk's
// operator sees the refusal in their own logs.
func (g *Guard) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if !inDialog(req) && !g.trusted(req) {
		g.refuse(req, tx)
		return
	}
	if !g.valid(req, tx) {
		return
	}
	g.stats.options.Add(1)
	g.respond(req, tx, 200, "", []sip.Header{
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Supported", tag100rel+", "+tagTimer),
		sip.NewHeader("Accept", "application/sdp, application/dtmf-relay, application/dtmf"),
	})
}

// onOther answers methods the guard does not handle: 403 to untrusted
// sources, else 405 with Allow (RFC 3261 §8.2.1).
func (g *Guard) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if !inDialog(req) && !g.trusted(req) {
		g.refuse(req, tx)
		return
	}
	if !g.valid(req, tx) {
		return
	}
	g.refuseWith(req, tx, refusalOf(refNotAllowed), sip.NewHeader("Allow", allowed))
}

// onPrack acknowledges a reliable provisional response the guard sent
// (RFC 3262 §3); one that matches none gets 481 (§7.2).
func (g *Guard) onPrack(req *sip.Request, tx sip.ServerTransaction) {
	g.inDialog((*session).onPrack)(req, tx)
}

// onCancel answers a CANCEL that matched no INVITE transaction (sipgo's
// transaction layer handles the others: 200 to the CANCEL, 487 to the
// INVITE, RFC 3261 §9.2): 481 (§9.2: "If the UAS did not find a matching
// transaction ... it SHOULD respond to the CANCEL with a 481").
func (g *Guard) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	if !g.trusted(req) {
		g.refuse(req, tx)
		return
	}
	g.stats.noDialog.Add(1)
	g.refuseWith(req, tx, refusalOf(refNoDialog))
}

// onAck passes an ACK for a 2xx (a new transaction, RFC 3261 §17.1.1.3) to
// its dialog. ACKs are never answered; one that matches nothing is dropped.
func (g *Guard) onAck(req *sip.Request, tx sip.ServerTransaction) {
	ref, ok := g.dialogs.lookup(req)
	if !ok {
		g.log.Debug("ACK matches no dialog", "callId", callIDOf(req))
		return
	}
	ref.s.onAck(ref.leg, req, tx)
}

// inDialog routes a request that belongs to an existing dialog (BYE, INFO,
// UPDATE) to its session and leg. One that matches no dialog gets 481
// (RFC 3261 §12.2.2) from a trusted source, 403 from anyone else.
func (g *Guard) inDialog(handle func(s *session, l leg, req *sip.Request, tx sip.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		ref, ok := g.dialogs.lookup(req)
		if !ok {
			if !g.trusted(req) {
				g.refuse(req, tx)
				return
			}
			g.stats.noDialog.Add(1)
			g.refuseWith(req, tx, refusalOf(refNoDialog))
			return
		}
		if !g.valid(req, tx) {
			return
		}
		handle(ref.s, ref.leg, req, tx)
	}
}

// onBye ends the call of the dialog the BYE belongs to, on either leg.
func (g *Guard) onBye(req *sip.Request, tx sip.ServerTransaction) {
	g.inDialog((*session).onBye)(req, tx)
}

// onInfo takes DTMF from the caller (SIP INFO) during a challenge, and
// relays INFO between the legs of a connected call.
func (g *Guard) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	g.inDialog((*session).onInfo)(req, tx)
}

// onUpdate handles UPDATE (RFC 3311) inside a dialog: relayed on passed
// calls, see session.onRefresh.
func (g *Guard) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	g.inDialog((*session).onRefresh)(req, tx)
}
