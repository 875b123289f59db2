package trust

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // canonical String()
		wantErr string // substring; "" means success
	}{
		{name: "empty", in: "", want: ""},
		{name: "blank", in: "  \t ", want: ""},
		{name: "single v4 host", in: "198.51.100.7", want: "198.51.100.7/32"},
		{name: "single v6 host", in: "2001:db8::5", want: "2001:db8::5/128"},
		{name: "mixed with spaces", in: " 203.0.113.0/28 , 2001:db8:17::/48,192.0.2.1 ", want: "192.0.2.1/32,203.0.113.0/28,2001:db8:17::/48"},
		{name: "contained dropped", in: "192.0.2.0/24,192.0.2.5,192.0.2.128/25", want: "192.0.2.0/24"},
		{name: "duplicates", in: "192.0.2.5,192.0.2.5/32", want: "192.0.2.5/32"},
		{name: "mapped host", in: "::ffff:192.0.2.9", want: "192.0.2.9/32"},
		{name: "mapped prefix", in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{name: "everything v4", in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{name: "host bits", in: "192.0.2.0/24,192.0.2.7/24", wantErr: `entry 2 "192.0.2.7/24": host bits set (did you mean 192.0.2.0/24 or 192.0.2.7/32?)`},
		{name: "hostname", in: "sbc.example.ru", wantErr: `entry 1 "sbc.example.ru": not an IP address or CIDR prefix`},
		{name: "bad prefix", in: "192.0.2.0/33", wantErr: `entry 1 "192.0.2.0/33": not a CIDR prefix`},
		{name: "stray comma", in: "192.0.2.1,,192.0.2.2", wantErr: "entry 2 is empty"},
		{name: "trailing comma", in: "192.0.2.1,", wantErr: "entry 2 is empty"},
		{name: "zone", in: "fe80::1%eth0", wantErr: "zoned"},
		{name: "port", in: "192.0.2.1:5060", wantErr: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want error containing %q", tt.in, l, tt.wantErr)
				}
				if !errors.Is(err, ErrBadEntry) {
					t.Errorf("error %v does not wrap ErrBadEntry", err)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got := l.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	if _, err := Parse("192.0.2.1", WithMaxTracked(0)); err == nil {
		t.Error("WithMaxTracked(0) accepted")
	}
	l, err := Parse("192.0.2.1", WithMaxTracked(3))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Refused().Max(); got != 3 {
		t.Errorf("Max() = %d, want 3", got)
	}
	if _, err := Parse(strings.Repeat("192.0.2.1,", maxEntries) + "192.0.2.1"); err == nil {
		t.Error("over-long list accepted")
	}
}

func TestAllows(t *testing.T) {
	l, err := Parse("192.0.2.0/28, 198.51.100.7, 203.0.113.128/25, 2001:db8:17::/48, 2001:db8:ffff::1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"192.0.2.0", true},
		{"192.0.2.15", true},
		{"192.0.2.16", false},
		{"192.0.1.255", false},
		{"198.51.100.7", true},
		{"198.51.100.6", false},
		{"198.51.100.8", false},
		{"203.0.113.127", false},
		{"203.0.113.128", true},
		{"203.0.113.255", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"0.0.0.0", false},
		{"255.255.255.255", false},
		{"::ffff:192.0.2.3", true},   // a dual-stack socket's view of an IPv4 peer
		{"::ffff:192.0.2.99", false}, // ditto, outside
		{"2001:db8:17::1", true},
		{"2001:db8:17:ffff:ffff:ffff:ffff:ffff", true},
		{"2001:db8:18::", false},
		{"2001:db8:16:ffff:ffff:ffff:ffff:ffff", false},
		{"2001:db8:ffff::1", true},
		{"2001:db8:ffff::2", false},
		{"fe80::1%eth0", false},
		{"::", false},
		{"::1", false},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		if got := l.Allows(a); got != tt.want {
			t.Errorf("Allows(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if l.Allows(netip.Addr{}) {
		t.Error("zero Addr allowed")
	}
	var nilList *List
	if nilList.Allows(netip.MustParseAddr("192.0.2.1")) || nilList.Check(netip.MustParseAddr("192.0.2.1")) {
		t.Error("nil list allows")
	}
}

func TestAllowsEdges(t *testing.T) {
	for _, tt := range []struct {
		list, addr string
		want       bool
	}{
		{"0.0.0.0/0", "255.255.255.255", true},
		{"0.0.0.0/0", "2001:db8::1", false},
		{"::/0", "2001:db8::1", true},
		{"::/0", "192.0.2.1", false},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff", true},
		{"2001:db8::/64", "2001:db8:0:1::", false},
		{"2001:db8::/65", "2001:db8::7fff:ffff:ffff:ffff", true},
		{"2001:db8::/65", "2001:db8::8000:0:0:0", false},
		{"2001:db8::/127", "2001:db8::1", true},
		{"2001:db8::/127", "2001:db8::2", false},
		{"", "192.0.2.1", false},
	} {
		l, err := Parse(tt.list)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Allows(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%q Allows(%s) = %v, want %v", tt.list, tt.addr, got, tt.want)
		}
	}
}

// TestAllowsAgainstNaive compares the range search with Prefix.Contains
// over many generated lists and addresses.
func TestAllowsAgainstNaive(t *testing.T) {
	seed := uint64(1)
	next := func() uint64 { // xorshift64: deterministic, no global rand
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return seed
	}
	for round := 0; round < 200; round++ {
		var entries []string
		var prefixes []netip.Prefix
		for i := 0; i < 1+int(next()%12); i++ {
			var p netip.Prefix
			if next()%3 == 0 {
				var b [16]byte
				b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
				b[4] = byte(next() % 4)
				b[15] = byte(next())
				p = netip.PrefixFrom(netip.AddrFrom16(b), 32+int(next()%97)).Masked()
			} else {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, byte(next() % 4), byte(next())}), 16+int(next()%17)).Masked()
			}
			prefixes = append(prefixes, p)
			entries = append(entries, p.String())
		}
		l, err := Parse(strings.Join(entries, ","))
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 200; j++ {
			var a netip.Addr
			if next()%3 == 0 {
				var b [16]byte
				b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
				b[4] = byte(next() % 4)
				b[15] = byte(next())
				a = netip.AddrFrom16(b)
			} else {
				a = netip.AddrFrom4([4]byte{192, 0, byte(next() % 4), byte(next())})
			}
			want := false
			for _, p := range prefixes {
				want = want || p.Contains(a)
			}
			if got := l.Allows(a); got != want {
				t.Fatalf("list %v: Allows(%s) = %v, want %v", entries, a, got, want)
			}
		}
	}
}

func TestCheckCountsRefused(t *testing.T) {
	l, err := Parse("192.0.2.0/24", WithMaxTracked(2))
	if err != nil {
		t.Fatal(err)
	}
	in := netip.MustParseAddr("192.0.2.10")
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("2001:db8::1")
	c := netip.MustParseAddr("203.0.113.9")
	if !l.Check(in) {
		t.Fatal("trusted source refused")
	}
	for range 3 {
		l.Check(a)
	}
	l.Check(netip.MustParseAddr("::ffff:198.51.100.1")) // same peer as a
	l.Check(b)
	l.Check(c) // over the bound: untracked
	l.Check(c)
	r := l.Refused()
	if got := r.Total(); got != 7 {
		t.Errorf("Total() = %d, want 7", got)
	}
	if got := r.Untracked(); got != 2 {
		t.Errorf("Untracked() = %d, want 2", got)
	}
	if got := r.Count(a); got != 4 {
		t.Errorf("Count(a) = %d, want 4", got)
	}
	if got := r.Count(c); got != 0 {
		t.Errorf("Count(c) = %d, want 0 (untracked)", got)
	}
	top := r.Top(0)
	if len(top) != 2 || top[0].Addr != a || top[0].Count != 4 || top[1].Addr != b || top[1].Count != 1 {
		t.Errorf("Top(0) = %v", top)
	}
	if got := r.Top(1); len(got) != 1 || got[0].Addr != a {
		t.Errorf("Top(1) = %v", got)
	}
	r.Reset()
	if r.Total() != 0 || r.Untracked() != 0 || len(r.Top(0)) != 0 {
		t.Error("Reset left counts")
	}
	l.Check(c)
	if r.Count(c) != 1 {
		t.Error("after Reset a new source is not tracked")
	}
}

// TestRefusedBound floods the counter from many goroutines with distinct
// addresses and checks that the map never exceeds its bound and nothing is
// lost.
func TestRefusedBound(t *testing.T) {
	const max, workers, per = 64, 8, 2000
	r := NewRefused(max)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				var b [16]byte
				b[0], b[1] = 0x20, 0x01
				b[2], b[3] = byte(w), byte(i>>8)
				b[15] = byte(i)
				r.Add(netip.AddrFrom16(b))
				r.Add(netip.MustParseAddr("198.51.100.1")) // one hot source
			}
		}()
	}
	wg.Wait()
	if got := len(r.Top(0)); got > max {
		t.Fatalf("%d sources tracked, bound %d", got, max)
	}
	var sum uint64
	for _, sc := range r.Top(0) {
		sum += sc.Count
	}
	if want := uint64(2 * workers * per); r.Total() != want || sum+r.Untracked() != want {
		t.Errorf("Total %d, tracked %d + untracked %d, want %d", r.Total(), sum, r.Untracked(), want)
	}
	if NewRefused(0).Max() != DefaultMaxTracked {
		t.Error("NewRefused(0) does not default")
	}
}

