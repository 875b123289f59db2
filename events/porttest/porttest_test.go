package porttest

import (
	"net"
	"os/exec"
	"testing"
)

// Ports never overlap within a process, lie between the guard's RTP range
// and the ephemeral range, and blocks are aligned.
func TestPortsAreDistinctAndBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := range 60 {
		n := []int{1, 4, 8}[i%3]
		p := Block(t, n)
		if p < base || p+n > low || (n > 1 && p%n != 0) {
			t.Fatalf("block of %d at %d: want it aligned within [%d, %d)", n, p, base, low)
		}
		for q := p; q < p+n; q++ {
			if seen[q] {
				t.Fatalf("port %d handed out twice", q)
			}
			seen[q] = true
		}
	}
}

// A held port is refused to a second holder (as to another process: the
// flock belongs to the open file) and handed out again once released.
func TestAHeldBlockIsLockedUntilReleased(t *testing.T) {
	p, files, err := reserve(1)
	if err != nil {
		t.Fatal(err)
	}
	f := files[0]
	path := f.Name()
	if g, err := lock(path); err == nil {
		g.Close()
		t.Fatalf("block %d locked twice", p)
	}
	// flock(1), when installed, shows the lock is seen by another process.
	if flock, err := exec.LookPath("flock"); err == nil {
		if err := exec.Command(flock, "-n", path, "true").Run(); err == nil {
			t.Errorf("another process took the lock of block %d", p)
		}
	}
	f.Close()
	g, err := lock(path)
	if err != nil {
		t.Fatalf("block %d still locked after release: %v", p, err)
	}
	g.Close()
}

// A block whose port a server outside the kit holds is skipped.
func TestABoundPortIsNotFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	if free(port, 1) {
		t.Fatalf("port %d reported free while listened on", port)
	}
	if !free(Block(t, 8), 8) {
		t.Fatal("a reserved block is not free")
	}
}
