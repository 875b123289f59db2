package guard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/trust"
	"github.com/callguard/callguard/sounds"
)

// ErrConfig means the configuration is refused; the message says why.
var ErrConfig = errors.New("SIP guard configuration")

// DefaultListen is where the guard listens for SIP unless told otherwise:
// loopback only. A guard started with no configuration then exposes
// nothing (its only trusted peers are loopback too), and 5060 is where
// a carrier trunk or a local test caller looks first. Set GUARD_SIP_LISTEN
// to the trunk-facing address (e.g. 0.0.0.0:5060, with the carrier's
// addresses in GUARD_TRUSTED_PEERS) to take real traffic.
const DefaultListen = "127.0.0.1:5060"

// The overload bounds' defaults (Config's envDefault tags say the same;
// TestDefaultConfig checks it): see Config.MaxCalls and the fields after.
const (
	DefaultMaxCalls    = 2000
	defaultRetryAfter  = 5 * time.Second
	defaultMaxTCPConns = 256
	defaultTCPIdle     = 120 * time.Second
)

// Config configures the SIP guard: its listeners, trusted trunks, the PBX,
// prompts and media. How each call is decided and timed (mode, grace,
// code, store-down policy) is call.Config's. The env tags are read under
// the binary's GUARD_ prefix (GUARD_SIP_LISTEN, ...).
type Config struct {
	// Listen is the host:port of the SIP listeners: UDP and TCP on the
	// same address (RFC 3261 §18: a UA must handle both, and a carrier
	// falls back to TCP for messages too large for UDP).
	Listen string `env:"SIP_LISTEN" envDefault:"127.0.0.1:5060" desc:"host:port of the SIP listeners (UDP and TCP); loopback by default so nothing is exposed until configured"`

	// TrustedPeers are the CIDRs (or single addresses) allowed to send
	// calls: the carrier's signalling addresses. Others get 403 and are
	// counted. P-Asserted-Identity is believed only from them.
	TrustedPeers string `env:"TRUSTED_PEERS" envDefault:"127.0.0.1/32,::1/128" desc:"comma-separated CIDRs allowed to send calls (the carrier's trunk); others get 403"`

	// PBXURI is where passed calls go. When the URI has no user part, the
	// dialled number (the Request-URI user of the carrier's INVITE) is put
	// there, so the PBX can route several toll-free numbers.
	PBXURI string `env:"PBX_URI" envDefault:"sip:pbx@127.0.0.1:5070" desc:"SIP URI of the PBX that passed calls are sent to (add ;transport=tcp for TCP)"`

	// Language selects the embedded prompts (ru, en); with SoundsDir set
	// it only labels the operator's recordings.
	Language string `env:"LANGUAGE" envDefault:"ru" desc:"language of the embedded challenge prompts: ru or en"`

	// SoundsDir replaces the embedded prompts with the operator's own
	// recordings (prompt.wav and 0.wav-9.wav, 8 kHz mono 16-bit PCM),
	// checked at start.
	SoundsDir string `env:"SOUNDS_DIR" desc:"folder of the operator's own prompt recordings (prompt.wav, 0.wav ... 9.wav; 8 kHz mono 16-bit); empty uses the embedded ones"`

	// RejectStatus is the final status of a rejected call (RFC 3261 §21:
	// 4xx, 5xx or 6xx). 603 Decline says "this callee does not want the
	// call, do not try elsewhere".
	RejectStatus int `env:"REJECT_STATUS" envDefault:"603" desc:"SIP status of rejected calls (400-699); 603 Decline by default"`

	// MediaIP is the address put in the guard's SDP (c= and o=) and bound
	// for RTP. Empty means the host of SIP_LISTEN, which must then be a
	// specific address.
	MediaIP string `env:"MEDIA_IP" desc:"IP address the guard's RTP uses and announces in SDP (default: the host of GUARD_SIP_LISTEN)"`

	// RTPPorts is the UDP port range of the guard's RTP, "lo-hi". Each
	// challenged call takes one even port (RTCP's odd one above it is kept
	// free); a bridged one takes two.
	RTPPorts string `env:"RTP_PORTS" envDefault:"20000-29999" desc:"UDP port range for the guard's RTP (challenges and bridged calls), lo-hi"`

	// TrustedMedia are the CIDRs (or single addresses) whose RTP the
	// guard latches onto when it comes from elsewhere than the SDP
	// address (symmetric RTP, RFC 4961): a carrier's media gateways, a
	// PBX's media servers. The signalling peer's own address (the source
	// of the INVITE, or of the PBX's answer) is always trusted, as is
	// the SDP address; empty adds nothing to them.
	TrustedMedia string `env:"TRUSTED_MEDIA" desc:"comma-separated CIDRs whose RTP is accepted (latched onto, and answered there) when it comes from another address than the SDP's; the signalling peer's address and the SDP address are always accepted"`

	// PBXTimeout is how long the PBX may take to send its first response
	// (100 Trying included) before it counts as unreachable and the caller
	// gets 503. RFC 3261's Timer B (32 s) is far longer than a caller
	// waits in silence.
	PBXTimeout time.Duration `env:"PBX_TIMEOUT" envDefault:"5s" desc:"time for the PBX's first response before it counts as unreachable (caller gets 503)"`

	// RingTimeout is how long the PBX may ring without answering; then
	// the PBX leg is cancelled and the caller gets 480.
	RingTimeout time.Duration `env:"RING_TIMEOUT" envDefault:"90s" desc:"time the PBX may ring unanswered before the call is ended with 480"`

	// MaxCalls caps the calls in progress on this node (from INVITE to
	// the end of the call, answered ones included). A new INVITE beyond
	// it gets 503 with Retry-After at once, before any decision work, and
	// is counted. The default: a node sustains 750 passed calls/s today
	// (3,400 is the goal), a decision takes at most DECIDE_TIMEOUT (2 s),
	// so 1,500-7,000 calls can be deciding at once at full rate; a
	// toll-free line's PBX rarely has more than a few hundred agents on
	// line. 2,000 keeps every measured rate below the cap while bounding
	// memory (a call's session, dialogs and actor are tens of KiB: the
	// bound is tens of MiB, not the gigabytes an unbounded flood took).
	MaxCalls int `env:"MAX_CALLS" envDefault:"2000" desc:"calls in progress on this node (INVITE to end of call) beyond which new INVITEs get 503 with Retry-After"`

	// RetryAfter is the Retry-After (RFC 3261 §20.33) of the guard's
	// overload answers (MAX_CALLS reached, the node too busy to decide):
	// whole seconds, at least 1.
	RetryAfter time.Duration `env:"RETRY_AFTER" envDefault:"5s" desc:"Retry-After of the 503 sent when the node is overloaded (whole seconds)"`

	// MaxTCPConns caps the SIP TCP connections the guard accepts at once;
	// one more is closed as soon as it is accepted. A carrier trunk uses
	// a handful.
	MaxTCPConns int `env:"SIP_TCP_MAX_CONNS" envDefault:"256" desc:"SIP TCP connections accepted at once; more are closed at accept"`

	// TCPIdle closes an accepted SIP TCP connection on which nothing
	// arrived for this long (a trunk sends keep-alives or traffic well
	// within it; Kamailio's tcp_connection_lifetime default is 120 s).
	TCPIdle time.Duration `env:"SIP_TCP_IDLE" envDefault:"120s" desc:"an accepted SIP TCP connection silent for this long is closed"`

	// T1 is RFC 3261's round-trip estimate as the guard's reliable
	// provisional responses (100rel, RFC 3262 §3) use it: the first
	// retransmission after T1, doubling, and the call ends with 504 when
	// no PRACK came in 64*T1. 500 ms is the RFC's default; a carrier on
	// a long path may need more.
	T1 time.Duration `env:"SIP_T1" envDefault:"500ms" desc:"SIP timer T1: retransmission interval of reliable 183/180 (100rel); no PRACK within 64*T1 ends the call with 504"`

	// LateOffer is what becomes of a call to be challenged whose INVITE
	// has no SDP offer from a carrier without 100rel: the guard's own
	// offer could then only go in the 200, which bills. reject answers
	// 488; pass relays the call to the PBX unchallenged, recorded as
	// passed for that reason (never as verified).
	LateOffer string `env:"LATE_OFFER" envDefault:"reject" desc:"a call to be challenged whose INVITE has no SDP from a carrier without 100rel: reject (488) or pass (to the PBX unchallenged, recorded with the reason)"`
	// TransferTargets is the allow-list of where the PBX may transfer
	// (REFER) or redirect (3xx) a passed call; the guard places that call
	// itself, so everything else is refused (toll fraud). See transfer.go.
	TransferTargets string `env:"TRANSFER_TARGETS" envDefault:"pbx" desc:"comma-separated targets the PBX may transfer or redirect calls to: pbx (any URI at the PBX's host and port), E.164 prefixes (+4930123) and ranges (+4930123400-+4930123499) placed through GUARD_CARRIER_OUTBOUND"`

	// CarrierOutbound is the only address calls to numbers outside the
	// PBX are sent to; empty allows no outside targets.
	CarrierOutbound string `env:"CARRIER_OUTBOUND" desc:"host:port of the carrier's SIP trunk that transfers to E.164 numbers go to; empty allows transfers to the PBX only"`

	// TransferRate and TransferBurst bound the transfers and followed
	// redirects the guard places, over all calls.
	TransferRate  float64 `env:"TRANSFER_RATE" envDefault:"1" desc:"transfers and followed redirects the guard places per second, all calls together; 0 refuses every transfer"`
	TransferBurst int     `env:"TRANSFER_BURST" envDefault:"5" desc:"transfers allowed at once above GUARD_TRANSFER_RATE"`
}

