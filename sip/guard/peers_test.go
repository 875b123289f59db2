package guard_test

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callguard/callguard/sip/media"
	"github.com/callguard/callguard/sip/sdp"
)

// A SIP peer on loopback UDP: a sipgo user agent with a server and a
// client bound to one socket.
type peer struct {
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	addr string
	dua  *sipgo.DialogUA
	conn net.PacketConn
}

func newPeer(t testing.TB, name string) *peer {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet())),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet())))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := conn.LocalAddr().String()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(addr)
	p := &peer{ua: ua, srv: srv, cli: cli, addr: addr, dua: &sipgo.DialogUA{
		Client:     cli,
		ContactHDR: sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: name, Host: "127.0.0.1", Port: int(ap.Port())}},
	}}
	p.conn = conn
	t.Cleanup(func() {
		conn.Close()
		ua.Close()
	})
	return p
}

// serve starts reading requests; call it once the handlers are set.
func (p *peer) serve() {
	go p.srv.ServeUDP(p.conn)
}

// rtpSocket is a media socket on loopback and the offer or answer that
// points at it.
func rtpSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func portOf(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

// fakeCaller is the carrier: a UAC with a media socket, calling from its
// env's number.
type fakeCaller struct {
	*peer
	t      testing.TB
	rtp    *net.UDPConn
	number string

	mu      sync.Mutex
	dialogs map[string]*sipgo.DialogClientSession
	byes    chan *sip.Request
	byeAt   chan time.Time
	// reinvites and acks are the re-INVITEs that reached the caller and
	// the ACKs that followed them.
	reinvites chan *sip.Request
	acks      chan *sip.Request
	// oks are the 200s the caller gave the re-INVITEs.
	oks chan *sip.Response
}

func newFakeCaller(e *env) *fakeCaller {
	t := e.t
	c := &fakeCaller{peer: newPeer(t, "carrier"), t: t, rtp: rtpSocket(t), number: e.number,
		dialogs: map[string]*sipgo.DialogClientSession{}, byes: make(chan *sip.Request, 64), byeAt: make(chan time.Time, 64),
		reinvites: make(chan *sip.Request, 8), acks: make(chan *sip.Request, 8), oks: make(chan *sip.Response, 8)}
	// A re-INVITE is answered with an answer to its offer (a hold gets
	// a=recvonly), its session interval echoed (RFC 4028 §9).
	c.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		var body []byte
		if offer, err := sdp.Parse(req.Body()); err == nil {
			if ans, err := sdp.Negotiate(offer, sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(c.rtp), SessionID: 1, SessionVersion: 2}); err == nil {
				body = ans.Body()
			}
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", body)
		if len(body) > 0 {
			res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		}
		res.AppendHeader(sip.NewHeader("Contact", "<sip:carrier@"+c.conn.LocalAddr().String()+">"))
		if h := req.GetHeader("Session-Expires"); h != nil {
			res.AppendHeader(sip.NewHeader("Session-Expires", h.Value()))
		}
		_ = tx.Respond(res)
		notify(c.oks, res)
		notify(c.reinvites, req)
	})
	c.srv.OnAck(func(req *sip.Request, _ sip.ServerTransaction) { notify(c.acks, req) })
	c.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		at := time.Now()
		id, _ := sip.DialogIDFromRequestUAC(req)
		c.mu.Lock()
		d := c.dialogs[id]
		c.mu.Unlock()
		if d == nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			return
		}
		_ = d.ReadBye(req, tx)
		notify(c.byeAt, at)
		notify(c.byes, req)
	})
	c.serve()
	return c
}

// offer is the caller's SDP offer: PCMU, PCMA and telephone-event 101 on
// its media socket.
func (c *fakeCaller) offer() []byte {
	o, err := sdp.NewOffer(sdp.Capabilities{Addr: netip.MustParseAddr("127.0.0.1"), Port: portOf(c.rtp), SessionID: 1, SessionVersion: 1})
	if err != nil {
		c.t.Fatal(err)
	}
	return o.Marshal()
}

// call is one INVITE from the fake caller and what came back.
type call struct {
	dlg       *sipgo.DialogClientSession
	responses []*sip.Response
	err       error
	answered  time.Time
}

func (cl *call) final() *sip.Response {
	if len(cl.responses) == 0 {
		return nil
	}
	return cl.responses[len(cl.responses)-1]
}

