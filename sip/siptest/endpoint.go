package siptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// endpoint is a sipgo user agent that sends and receives on one UDP socket:
// its requests leave from the address it listens on, so the Contact and Via
// it advertises are where the other side's requests and responses come.
type endpoint struct {
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	conn net.PacketConn
	addr netip.AddrPort
	log  *slog.Logger
	done chan struct{}

	tcp     net.Listener  // nil unless listenTCP
	tcpDone chan struct{} // closed when the TCP server returns
}

// rawHook sees every datagram the endpoint receives, before sipgo parses
// it, with its arrival time. It runs on sipgo's read goroutine and must not
// block; data is only valid during the call.
type rawHook func(at time.Time, from net.Addr, data []byte)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEndpoint listens on listen (UDP host:port) and serves requests with
// the handlers register installs.
func newEndpoint(name, listen string, log *slog.Logger, hook rawHook, register func(*sipgo.Server)) (*endpoint, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	conn, err := net.ListenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("siptest: %s: listen udp %s: %w", name, listen, err)
	}
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if addr.Addr().IsUnspecified() {
		conn.Close()
		return nil, fmt.Errorf("siptest: %s: listen address %s: give a concrete IP (it goes into Via and Contact)", name, listen)
	}
	filter := func(p sip.TransportReadProps, data []byte) ([]byte, error) {
		if hook != nil {
			hook(time.Now(), p.RemoteAddr, data)
		}
		return data, nil
	}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("callguard-siptest-"+name),
		sipgo.WithUserAgentHostname(addr.Addr().String()),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log), sip.WithTransportLayerReadFilter(filter)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("siptest: %s: user agent: %w", name, err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("siptest: %s: server: %w", name, err)
	}
	cli, err := sipgo.NewClient(ua,
		sipgo.WithClientLogger(log),
		sipgo.WithClientHostname(addr.Addr().String()),
		sipgo.WithClientPort(int(addr.Port())),
		sipgo.WithClientConnectionAddr(addr.String()),
	)
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("siptest: %s: client: %w", name, err)
	}
	register(srv)
	e := &endpoint{ua: ua, srv: srv, cli: cli, conn: conn, addr: addr, log: log, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		if err := srv.ServeUDP(conn); err != nil && !errors.Is(err, net.ErrClosed) {
			log.Warn("siptest: serve udp", "endpoint", name, "error", err)
		}
	}()
	// The client sends from the listening socket (WithClientConnectionAddr),
	// which sipgo finds in its connection pool only once ServeUDP has added
	// it: wait for that, or the first request would try to bind the port
	// a second time.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = Poll(ctx, time.Millisecond, func() error {
		c, err := ua.TransportLayer().GetConnection("udp", addr.String())
		if err != nil {
			return err
		}
		_, _ = c.TryClose() // GetConnection took a reference
		return nil
	})
	if err != nil {
		e.close()
		return nil, fmt.Errorf("siptest: %s: udp listener not ready: %w", name, err)
	}
	return e, nil
}

// listenTCP serves SIP over TCP as well, on the UDP socket's port.
func (e *endpoint) listenTCP(name string) error {
	l, err := net.Listen("tcp", e.addr.String())
	if err != nil {
		return fmt.Errorf("siptest: %s: listen tcp %s: %w", name, e.addr, err)
	}
	e.tcp, e.tcpDone = l, make(chan struct{})
	go func() {
		defer close(e.tcpDone)
		if err := e.srv.ServeTCP(l); !errors.Is(err, net.ErrClosed) {
			e.log.Warn("siptest: serve tcp", "endpoint", name, "error", err)
		}
	}()
	return nil
}

func (e *endpoint) close() error {
	err := e.conn.Close()
	<-e.done
	if e.tcp != nil {
		if terr := e.tcp.Close(); terr != nil && !errors.Is(terr, net.ErrClosed) && err == nil {
			err = terr
		}
		<-e.tcpDone
	}
	if uerr := e.ua.Close(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// contact is the endpoint's Contact header for user.
func (e *endpoint) contact(user string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: e.addr.Addr().String(), Port: int(e.addr.Port())}}
}

// via is a new top Via for a request the endpoint sends, with a fresh
// branch (RFC 3261 §8.1.1.7) and our own address as sent-by, so sipgo has
// nothing to fill in on its goroutines.
func (e *endpoint) via() *sip.ViaHeader {
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: e.addr.Addr().String(), Port: int(e.addr.Port()), Params: sip.NewParams(),
	}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	return v
}

// parseCopy parses a private copy of a datagram: the message sipgo parses
// is shared with its transaction goroutines, whose lazy header parsing
// writes to it, so the harness never reads that one.
func parseCopy(data []byte) (sip.Message, error) {
	return sip.ParseMessage(append([]byte(nil), data...))
}

// splitTarget splits a target "host:port" for a Request-URI; a missing
// port is SIP's 5060.
func splitTarget(target string) (string, int, error) {
	host, port, err := sip.ParseAddr(target)
	if err != nil {
		return "", 0, fmt.Errorf("siptest: target %q: %w", target, err)
	}
	if port == 0 {
		port = 5060
	}
	return host, port, nil
}
