package guard_test

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// The hot-path benchmarks drive the real guard (the shared node's caller
// grains, call actors and embedded store; a recording PBX for the pass
// path) over UDP loopback with a raw-socket client that formats nothing
// per call: each worker patches a fixed-width counter into pre-formatted
// INVITE, ACK and BYE bytes, so the allocations and CPU they report are,
// nearly all, the guard's (and on the pass path the PBX's: it runs in the
// process too). They report, per call:
//
//   - allocs/call and B/call: heap allocations of the whole process
//     (runtime.MemStats deltas), the deterministic figure;
//   - cpu-µs/call: user+system CPU of the process (getrusage) divided by
//     the calls, noisy on a shared machine;
//   - calls/s: completed calls per second of wall clock.
//
//	go test -run '^$' -bench 'RejectPath|PassPath' -benchtime 2000x -count 3 ./sip/guard/

// benchWorkers is how many calls are in flight at once.
const benchWorkers = 8

// BenchmarkRejectPath: a hard-blocked number calls; each call is INVITE →
// 603 → ACK.
func BenchmarkRejectPath(b *testing.B) {
	e := newEnv(b)
	e.block(7)
	runCalls(b, e, func(int) string { return e.number }, false)
}

// BenchmarkPassPath: fresh numbers call and are passed to the PBX, which
// answers at once; each call is INVITE → 200 → ACK → BYE → 200.
func BenchmarkPassPath(b *testing.B) {
	e := newEnv(b)
	e.setPBX(siptest.Behaviour{NoRinging: true, Quiet: true})
	runCalls(b, e, func(int) string { return fmt.Sprintf("+7998%07d", benchNumbers.Add(1)) }, true)
}

// benchNumbers draws the pass path's fresh caller numbers across runs.
var benchNumbers atomic.Int64

// runCalls runs b.N calls over benchWorkers raw clients; number gives
// each worker's i-th caller number (formatted before the clock starts).
func runCalls(b *testing.B, e *env, number func(int) string, pass bool) {
	guardAddr := e.guard.UDPAddr().String()
	workers := min(benchWorkers, b.N)
	clients := make([]*rawCaller, workers)
	for w := range clients {
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		nums := make([]string, n)
		for i := range nums {
			nums[i] = number(i)
		}
		clients[w] = newRawCaller(b, guardAddr, w, nums)
	}
	var ms0, ms1 runtime.MemStats
	var ru0, ru1 syscall.Rusage
	runtime.GC()
	b.ResetTimer()
	runtime.ReadMemStats(&ms0)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(pass); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&ms1)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	calls := float64(b.N)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/calls, "allocs/call")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/calls, "B/call")
	b.ReportMetric(float64(cpu.Microseconds())/calls, "cpu-µs/call")
	b.ReportMetric(calls/elapsed.Seconds(), "calls/s")
	b.ReportMetric(0, "ns/op")
}

// rawCaller is one worker: a UDP socket and the pre-formatted messages of
// its calls, with a fixed-width hex counter patched in per call.
type rawCaller struct {
	conn    *net.UDPConn
	numbers []string // one per call; numbers of equal length
	invite  msgTemplate
	ack     msgTemplate // ACK of a non-2xx (same branch) or of a 2xx
	bye     msgTemplate
	buf     []byte
	toTag   []byte
}

// msgTemplate is a message with the positions of its counter and its
// number fields.
type msgTemplate struct {
	b       []byte
	seq     []int // offsets of 8-hex-digit counter fields
	num     []int // offsets of the caller number
	totag   int   // offset of the To tag placeholder, or -1
	scratch []byte
}

const (
	seqMark = "SSSSSSSS"
	numMark = "+NNNNNNNNNNN" // as long as "+7998xxxxxxx"
	tagMark = "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"
)

func newRawCaller(b *testing.B, guardAddr string, worker int, numbers []string) *rawCaller {
	ga, err := net.ResolveUDPAddr("udp", guardAddr)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := net.DialUDP("udp", nil, ga)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	local := conn.LocalAddr().String()
	for _, n := range numbers {
		if len(n) != len(numMark) {
			b.Fatalf("caller number %q is not %d characters long", n, len(numMark))
		}
	}
	callee := tollFreeUser()
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
	head := func(method, branch, cseq, toTag string) string {
		to := fmt.Sprintf("<sip:%s@%s>", callee, guardAddr)
		if toTag != "" {
			to += ";tag=" + toTag
		}
		return fmt.Sprintf("%s sip:%s@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-w%d-%s\r\nMax-Forwards: 70\r\n"+
			"From: <sip:%s@carrier.example>;tag=f%s\r\nTo: %s\r\nCall-ID: bench-w%d-%s@127.0.0.1\r\nCSeq: %s\r\n"+
			"Contact: <sip:c@%s>\r\n",
			method, callee, guardAddr, local, branch, worker, seqMark, numMark, seqMark, to, worker, seqMark, cseq, local)
	}
	invite := head("INVITE", "i", "1 INVITE", "") +
		fmt.Sprintf("Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", len(offer), offer)
	c := &rawCaller{conn: conn, numbers: numbers, buf: make([]byte, 65536), toTag: make([]byte, 0, len(tagMark))}
	c.invite = template(invite)
	c.ack = template(head("ACK", "a", "1 ACK", tagMark) + "Content-Length: 0\r\n\r\n")
	c.bye = template(head("BYE", "b", "2 BYE", tagMark) + "Content-Length: 0\r\n\r\n")
	return c
}