// DefaultConfig returns the configuration with every field at its
// documented default (the envDefault tags), as a guard started with no
// GUARD_ variables gets it.
func DefaultConfig() Config {
	c, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		// Only a malformed envDefault tag can fail here; a test parses them.
		panic(fmt.Sprintf("guard: default configuration: %v", err))
	}
	return c
}

// settings is Config checked and parsed.
type settings struct {
	listen     string
	trusted    *trust.List
	pbx        sip.Uri
	pbxUser    bool // PBX_URI has a user part of its own
	mediaIP    netip.Addr
	rtpLo      int
	rtpHi      int
	media      *trust.List // TrustedMedia
	reject     int
	prompts    *sounds.Prompts
	pbxTimeout time.Duration
	ringTime   time.Duration
	maxCalls   int
	retryAfter int // seconds
	maxTCP     int
	tcpIdle    time.Duration
	t1         time.Duration
	lateOffer  bool // LateOffer is pass
	transfers  *transferPolicy
}

// Validate reports every problem with c, each naming its variable; the
// errors match ErrConfig. It reads the prompts to check them.
func (c Config) Validate() error {
	_, err := c.parse()
	return err
}

// parse validates c and returns the parsed settings; every problem is
// reported, each naming its variable.
func (c Config) parse() (settings, error) {
	var (
		s    settings
		errs []error
	)
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		bad("GUARD_SIP_LISTEN %q is not host:port: %v", c.Listen, err)
	}
	s.listen = c.Listen
	if s.trusted, err = trust.Parse(c.TrustedPeers); err != nil {
		bad("GUARD_TRUSTED_PEERS: %v", err)
	}
	if err := sip.ParseUri(c.PBXURI, &s.pbx); err != nil || s.pbx.Host == "" ||
		(s.pbx.Scheme != "sip" && s.pbx.Scheme != "sips") {
		bad("GUARD_PBX_URI %q is not a sip: URI with a host", c.PBXURI)
	}
	s.pbxUser = s.pbx.User != ""
	if c.RejectStatus < 400 || c.RejectStatus > 699 {
		bad("GUARD_REJECT_STATUS is %d, want a final error status 400-699", c.RejectStatus)
	}
	s.reject = c.RejectStatus
	mediaIP := c.MediaIP
	if mediaIP == "" {
		mediaIP = host
	}
	if s.mediaIP, err = netip.ParseAddr(mediaIP); err != nil || s.mediaIP.IsUnspecified() || s.mediaIP.IsMulticast() {
		bad("GUARD_MEDIA_IP %q is not a unicast IP address (it defaults to the host of GUARD_SIP_LISTEN; set it when listening on all interfaces)", mediaIP)
	}
	s.mediaIP = s.mediaIP.Unmap()
	if s.media, err = trust.Parse(c.TrustedMedia); err != nil {
		bad("GUARD_TRUSTED_MEDIA: %v", err)
	}
	lo, hi, ok := strings.Cut(c.RTPPorts, "-")
	s.rtpLo, err = strconv.Atoi(strings.TrimSpace(lo))
	if err == nil {
		s.rtpHi, err = strconv.Atoi(strings.TrimSpace(hi))
	}
	if !ok || err != nil || s.rtpLo < 1024 || s.rtpHi > 65535 || s.rtpHi-s.rtpLo < 1 {
		bad("GUARD_RTP_PORTS %q is not a range lo-hi within 1024-65535", c.RTPPorts)
	}
	if s.prompts, err = sounds.Load(c.Language, c.SoundsDir); err != nil {
		bad("GUARD_LANGUAGE/GUARD_SOUNDS_DIR: %v", err)
	}
	if c.PBXTimeout <= 0 || c.RingTimeout <= 0 {
		bad("GUARD_PBX_TIMEOUT and GUARD_RING_TIMEOUT must be positive")
	}
	s.pbxTimeout, s.ringTime = c.PBXTimeout, c.RingTimeout
	// The overload bounds: zero (a Config built in Go without them) takes
	// the default; a bound cannot be switched off.
	s.maxCalls, s.maxTCP, s.tcpIdle = c.MaxCalls, c.MaxTCPConns, c.TCPIdle
	retryAfter := c.RetryAfter
	if s.maxCalls == 0 {
		s.maxCalls = DefaultMaxCalls
	}
	if s.maxTCP == 0 {
		s.maxTCP = defaultMaxTCPConns
	}
	if s.tcpIdle == 0 {
		s.tcpIdle = defaultTCPIdle
	}
	if retryAfter == 0 {
		retryAfter = defaultRetryAfter
	}
	if s.t1 = c.T1; s.t1 == 0 {
		s.t1 = sip.T1
	}
	if s.t1 < 10*time.Millisecond || s.t1 > 10*time.Second {
		bad("GUARD_SIP_T1 is %v, want 10ms-10s", c.T1)
	}
	switch c.LateOffer {
	case "", "reject":
	case "pass":
		s.lateOffer = true
	default:
		bad("GUARD_LATE_OFFER is %q, want reject or pass", c.LateOffer)
	}
	if s.maxCalls < 1 {
		bad("GUARD_MAX_CALLS is %d, want at least 1", c.MaxCalls)
	}
	if retryAfter < time.Second || retryAfter%time.Second != 0 {
		bad("GUARD_RETRY_AFTER is %v, want whole seconds, at least 1s", c.RetryAfter)
	}
	s.retryAfter = int(retryAfter / time.Second)
	if s.maxTCP < 1 {
		bad("GUARD_SIP_TCP_MAX_CONNS is %d, want at least 1", c.MaxTCPConns)
	}
	if s.tcpIdle < time.Second {
		bad("GUARD_SIP_TCP_IDLE is %v, want at least 1s", c.TCPIdle)
	}
	if s.transfers, err = parseTransferPolicy(c.TransferTargets, c.CarrierOutbound, c.TransferRate, c.TransferBurst); err != nil {
		bad("%v", err)
	}
	return s, errors.Join(errs...)
}
