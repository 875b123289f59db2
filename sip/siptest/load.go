package siptest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotLoopback is returned by LoadRun for a target outside loopback.
var ErrNotLoopback = errors.New("load runs only target loopback addresses")

// LoadOptions tune LoadRun. The zero value places reject-path calls from
// distinct numbers to DefaultCallee.
type LoadOptions struct {
	// Callee is the dialled number; default DefaultCallee.
	Callee string
	// Caller returns the calling number of call i (from 0): one
	// hard-blocked number for the reject path, fresh numbers for the pass
	// path (a number calling many times would cross the guard's limits).
	// Default: "+7999" followed by i in seven digits.
	Caller func(i int) string
	// Hold is how long an answered call lasts before the client hangs up
	// with a BYE. Default 0: right after the ACK.
	Hold time.Duration
	// Timeout is how long a call waits for its final response, and a BYE
	// for its own; default 5 s. A call without one counts in Timeouts.
	Timeout time.Duration
	// MaxCalls bounds rate × duration; default 100 000.
	MaxCalls int
	// LocalAddr is the client's UDP address; default "127.0.0.1:0".
	LocalAddr string
	// NoSDP sends INVITEs without an SDP offer. By default each carries
	// an offer (PCMU, PCMA, telephone-event) naming one shared RTP port
	// that discards what it receives.
	NoSDP bool
	// Run, when set, replaces the random tag that makes the run's
	// Call-IDs, From tags and branches unique: two runs with the same Run
	// and LocalAddr send the same INVITEs, as a client retrying them does.
	Run string
	// OnDone, when set, hears of each call once it is finished. It is
	// called with the loader's lock held, so it must be quick and must not
	// block.
	OnDone func(LoadCall)
}

// LoadCall is one finished call of a load run, for LoadOptions.OnDone.
type LoadCall struct {
	// I is the call's index (from 0) and CallID its Call-ID.
	I      int
	CallID string
	// Status is the INVITE's final status; 0 when none came within
	// LoadOptions.Timeout.
	Status int
	// Sent is when the INVITE was first sent; Latency how long its final
	// response took (0 without one).
	Sent    time.Time
	Latency time.Duration
}

// LoadResult is what a load run measured.
type LoadResult struct {
	// Calls is the number of INVITEs sent (first transmissions).
	Calls int
	// Finals counts the final responses by status code.
	Finals map[int]int
	// Timeouts counts calls with no final response within Timeout.
	Timeouts int
	// Retransmissions counts INVITE and BYE retransmissions (RFC 3261
	// §17.1.1.2 Timer A, §17.1.2.2 Timer E): a sign of lost datagrams.
	Retransmissions int
	// ByeFailures counts answered calls whose BYE got no 2xx in time.
	ByeFailures int
	// Late counts INVITEs sent more than 10 ms after their scheduled
	// time: the client, not the guard, was then the bottleneck.
	Late int
	// P50, P90, P99 and Max are percentiles of the INVITE-to-final-response
	// time (first transmission to first final response), by Go's
	// monotonic clock.
	P50, P90, P99, Max time.Duration
	// Elapsed is the time from the first INVITE to the last answer.
	Elapsed time.Duration
	// Rate is the achieved rate of INVITEs per second (first to last).
	Rate float64
	// Sequences counts the calls by the responses their INVITE got, in
	// the order they arrived: the distinct status codes but 100 Trying
	// (hop by hop, RFC 3261 §16.7), each at its first arrival, separated
	// by spaces — "180 200" is a call that rang and was answered, "200"
	// one answered without ringing, "200 180" one whose ringing came
	// after the answer; "" is a call that got nothing. Responses that
	// come more than 2 s after the final response are not counted.
	Sequences map[string]int
}

// Failed is the number of calls that did not end with status want.
func (r LoadResult) Failed(want int) int { return r.Calls - r.Finals[want] }

func (r LoadResult) String() string {
	var codes []int
	for c := range r.Finals {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var fin strings.Builder
	for _, c := range codes {
		fmt.Fprintf(&fin, " %d×%d", c, r.Finals[c])
	}
	seqs := slices.Sorted(maps.Keys(r.Sequences))
	var seq strings.Builder
	for _, k := range seqs {
		fmt.Fprintf(&seq, " [%s]×%d", k, r.Sequences[k])
	}
	return fmt.Sprintf("%d calls at %.0f/s: finals%s, %d timeouts, %d retransmissions, %d BYE failures, %d late; INVITE→final p50 %v p90 %v p99 %v max %v; responses%s",
		r.Calls, r.Rate, fin.String(), r.Timeouts, r.Retransmissions, r.ByeFailures, r.Late,
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), seq.String())
}

