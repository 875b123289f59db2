package guard

import (
	"sync"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Provisional responses of the PBX, in the order they arrived.
//
// sipgo's transaction layer hands every response it reads to a goroutine
// of its own (TransactionLayer.handleMessage, up to v1.7.4), and the
// goroutines race for the client transaction. When a PBX sends 180
// Ringing and 200 OK back to back, the 200 may win: the INVITE
// transaction moves to Accepted, and the 180 that comes after it is
// dropped as a stray response (RFC 6026 §7.2) — WaitAnswer's OnResponse
// never sees it. Two provisional responses can swap places the same way.
// (Upstream: emiago/sipgo#306, "Client transaction responses can be
// delivered out of order", with fixes proposed in #307 and #354.)
//
// The transport layer, though, calls its handlers one message after the
// other, in the order each socket (UDP) or connection (TCP) delivered
// them, the transaction layer's first (which only starts that goroutine),
// then observe. observe keeps the provisional responses to a PBX INVITE
// of the pass path; when the transaction hands a response up, the
// provisional responses that arrived before it are handed up first, each
// once, in order of arrival — whether or not the transaction dropped or
// reordered them.

// provisionals finds the watched INVITEs by the branch of their Via.
type provisionals struct {
	mu       sync.Mutex
	byBranch map[string]*arrivals
}

func newProvisionals() *provisionals {
	return &provisionals{byBranch: map[string]*arrivals{}}
}

// observe is the guard's transport-layer message handler; it must not
// block (it runs on the socket's read goroutine).
func (o *provisionals) observe(m sip.Message) {
	res, ok := m.(*sip.Response)
	if !ok || res.StatusCode <= 100 || res.StatusCode >= 200 {
		return // 100 Trying is hop by hop (RFC 3261 §16.7): never relayed
	}
	cseq, via := res.CSeq(), res.Via()
	if cseq == nil || cseq.MethodName != sip.INVITE || via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	o.mu.Lock()
	a := o.byBranch[branch]
	o.mu.Unlock()
	if a != nil {
		a.arrived(res)
	}
}

// watch is a request option for DialogUA.WriteInvite: it builds the
// request as sipgo does by default, and starts watching its branch before
// the request is sent, so that no response can come first.
func (o *provisionals) watch(a *arrivals) sipgo.ClientRequestOption {
	return func(c *sipgo.Client, req *sip.Request) error {
		if err := sipgo.ClientRequestBuild(c, req); err != nil {
			return err
		}
		via := req.Via()
		if via == nil {
			return nil // sipgo refuses such a request itself
		}
		branch, _ := via.Params.Get("branch")
		o.mu.Lock()
		defer o.mu.Unlock()
		if a.branch != "" {
			delete(o.byBranch, a.branch)
		}
		a.branch = branch
		o.byBranch[branch] = a
		return nil
	}
}

// forget stops watching a's INVITE.
func (o *provisionals) forget(a *arrivals) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if a.branch != "" && o.byBranch[a.branch] == a {
		delete(o.byBranch, a.branch)
	}
}

// arrivals are the provisional responses to one INVITE.
type arrivals struct {
	branch string // set by watch, under provisionals.mu

	mu     sync.Mutex
	queue  []*sip.Response            // arrived, not yet handed up
	handed map[*sip.Response]struct{} // handed up (each received message is its own *sip.Response)
}

func (a *arrivals) arrived(r *sip.Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.handed[r]; ok {
		return // the transaction handed it up before observe saw it
	}
	a.queue = append(a.queue, r)
}

// handUp is called as the transaction hands r up (WaitAnswer's
// OnResponse). It returns the provisional responses (above 100) to relay
// now, in order of arrival: those that arrived before r and were not
// handed up yet, then r itself if it is one and was not. Every response
// that arrived before r has been observed already: the socket's reader
// observed it before it read r.
func (a *arrivals) handUp(r *sip.Response) []*sip.Response {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.handed == nil {
		a.handed = map[*sip.Response]struct{}{}
	}
	out := a.queue
	a.queue = nil
	for _, q := range out {
		a.handed[q] = struct{}{}
	}
	if _, ok := a.handed[r]; !ok && r.IsProvisional() && r.StatusCode > 100 {
		a.handed[r] = struct{}{}
		out = append(out, r)
	}
	return out
}
