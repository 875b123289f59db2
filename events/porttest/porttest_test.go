package porttest

import (
	"net"
	"os/exec"
	"testing"
)

// Blocks never overlap within a process, lie below the ephemeral range and
// are aligned.
func TestBlocksAreDistinctAndBelowTheEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := Block(t)
		if p < base || p+BlockSize > low || p%BlockSize != 0 {
			t.Fatalf("block %d: want an aligned block within [%d, %d)", p, base, low)
		}
		if seen[p] {
			t.Fatalf("block %d handed out twice", p)
		}
		seen[p] = true
	}
}

// A held block is refused to a second holder (as to another process: the
// flock belongs to the open file) and handed out again once released.
func TestAHeldBlockIsLockedUntilReleased(t *testing.T) {
	p, f, err := reserve()
	if err != nil {
		t.Fatal(err)
	}
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
	if !free(Port(t), BlockSize) {
		t.Fatal("a reserved block is not free")
	}
}