// LoadRun places calls to target (host:port, loopback only) at rate per
// second for duration, and measures the INVITE-to-final-response latency
// of each. A call gets 100 Trying or any provisional to stop its
// retransmissions, a final response, an ACK (RFC 3261 §17.1.1.3 for a
// non-2xx, §13.2.2.4 for a 2xx), and, if answered, a BYE after Hold.
// Requests from the target (a BYE of its own) are answered 200 OK.
//
// It is a lean client on one UDP socket: messages are formatted and
// scanned by hand, without a transaction layer, so that at hundreds or
// thousands of calls per second the figures are the guard's and not the
// client's (Late says if they were not). Every in-dialog message goes to
// target, whatever the Contact says. It returns once every call has its
// final response (and BYE answer) or timed out, or ctx ends.
func LoadRun(ctx context.Context, target string, rate float64, duration time.Duration, opts LoadOptions) (LoadResult, error) {
	dst, err := loopbackTarget(target)
	if err != nil {
		return LoadResult{}, err
	}
	if rate <= 0 || duration <= 0 {
		return LoadResult{}, fmt.Errorf("siptest: load: rate %v/s for %v: both must be positive", rate, duration)
	}
	if opts.Callee == "" {
		opts.Callee = DefaultCallee
	}
	if opts.Caller == nil {
		opts.Caller = func(i int) string { return fmt.Sprintf("+7999%07d", i) }
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxCalls <= 0 {
		opts.MaxCalls = 100_000
	}
	if opts.LocalAddr == "" {
		opts.LocalAddr = "127.0.0.1:0"
	}
	n := int(rate * duration.Seconds())
	if n < 1 {
		n = 1
	}
	if n > opts.MaxCalls {
		return LoadResult{}, fmt.Errorf("siptest: load: %v/s for %v is %d calls, more than MaxCalls %d", rate, duration, n, opts.MaxCalls)
	}

	laddr, err := net.ResolveUDPAddr("udp", opts.LocalAddr)
	if err != nil {
		return LoadResult{}, fmt.Errorf("siptest: load: local address: %w", err)
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return LoadResult{}, fmt.Errorf("siptest: load: listen: %w", err)
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetWriteBuffer(8 << 20)
	l := &loader{
		conn: conn, dst: dst, opts: opts, local: conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		run: cmp.Or(opts.Run, sipTag(8)), calls: make(map[string]*loadCall, n), active: make(map[*loadCall]struct{}),
		finals: make(map[int]int), sequences: make(map[string]int), wake: make(chan struct{}, 1),
	}
	if !opts.NoSDP {
		rtpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: laddr.IP})
		if err != nil {
			return LoadResult{}, fmt.Errorf("siptest: load: rtp socket: %w", err)
		}
		defer rtpConn.Close()
		go discard(rtpConn)
		l.rtpPort = rtpConn.LocalAddr().(*net.UDPAddr).Port
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.readLoop()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timersDone := make(chan struct{})
	go func() {
		defer close(timersDone)
		l.timerLoop(ctx)
	}()

	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		if ctx.Err() != nil {
			break
		}
		if time.Since(due) > 10*time.Millisecond {
			l.late.Add(1)
		}
		l.invite(i)
	}
	l.mu.Lock()
	l.sendingDone = true
	l.mu.Unlock()
	<-timersDone // returns when every call is finished or ctx ends
	conn.Close()
	wg.Wait()

	res := l.result(start)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("siptest: load: %w (%s)", context.Cause(ctx), res)
	}
	return res, nil
}

