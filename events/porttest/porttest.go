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
// ephemeral range, which the kernel never hands out by itself, and above
// the guard's default RTP range (GUARD_RTP_PORTS, 20000-29999: every guard
// a test starts binds there), and each port is reserved across processes
// by an exclusive flock(2) on a file in a shared directory, held until the
// test ends (or the process exits: the kernel drops the lock then, so a
// crash leaks nothing).
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

// base is the lowest port handed out: above the guard's default RTP
// range (sip/guard's GUARD_RTP_PORTS default, 20000-29999).
const base = 30000

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
	return Block(tb, 1)
}

// Block returns the first of n consecutive ports, all free for UDP and TCP
// on 127.0.0.1 and reserved for tb's duration: SIPp's media ports (-mp,
// and the three after it for RTCP and video), a phone's RTP range. For
// n > 1 the first is a multiple of n rounded up to even (an RTP port).
func Block(tb testing.TB, n int) int {
	tb.Helper()
	p, files, err := reserve(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { release(files) })
	return p
}

// Reserve is Block for code without a testing.TB: the ports stay reserved
// until the process exits.
func Reserve(n int) (int, error) {
	p, files, err := reserve(n)
	if err != nil {
		return 0, err
	}
	held.Lock()
	held.files = append(held.files, files...)
	held.Unlock()
	return p, nil
}

func release(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func reserve(n int) (int, []*os.File, error) {
	low := ephemeralLow()
	if n < 1 || n > 64 {
		return 0, nil, fmt.Errorf("porttest: a block of %d ports", n)
	}
	step := 1
	if n > 1 {
		step = n + n%2
	}
	slots := (low - base) / step
	if slots < 16 {
		return 0, nil, fmt.Errorf("porttest: the ephemeral port range starts at %d: no room between %d and it for test ports", low, base)
	}
	dir := filepath.Join(os.TempDir(), "callguard-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, nil, fmt.Errorf("porttest: %w", err)
	}
	// A random start spreads the processes over the range; the walk from
	// it tries every slot once.
	start := rand.IntN(slots)
	for i := range slots {
		p := base + (start+i)%slots*step
		files, err := lockAll(dir, p, n)
		if err != nil {
			return 0, nil, err
		}
		if files == nil {
			continue // another test holds one of them
		}
		// Reserved; free unless something outside the kit bound one.
		if free(p, n) {
			return p, files, nil
		}
		release(files)
	}
	return 0, nil, fmt.Errorf("porttest: no %d consecutive free ports between %d and %d", n, base, low)
}

// lockAll locks ports p..p+n-1; nil without an error when one is held.
func lockAll(dir string, p, n int) ([]*os.File, error) {
	var files []*os.File
	for port := p; port < p+n; port++ {
		f, err := lock(filepath.Join(dir, strconv.Itoa(port)))
		if err != nil {
			release(files)
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("porttest: %w", err)
		}
		files = append(files, f)
	}
	return files, nil
}

// lock opens path and takes an exclusive flock on it without waiting. The
// lock belongs to the open file, so a second reservation of the same port
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
