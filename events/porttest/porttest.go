// Package porttest is a test kit: it hands out loopback ports that no
// other test process on the machine is using, for servers a test starts
// on a port it chooses (SIPp, baresip, Kamailio, etcd, PostgreSQL, a
// guard that keeps its port across a restart).
//
// Probing a port with a bind to port 0 and closing it again races: the
// kernel hands the same port to the next bind to port 0 or outgoing
// connection of any process (the parallel test binaries of `go test ./...`
// open thousands), and the program started on it later fails with
// "address already in use". So the ports come from below the kernel's
// ephemeral range, which the kernel never hands out by itself, and each
// block of them is reserved across processes by an exclusive flock(2) on
// a file in a shared directory, held until the test ends (or the process
// exits: the kernel drops the lock then, so a crash leaks nothing).
package porttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// BlockSize is how many consecutive ports one reservation holds: enough
// for SIPp's media ports (-mp: RTP and RTCP for audio and for video) and a
// small RTP range of a phone.
const BlockSize = 8

// base is the lowest port handed out: above the well-known and usual
// service ports.
const base = 20000

// held keeps the lock files of the reservations made without a test
// (Reserve): a file the garbage collector finalised would drop its lock.
var held = struct {
	sync.Mutex
	files []*os.File
}{}

// Port returns a port free for UDP and TCP on 127.0.0.1, reserved for
// tb's duration. It fails tb when none can be found.
func Port(tb testing.TB) int {
	tb.Helper()
	return Block(tb)
}

// Block returns the first of BlockSize consecutive ports (the first is a
// multiple of BlockSize, so it is even: an RTP port), all free for UDP and
// TCP on 127.0.0.1, reserved for tb's duration.
func Block(tb testing.TB) int {
	tb.Helper()
	p, f, err := reserve()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return p
}

// Reserve is Block for code without a testing.TB: the block stays reserved
// until the process exits.
func Reserve() (int, error) {
	p, f, err := reserve()
	if err != nil {
		return 0, err
	}
	held.Lock()
	held.files = append(held.files, f)
	held.Unlock()
	return p, nil
}

func reserve() (int, *os.File, error) {
	low := ephemeralLow()
	blocks := (low - base) / BlockSize
	if blocks < 64 {
		return 0, nil, fmt.Errorf("porttest: the ephemeral port range starts at %d: no room below it for test ports", low)
	}
	dir := filepath.Join(os.TempDir(), "callguard-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, nil, fmt.Errorf("porttest: %w", err)
	}
	// A random start spreads the processes over the range; the walk from
	// it tries every block once.
	start := rand.IntN(blocks)
	for i := range blocks {
		p := base + (start+i)%blocks*BlockSize
		f, err := lock(filepath.Join(dir, strconv.Itoa(p)))
		if err != nil {
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another test holds it
			}
			return 0, nil, fmt.Errorf("porttest: %w", err)
		}
		// Reserved; free unless something outside the kit bound it.
		if free(p, BlockSize) {
			return p, f, nil
		}
		f.Close()
	}
	return 0, nil, fmt.Errorf("porttest: no block of %d free ports between %d and %d", BlockSize, base, low)
}

// lock opens path and takes an exclusive flock on it without waiting. The
// lock belongs to the open file, so a second reservation of the same block
// in the same process fails as it does in another one.
func lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// free reports whether ports p..p+n-1 can all be bound for UDP and TCP on
// 127.0.0.1 now.
func free(p, n int) bool {
	for port := p; port < p+n; port++ {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		l, err := net.Listen("tcp", addr)
		u.Close()
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