func loopbackTarget(target string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("siptest: load: target %q: %w", target, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("siptest: load: target %q: port: %w", target, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().IsLoopback() {
		return netip.AddrPort{}, fmt.Errorf("siptest: load: target %q: %w", target, ErrNotLoopback)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

func discard(c *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}

func sipTag(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[random32()%uint32(len(alphabet))]
	}
	return string(b)
}

// loader is the state of one LoadRun. The sending goroutine, the read
// goroutine and the timer goroutine share calls under mu.
type loader struct {
	conn    *net.UDPConn
	dst     netip.AddrPort
	local   netip.AddrPort
	opts    LoadOptions
	run     string
	rtpPort int
	late    atomic.Int64
	wake    chan struct{}

	mu          sync.Mutex
	calls       map[string]*loadCall   // every call not yet forgotten, by Call-ID
	active      map[*loadCall]struct{} // calls not finished, for the timers
	finishedQ   []*loadCall            // finished calls, oldest first, forgotten after a while
	finals      map[int]int
	sequences   map[string]int // of forgotten calls, see LoadResult.Sequences
	latencies   []time.Duration
	timeouts    int
	retrans     int
	byeFailures int
	sent        int
	finished    int
	lastSent    time.Time
	lastFinal   time.Time
	sendingDone bool
}

type loadPhase int

const (
	phaseInvite loadPhase = iota // waiting for the final response
	phaseHold                    // answered, BYE due at byeAt
	phaseBye                     // BYE sent, waiting for its response
	phaseDone
)

type loadCall struct {
	i       int
	callID  string
	invite  []byte
	sentAt  time.Time
	doneAt  time.Time
	phase   loadPhase
	prov    bool          // a provisional response stopped INVITE retransmissions
	seq     []int         // the INVITE's distinct response codes in order of arrival, 100 left out
	final   int           // the INVITE's final status; 0 until it has one
	latency time.Duration // of the final response
	next    time.Time
	backoff time.Duration
	ack     []byte // the ACK, re-sent for a retransmitted final response
	bye     []byte
	byeAt   time.Time
	timeout time.Time
}

const (
	t1 = 500 * time.Millisecond // RFC 3261 §17.1.1.1
	t2 = 4 * time.Second
)

func (l *loader) invite(i int) {
	callID := fmt.Sprintf("%s-%d@%s", l.run, i, l.local.Addr())
	caller := l.opts.Caller(i)
	me := l.local.String()
	var body string
	if !l.opts.NoSDP {
		ip := l.local.Addr().String()
		body = "v=0\r\no=load " + strconv.Itoa(i) + " 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(l.rtpPort) + " RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
			"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:%s@%s SIP/2.0\r\n", l.opts.Callee, l.dst)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s-%d-i;rport\r\n", me, l.run, i)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:%s@%s>;tag=%s-%d\r\n", caller, l.local.Addr(), l.run, i)
	fmt.Fprintf(&b, "To: <sip:%s@%s>\r\n", l.opts.Callee, l.dst)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	b.WriteString("CSeq: 1 INVITE\r\n")
	fmt.Fprintf(&b, "Contact: <sip:load@%s>\r\n", me)
	fmt.Fprintf(&b, "P-Asserted-Identity: <sip:%s@%s>\r\n", caller, l.local.Addr())
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	now := time.Now()
	c := &loadCall{i: i, callID: callID, invite: []byte(b.String()), sentAt: now, next: now.Add(t1), backoff: t1, timeout: now.Add(l.opts.Timeout)}
	l.mu.Lock()
	l.calls[callID] = c
	l.active[c] = struct{}{}
	l.sent++
	l.lastSent = now
	l.mu.Unlock()
	l.write(c.invite)
}

func (l *loader) write(b []byte) {
	_, _ = l.conn.WriteToUDPAddrPort(b, l.dst)
}

// msg is what the load client reads of a SIP message.
type msg struct {
	status            int    // 0 for a request
	method            string // request method
	callID            string
	cseqNum           string
	cseqMethod        string
	to, from, contact string
	vias              []string
	recordRoutes      []string
}

// scan reads the start line and the headers the client needs; compact
// forms (RFC 3261 §7.3.3) included.
func scan(data []byte) (msg, bool) {
	var m msg
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) == 0 {
		return m, false
	}
	first := lines[0]
	if rest, ok := strings.CutPrefix(first, "SIP/2.0 "); ok {
		code, _, _ := strings.Cut(rest, " ")
		s, err := strconv.Atoi(code)
		if err != nil {
			return m, false
		}
		m.status = s
	} else {
		method, _, ok := strings.Cut(first, " ")
		if !ok {
			return m, false
		}
		m.method = method
	}
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			m.callID = value
		case "cseq":
			m.cseqNum, m.cseqMethod, _ = strings.Cut(value, " ")
			m.cseqMethod = strings.TrimSpace(m.cseqMethod)
		case "to", "t":
			m.to = value
		case "from", "f":
			m.from = value
		case "contact", "m":
			if m.contact == "" {
				m.contact = value
			}
		case "via", "v":
			m.vias = append(m.vias, value)
		case "record-route":
			m.recordRoutes = append(m.recordRoutes, value)
		}
	}
	return m, m.callID != ""
}

