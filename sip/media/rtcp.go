package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// RTCPForwarder relays one direction of a bridged call's RTCP (RFC 3550
// §6): compound packets read on In from the From peer go out of Out to the
// To peer, unchanged. The RTP relay keeps SSRCs, sequence numbers and
// timestamps, so the sender and receiver reports stay true for the far
// end. From and To may be replaced while it runs (a leg moved its media).
type RTCPForwarder struct {
	In, Out  net.PacketConn
	From, To atomic.Pointer[Peer]
	// OnPacket is called for each packet relayed; may be nil.
	OnPacket func()
	// Refused counts packets from a source From did not accept or that
	// are not RTCP.
	Refused atomic.Uint64
}

// Run relays until ctx ends or In is closed.
func (f *RTCPForwarder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = f.In.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := f.In.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("media: reading RTCP: %w", err)
		}
		src, dst := f.From.Load(), f.To.Load()
		if src == nil || dst == nil || !IsRTCP(buf[:n]) || !fromPeer(src, from) {
			f.Refused.Add(1)
			continue
		}
		to := dst.Dest()
		if to.IP.IsUnspecified() {
			continue // a leg on hold by c=0.0.0.0
		}
		if _, err := f.Out.WriteTo(buf[:n], to); err == nil && f.OnPacket != nil {
			f.OnPacket()
		}
	}
}

// IsRTCP reports whether p starts like an RTCP packet: version 2, a
// packet type of 192-223 (RFC 5761 §4) and at least a header.
func IsRTCP(p []byte) bool {
	return len(p) >= 8 && p[0]>>6 == 2 && p[1] >= 192 && p[1] <= 223
}
