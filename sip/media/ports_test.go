package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
)

func TestPortAllocatorRange(t *testing.T) {
	a, err := NewPortAllocator(10001, 10010)
	if err != nil {
		t.Fatal(err)
	}
	// Even ports whose odd neighbour (RTCP) is in range: 10002…10008.
	var got []int
	for {
		p, err := a.Acquire()
		if errors.Is(err, ErrNoPorts) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	want := []int{10002, 10004, 10006, 10008}
	if len(got) != len(want) {
		t.Fatalf("ports = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ports = %v, want %v", got, want)
		}
	}
	if a.Size() != 4 || a.Available() != 0 {
		t.Errorf("size %d, available %d", a.Size(), a.Available())
	}
	// Released ports are reused in the order they were released (FIFO).
	a.Release(10006)
	a.Release(10002)
	a.Release(10002) // twice: no effect
	a.Release(10003) // never allocated: no effect
	if p, _ := a.Acquire(); p != 10006 {
		t.Errorf("first reuse = %d, want 10006", p)
	}
	if p, _ := a.Acquire(); p != 10002 {
		t.Errorf("second reuse = %d, want 10002", p)
	}
	if _, err := a.Acquire(); !errors.Is(err, ErrNoPorts) {
		t.Errorf("err = %v, want ErrNoPorts", err)
	}
}

func TestPortAllocatorBadRanges(t *testing.T) {
	for _, r := range [][2]int{{0, 100}, {100, 70000}, {200, 100}, {101, 101}, {100, 100}} {
		if _, err := NewPortAllocator(r[0], r[1]); err == nil {
			t.Errorf("range %v accepted", r)
		}
	}
}

func TestPortAllocatorConcurrent(t *testing.T) {
	a, err := NewPortAllocator(20000, 20099)
	if err != nil {
		t.Fatal(err)
	}
	var (
		held sync.Map
		wg   sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for range 500 {
				p, err := a.Acquire()
				if errors.Is(err, ErrNoPorts) {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				if _, dup := held.LoadOrStore(p, true); dup {
					t.Errorf("port %d handed out twice", p)
				}
				held.Delete(p)
				a.Release(p)
			}
		})
	}
	wg.Wait()
	if a.Available() != 50 {
		t.Errorf("%d ports available after all released, want 50", a.Available())
	}
}

func TestPortAllocatorListenUDP(t *testing.T) {
	// Find a free even port pair, hold the first port elsewhere, and check
	// the allocator skips it.
	probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	base := probe.LocalAddr().(*net.UDPAddr).Port &^ 1
	probe.Close()
	busy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: base})
	if err != nil {
		t.Skipf("port %d not free for the test: %v", base, err)
	}
	defer busy.Close()

	a, err := NewPortAllocator(base, base+3)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	c, err := a.ListenUDP(lo)
	if err != nil {
		t.Skipf("port %d not free for the test: %v", base+2, err)
	}
	if c.Port() != base+2 || c.LocalAddr().(*net.UDPAddr).Port != base+2 {
		t.Errorf("bound %d, want %d (skipping the busy %d)", c.Port(), base+2, base)
	}
	if _, err := a.ListenUDP(lo); !errors.Is(err, ErrNoPorts) {
		t.Errorf("second ListenUDP err = %v, want ErrNoPorts", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close() // twice: releases once
	if a.Available() != 2 {
		t.Errorf("available after Close = %d, want 2", a.Available())
	}
}