// contactURI extracts the URI of a Contact value: "<sip:x@h:p>;expires=1"
// or a bare "sip:x@h:p".
func contactURI(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	u, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(u)
}

func (l *loader) readLoop() {
	buf := make([]byte, 65535)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		at := time.Now()
		m, ok := scan(buf[:n])
		if !ok {
			continue
		}
		if m.status == 0 {
			l.answerRequest(m, from)
			continue
		}
		l.response(at, m)
	}
}

// answerRequest answers a request from the target: 200 OK to a BYE and
// anything else but ACK (nothing is answered to an ACK) and re-INVITE
// (488: the load client does not renegotiate).
func (l *loader) answerRequest(m msg, from netip.AddrPort) {
	if m.method == "ACK" {
		return
	}
	status := "200 OK"
	if m.method == "INVITE" {
		status = "488 Not Acceptable Here"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %s\r\n", status)
	for _, v := range m.vias {
		fmt.Fprintf(&b, "Via: %s\r\n", v)
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s %s\r\nContent-Length: 0\r\n\r\n", m.from, m.to, m.callID, m.cseqNum, m.cseqMethod)
	_, _ = l.conn.WriteToUDPAddrPort([]byte(b.String()), from)
	if m.method == "BYE" {
		l.mu.Lock()
		if c := l.calls[m.callID]; c != nil && c.phase == phaseHold {
			l.finishLocked(c) // the target hung up first
		}
		l.mu.Unlock()
	}
}

func (l *loader) response(at time.Time, m msg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls[m.callID]
	if c == nil {
		return
	}
	switch m.cseqMethod {
	case "INVITE":
		if m.status != 100 && !slices.Contains(c.seq, m.status) {
			c.seq = append(c.seq, m.status)
		}
		if m.status < 200 {
			c.prov = true
			return
		}
		if c.phase != phaseInvite {
			// A retransmitted final response: the ACK was lost or late.
			if c.ack != nil {
				l.write(c.ack)
			}
			return
		}
		c.final, c.latency = m.status, at.Sub(c.sentAt)
		l.finals[m.status]++
		l.latencies = append(l.latencies, at.Sub(c.sentAt))
		l.lastFinal = at
		if m.status >= 300 {
			c.ack = l.ackNon2xx(c, m)
			l.write(c.ack)
			l.finishLocked(c)
			return
		}
		target := contactURI(m.contact)
		if target == "" {
			target = fmt.Sprintf("sip:%s@%s", l.opts.Callee, l.dst)
		}
		c.ack = l.inDialog(c, "ACK", "1", target, m)
		c.bye = l.inDialog(c, "BYE", "2", target, m)
		l.write(c.ack)
		c.phase, c.byeAt = phaseHold, at.Add(l.opts.Hold)
		if l.opts.Hold <= 0 {
			l.sendBye(c, at)
		} else {
			l.poke()
		}
	case "BYE":
		if m.status < 200 || c.phase != phaseBye {
			return
		}
		if m.status >= 300 {
			l.byeFailures++
		}
		l.finishLocked(c)
	}
}

func (l *loader) sendBye(c *loadCall, now time.Time) {
	c.phase, c.next, c.backoff, c.timeout = phaseBye, now.Add(t1), t1, now.Add(l.opts.Timeout)
	l.write(c.bye)
}

func (l *loader) finishLocked(c *loadCall) {
	if c.phase == phaseDone {
		return
	}
	c.phase, c.doneAt = phaseDone, time.Now()
	c.invite, c.bye = nil, nil
	if l.opts.OnDone != nil {
		l.opts.OnDone(LoadCall{I: c.i, CallID: c.callID, Status: c.final, Sent: c.sentAt, Latency: c.latency})
	}
	delete(l.active, c)
	l.finishedQ = append(l.finishedQ, c)
	l.finished++
	l.poke()
}

func (l *loader) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// ackNon2xx is the ACK of a non-2xx final response (RFC 3261 §17.1.1.3):
// the INVITE's Request-URI, top Via (same branch), From, Call-ID and CSeq
// number; the response's To, with its tag.
func (l *loader) ackNon2xx(c *loadCall, m msg) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "ACK sip:%s@%s SIP/2.0\r\n", l.opts.Callee, l.dst)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s-%d-i;rport\r\n", l.local, l.run, c.i)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n", m.from, m.to, c.callID)
	return []byte(b.String())
}

