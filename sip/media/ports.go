package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// ErrNoPorts is returned when every RTP port of the range is in use.
var ErrNoPorts = errors.New("no free RTP port in the configured range")

// PortAllocator hands out RTP ports from a configured range: even ports
// only, each with the odd port above it kept free for RTCP (RFC 3550 §11:
// RTP on an even port, RTCP on the next odd one). It is safe for concurrent
// use; one mutex owns the pool.
//
// Freed ports go to the back of the queue, so a port is reused as late as
// possible: packets a carrier still sends for an ended call then reach a
// closed socket instead of the next call on that port.
type PortAllocator struct {
	lo, hi int

	mu    sync.Mutex
	free  []int // FIFO: allocate from the front, release to the back
	inUse map[int]bool
}

// NewPortAllocator returns an allocator over the even ports p with
// lo ≤ p and p+1 ≤ hi.
func NewPortAllocator(lo, hi int) (*PortAllocator, error) {
	if lo < 1 || hi > 65535 || lo > hi {
		return nil, fmt.Errorf("media: RTP port range %d-%d is not within 1-65535", lo, hi)
	}
	a := &PortAllocator{lo: lo, hi: hi, inUse: make(map[int]bool)}
	for p := lo + lo%2; p+1 <= hi; p += 2 {
		a.free = append(a.free, p)
	}
	if len(a.free) == 0 {
		return nil, fmt.Errorf("media: RTP port range %d-%d holds no even/odd port pair", lo, hi)
	}
	return a, nil
}

// Size is how many ports the range holds.
func (a *PortAllocator) Size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.free) + len(a.inUse)
}

// Available is how many ports are free now.
func (a *PortAllocator) Available() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.free)
}

// Acquire takes a free port, or fails with ErrNoPorts.
func (a *PortAllocator) Acquire() (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.free) == 0 {
		return 0, fmt.Errorf("media: %w (%d-%d, %d in use)", ErrNoPorts, a.lo, a.hi, len(a.inUse))
	}
	p := a.free[0]
	a.free = a.free[1:]
	a.inUse[p] = true
	return p, nil
}

// Release returns a port to the pool. Releasing a port that is not in use
// (twice, or never acquired) does nothing, so it is safe in every cleanup
// path.
func (a *PortAllocator) Release(port int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.inUse[port] {
		return
	}
	delete(a.inUse, port)
	a.free = append(a.free, port)
}

// Conn is a UDP socket on a port of a PortAllocator; closing it returns
// the port.
type Conn struct {
	*net.UDPConn
	port    int
	release func()
	once    sync.Once
}

// Port is the local RTP port, to put in the SDP m= line.
func (c *Conn) Port() int { return c.port }

// Close closes the socket and returns its port to the allocator.
func (c *Conn) Close() error {
	err := c.UDPConn.Close()
	c.once.Do(c.release)
	return err
}

// ListenUDP binds a UDP socket on ip and the next free port. A port some
// other process holds is skipped (and stays in the pool for later); it
// fails with ErrNoPorts once every free port has been tried.
func (a *PortAllocator) ListenUDP(ip netip.Addr) (*Conn, error) {
	var lastErr error
	for range a.Available() {
		p, err := a.Acquire()
		if err != nil {
			break
		}
		uc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(p))))
		if err != nil {
			lastErr = err
			a.Release(p)
			continue
		}
		return &Conn{UDPConn: uc, port: p, release: func() { a.Release(p) }}, nil
	}
	if lastErr != nil {
		return nil, fmt.Errorf("media: %w on %s (last bind error: %v)", ErrNoPorts, ip, lastErr)
	}
	return nil, fmt.Errorf("media: %w on %s", ErrNoPorts, ip)
}