func TestParseSource(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"192.0.2.1:5060", "192.0.2.1", true},
		{"[2001:db8::1]:5060", "2001:db8::1", true},
		{"[::ffff:192.0.2.1]:5060", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.1", true},
		{"2001:db8::1", "2001:db8::1", true},
		{"[2001:db8::1]", "2001:db8::1", true},
		{"sbc.example.ru:5060", "", false},
		{"", "", false},
	} {
		got, err := ParseSource(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseSource(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && got.String() != tt.want {
			t.Errorf("ParseSource(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func BenchmarkAllows(b *testing.B) {
	for _, n := range []int{4, 64, 1024} {
		var entries []string
		for i := range n {
			entries = append(entries, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256), fmt.Sprintf("2001:db8:%x::/48", i))
		}
		l, err := Parse(strings.Join(entries, ","))
		if err != nil {
			b.Fatal(err)
		}
		addrs := []netip.Addr{
			netip.MustParseAddr("10.0.1.77"),       // inside
			netip.MustParseAddr("198.51.100.1"),    // outside
			netip.MustParseAddr("::ffff:10.0.2.1"), // mapped, inside
			netip.MustParseAddr("2001:db8:2::1"),   // v6 inside
			netip.MustParseAddr("2001:db9::1"),     // v6 outside
		}
		b.Run(fmt.Sprintf("prefixes=%d", 2*n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				l.Allows(addrs[i%len(addrs)])
			}
		})
	}
}

func BenchmarkRefusedAdd(b *testing.B) {
	r := NewRefused(DefaultMaxTracked)
	a := netip.MustParseAddr("198.51.100.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Add(a)
		}
	})
}