// inDialog builds the ACK of a 2xx or the BYE (RFC 3261 §13.2.2.4,
// §15.1.1): Request-URI the remote target, a new branch, the route set
// from Record-Route reversed (§12.1.2), the 2xx's From and To.
func (l *loader) inDialog(c *loadCall, method, cseq, target string, m msg) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, target)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s-%d-%s;rport\r\n", l.local, l.run, c.i, strings.ToLower(method))
	b.WriteString("Max-Forwards: 70\r\n")
	for i := len(m.recordRoutes) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "Route: %s\r\n", m.recordRoutes[i])
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s %s\r\nContent-Length: 0\r\n\r\n", m.from, m.to, c.callID, cseq, method)
	return []byte(b.String())
}

// timerLoop retransmits, times out, and sends BYEs when due, until every
// call is finished after the last INVITE, or ctx ends.
func (l *loader) timerLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.wake:
		}
		now := time.Now()
		l.mu.Lock()
		// Finished calls stay findable for a while, so a retransmitted
		// final response gets its ACK again; then they are forgotten.
		for len(l.finishedQ) > 0 && now.Sub(l.finishedQ[0].doneAt) > 2*time.Second {
			l.sequences[sequence(l.finishedQ[0].seq)]++
			delete(l.calls, l.finishedQ[0].callID)
			l.finishedQ = l.finishedQ[1:]
		}
		for c := range l.active {
			switch c.phase {
			case phaseInvite, phaseBye:
				if now.After(c.timeout) {
					if c.phase == phaseInvite {
						l.timeouts++
					} else {
						l.byeFailures++
					}
					l.finishLocked(c)
					continue
				}
				// Timer A (INVITE) stops at the first provisional;
				// Timer E (BYE) doubles up to T2 (RFC 3261 §17.1).
				if (c.phase == phaseBye || !c.prov) && now.After(c.next) {
					msg := c.invite
					if c.phase == phaseBye {
						msg = c.bye
						c.backoff = min(2*c.backoff, t2)
					} else {
						c.backoff *= 2
					}
					c.next = now.Add(c.backoff)
					l.retrans++
					l.write(msg)
				}
			case phaseHold:
				if !now.Before(c.byeAt) {
					l.sendBye(c, now)
				}
			}
		}
		over := l.sendingDone && l.finished >= l.sent
		l.mu.Unlock()
		if over {
			return
		}
	}
}

func (l *loader) result(start time.Time) LoadResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := LoadResult{
		Calls: l.sent, Finals: make(map[int]int, len(l.finals)), Timeouts: l.timeouts,
		Retransmissions: l.retrans, ByeFailures: l.byeFailures, Late: int(l.late.Load()),
	}
	for k, v := range l.finals {
		r.Finals[k] = v
	}
	r.Sequences = maps.Clone(l.sequences)
	for _, c := range l.calls {
		r.Sequences[sequence(c.seq)]++
	}
	if !l.lastFinal.IsZero() {
		r.Elapsed = l.lastFinal.Sub(start)
	}
	if span := l.lastSent.Sub(start); r.Calls > 1 && span > 0 {
		r.Rate = float64(r.Calls-1) / span.Seconds()
	}
	lat := slices.Clone(l.latencies)
	slices.Sort(lat)
	if len(lat) > 0 {
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
		r.P50, r.P90, r.P99, r.Max = pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	}
	return r
}

// sequence renders a call's response codes for LoadResult.Sequences.
func sequence(codes []int) string {
	var b strings.Builder
	for i, c := range codes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(c))
	}
	return b.String()
}