func tollFreeUser() string { return tollFree[1:] }

func template(s string) msgTemplate {
	t := msgTemplate{b: []byte(s), totag: -1, scratch: make([]byte, 0, len(s))}
	for i := 0; ; {
		j := bytes.Index(t.b[i:], []byte(seqMark))
		if j < 0 {
			break
		}
		t.seq = append(t.seq, i+j)
		i += j + len(seqMark)
	}
	if j := bytes.Index(t.b, []byte(numMark)); j >= 0 {
		t.num = append(t.num, j)
	}
	if j := bytes.Index(t.b, []byte(";tag="+tagMark)); j >= 0 {
		t.totag = j
	}
	return t
}

// render writes call i's message into dst: the counter, the number and
// the To tag patched in.
func (t *msgTemplate) render(dst []byte, seq uint32, number string, toTag []byte) []byte {
	if t.totag >= 0 {
		t.scratch = t.patch(t.scratch, seq, number)
		// Replace ";tag=TTT…" by ";tag=<tag>".
		dst = append(dst[:0], t.scratch[:t.totag+5]...)
		dst = append(dst, toTag...)
		return append(dst, t.scratch[t.totag+5+len(tagMark):]...)
	}
	return t.patch(dst, seq, number)
}

func (t *msgTemplate) patch(dst []byte, seq uint32, number string) []byte {
	dst = append(dst[:0], t.b...)
	const hex = "0123456789abcdef"
	for _, off := range t.seq {
		for k := 0; k < 8; k++ {
			dst[off+k] = hex[(seq>>(28-4*k))&0xf]
		}
	}
	for _, off := range t.num {
		copy(dst[off:], number)
	}
	return dst
}

func (c *rawCaller) run(pass bool) error {
	out := make([]byte, 0, 4096)
	for i, number := range c.numbers {
		seq := uint32(i)
		out = c.invite.render(out, seq, number, nil)
		if _, err := c.conn.Write(out); err != nil {
			return err
		}
		status, err := c.final(seq, []byte("INVITE"))
		if err != nil {
			return fmt.Errorf("call %d from %s: %w", i, number, err)
		}
		if pass != (status == 200) {
			return fmt.Errorf("call %d from %s: final %d", i, number, status)
		}
		out = c.ack.render(out, seq, number, c.toTag)
		if _, err := c.conn.Write(out); err != nil {
			return err
		}
		if !pass {
			continue
		}
		out = c.bye.render(out, seq, number, c.toTag)
		if _, err := c.conn.Write(out); err != nil {
			return err
		}
		if status, err := c.final(seq, []byte("BYE")); err != nil || status != 200 {
			return fmt.Errorf("call %d BYE: %d %v", i, status, err)
		}
	}
	return nil
}

// final reads until the final response to call seq's method, and keeps
// its To tag.
func (c *rawCaller) final(seq uint32, method []byte) (int, error) {
	var id [8]byte
	const hex = "0123456789abcdef"
	for k := range id {
		id[k] = hex[(seq>>(28-4*k))&0xf]
	}
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.conn.Read(c.buf)
		if err != nil {
			return 0, err
		}
		m := c.buf[:n]
		if !bytes.HasPrefix(m, []byte("SIP/2.0 ")) || len(m) < 12 {
			continue // a request from the guard; none expected here
		}
		status := int(m[8]-'0')*100 + int(m[9]-'0')*10 + int(m[10]-'0')
		cid := bytes.Index(m, []byte("\r\nCall-ID: bench-"))
		if cid < 0 || !bytes.Contains(m[cid:min(len(m), cid+40)], id[:]) {
			continue // a retransmission of an earlier call's
		}
		cs := bytes.Index(m, []byte("\r\nCSeq: "))
		if cs < 0 || !bytes.HasPrefix(bytes.TrimLeft(m[cs+8:], "0123456789 "), method) {
			continue
		}
		if status < 200 {
			continue
		}
		c.toTag = c.toTag[:0]
		if to := bytes.Index(m, []byte("\r\nTo: ")); to >= 0 {
			line := m[to+6:]
			line = line[:bytes.Index(line, []byte("\r\n"))]
			if t := bytes.Index(line, []byte(";tag=")); t >= 0 {
				tag := line[t+5:]
				if k := bytes.IndexByte(tag, ';'); k >= 0 {
					tag = tag[:k]
				}
				c.toTag = append(c.toTag, tag...)
			}
		}
		return status, nil
	}
}