func (cl *call) status() int {
	if r := cl.final(); r != nil {
		return r.StatusCode
	}
	return 0
}

// response returns the first response with status, or nil.
func (cl *call) response(status int) *sip.Response {
	for _, r := range cl.responses {
		if r.StatusCode == status {
			return r
		}
	}
	return nil
}

// invite calls uri from the env's number with the caller's offer and waits for
// the final response (ACKing a 2xx). extra headers are added; onResponse
// (optional) sees each response as it arrives.
func (c *fakeCaller) invite(ctx context.Context, uri string, onResponse func(*sip.Response), extra ...sip.Header) *call {
	return c.inviteFrom(ctx, c.number, uri, onResponse, extra...)
}

// inviteFrom is invite from another number.
func (c *fakeCaller) inviteFrom(ctx context.Context, number, uri string, onResponse func(*sip.Response), extra ...sip.Header) *call {
	c.t.Helper()
	var target sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		c.t.Fatal(err)
	}
	req := sip.NewRequest(sip.INVITE, target)
	from := &sip.FromHeader{DisplayName: "Ivan", Address: sip.Uri{Scheme: "sip", User: number, Host: "carrier.example"}}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(c.offer())
	cl := &call{}
	dlg, err := c.dua.WriteInvite(ctx, req)
	if err != nil {
		cl.err = err
		return cl
	}
	cl.dlg = dlg
	var mu sync.Mutex
	cl.err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		mu.Lock()
		cl.responses = append(cl.responses, r)
		mu.Unlock()
		if onResponse != nil {
			onResponse(r)
		}
		return nil
	}})
	if dlg.InviteResponse != nil && (len(cl.responses) == 0 || cl.final() != dlg.InviteResponse) {
		// The final response after a CANCEL arrives outside OnResponse.
		cl.responses = append(cl.responses, dlg.InviteResponse)
	}
	if cl.err == nil {
		cl.answered = time.Now()
		c.mu.Lock()
		c.dialogs[dlg.ID] = dlg
		c.mu.Unlock()
		if err := dlg.Ack(context.Background()); err != nil {
			c.t.Fatalf("ACK: %v", err)
		}
	}
	return cl
}

// hangup sends BYE on an answered call.
func (c *fakeCaller) hangup(cl *call) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.dlg.Bye(ctx); err != nil {
		c.t.Fatalf("BYE: %v", err)
	}
}

// media is the caller's RTP towards the guard, from the guard's SDP.
type callerMedia struct {
	sender *media.Sender
	rec    *media.Recorder
	recv   *media.Receiver
}

// startMedia starts receiving the guard's RTP and prepares to send keys to
// it, using the SDP of res (the 183).
func (c *fakeCaller) startMedia(ctx context.Context, res *sip.Response) *callerMedia {
	c.t.Helper()
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		c.t.Fatalf("guard's SDP: %v", err)
	}
	offer, _ := sdp.Parse(c.offer())
	neg, err := sdp.ReadAnswer(offer, ans)
	if err != nil {
		c.t.Fatalf("guard's SDP answer: %v", err)
	}
	codec, _ := media.CodecByName(neg.Codec.Name)
	m := &callerMedia{rec: &media.Recorder{}}
	m.sender, err = media.NewSender(media.SenderConfig{Conn: c.rtp, Remote: net.UDPAddrFromAddrPort(neg.Remote), Codec: codec, EventPayloadType: neg.DTMFPayloadType})
	if err != nil {
		c.t.Fatal(err)
	}
	m.recv, err = media.NewReceiver(media.ReceiverConfig{Conn: c.rtp, Remote: neg.Remote, Codecs: []media.Codec{codec}, EventPayloadType: neg.DTMFPayloadType, Sink: m.rec})
	if err != nil {
		c.t.Fatal(err)
	}
	go m.recv.Run(ctx)
	return m
}

// typeKeys sends keys as RFC 4733 events.
func (m *callerMedia) typeKeys(ctx context.Context, t *testing.T, keys string) {
	t.Helper()
	for _, k := range keys {
		if err := m.sender.SendKey(ctx, k, 60*time.Millisecond); err != nil {
			t.Fatalf("send key %c: %v", k, err)
		}
	}
}

// notify sends v unless ch is full: a long test that does not read a
// channel must not block the peer's handlers.
func notify[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}
