package media

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RefusedLogEvery is how often, at most, a Peer logs the sources it
// refuses: the first refusal of a call at once, then one summary record per
// interval, so a flood of stray packets cannot flood the log.
const RefusedLogEvery = 10 * time.Second

// PeerConfig configures a Peer. Announced is required.
type PeerConfig struct {
	// Announced is the media address of the peer's SDP (c= address, m=
	// port): where media goes until the peer's own packets say otherwise.
	Announced netip.AddrPort
	// AnyPort accepts packets from the announced address with any source
	// port (asymmetric gateways that send from another port than they
	// receive on); media then still goes to the announced port.
	AnyPort bool
	// Trusted reports whether a source address other than the announced
	// one may be latched onto: the signalling peer's address and the
	// configured media ranges. nil trusts none (strict SDP address).
	Trusted func(netip.Addr) bool
	// OnLatch is called once, when the peer latches onto a source other
	// than the announced address (for counting); OnRefuse for every
	// packet refused. Both run on the receiving goroutine.
	OnLatch  func(announced, source netip.AddrPort)
	OnRefuse func(source netip.AddrPort)
	// Logger receives the latch (info) and refused sources (warn, at most
	// once per RefusedLogEvery); nil discards.
	Logger *slog.Logger
	// Now reads the clock for the refusal log's rate limit; nil is
	// time.Now.
	Now func() time.Time
}

// Peer is the far end of one RTP stream as the guard learns it: symmetric
// RTP (RFC 4961), "latching". Until the first accepted packet, media goes to
// the SDP address and packets are accepted from it or from a trusted source.
// The first accepted packet fixes the stream's source: from then on only
// that source is accepted, and if it is not the SDP address, media is sent
// back to it. Multi-homed hosts and gateways behind NAT announce one
// address and send from another; restricting latching to trusted sources
// keeps someone who guesses the port from taking over a challenge with
// injected keys. A Peer is safe for concurrent use: the receiver accepts,
// senders read the destination.
type Peer struct {
	cfg  PeerConfig
	log  *slog.Logger
	dest atomic.Pointer[net.UDPAddr]

	mu          sync.Mutex
	source      netip.AddrPort // the latched source, valid once latched
	anyPort     bool           // the latched source is the SDP address with AnyPort
	latched     bool
	refused     uint64
	lastLog     time.Time
	sinceLogged uint64
}

// NewPeer validates cfg.
func NewPeer(cfg PeerConfig) (*Peer, error) {
	if !cfg.Announced.IsValid() {
		return nil, errors.New("media: peer needs the announced media address")
	}
	cfg.Announced = unmapAP(cfg.Announced)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Peer{cfg: cfg, log: log}
	p.dest.Store(net.UDPAddrFromAddrPort(cfg.Announced))
	return p, nil
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Dest is where media to the peer goes: the latched source, or the SDP
// address before (or when latched onto the SDP address itself).
func (p *Peer) Dest() *net.UDPAddr { return p.dest.Load() }

// Announced is the SDP address.
func (p *Peer) Announced() netip.AddrPort { return p.cfg.Announced }

// Latched returns the source the peer latched onto, if any.
func (p *Peer) Latched() (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.source, p.latched
}

// Refused is the count of packets refused for their source.
func (p *Peer) Refused() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Accept reports whether a packet from source belongs to the stream,
// latching onto it if it is the first acceptable one.
func (p *Peer) Accept(source netip.AddrPort) bool {
	source = unmapAP(source)
	p.mu.Lock()
	if p.latched {
		ok := source == p.source || (p.anyPort && source.Addr() == p.source.Addr())
		if ok {
			p.mu.Unlock()
			return true
		}
		return p.refuseLocked(source)
	}
	ann := p.cfg.Announced
	switch {
	case source.Addr() == ann.Addr() && (p.cfg.AnyPort || source.Port() == ann.Port()):
		// The SDP address itself: media keeps going where it was
		// announced (an asymmetric gateway's sending port may not
		// receive).
		p.source, p.anyPort, p.latched = ann, p.cfg.AnyPort, true
		p.mu.Unlock()
		return true
	case p.cfg.Trusted != nil && p.cfg.Trusted(source.Addr()):
		p.source, p.latched = source, true
		p.dest.Store(net.UDPAddrFromAddrPort(source))
		p.mu.Unlock()
		p.log.Info("RTP latched onto the peer's real source", "sdpAddress", ann.String(), "source", source.String())
		if p.cfg.OnLatch != nil {
			p.cfg.OnLatch(ann, source)
		}
		return true
	}
	return p.refuseLocked(source)
}

// refuseLocked counts a refused packet and logs it, rate-limited; it
// releases p.mu.
func (p *Peer) refuseLocked(source netip.AddrPort) bool {
	p.refused++
	p.sinceLogged++
	now := p.cfg.Now()
	var n uint64
	if p.lastLog.IsZero() || now.Sub(p.lastLog) >= RefusedLogEvery {
		n, p.sinceLogged, p.lastLog = p.sinceLogged, 0, now
	}
	expected := p.cfg.Announced
	if p.latched {
		expected = p.source
	}
	p.mu.Unlock()
	if n > 0 {
		p.log.Warn("RTP from an untrusted source ignored", "source", source.String(), "expected", expected.String(), "packets", n)
	}
	if p.cfg.OnRefuse != nil {
		p.cfg.OnRefuse(source)
	}
	return false
}
