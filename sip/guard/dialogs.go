package guard

import (
	"sync"

	"github.com/emiago/sipgo/sip"
)

// leg names a side of a B2BUA call.
type leg uint8

const (
	callerLeg leg = iota // the carrier's dialog: the guard is its UAS
	pbxLeg               // the PBX's dialog: the guard is its UAC
)

func (l leg) String() string {
	if l == pbxLeg {
		return "pbx"
	}
	return "caller"
}

type dialogRef struct {
	s   *session
	leg leg
}

// registry maps dialog IDs to the sessions that own them, so that ACK,
// BYE, INFO and UPDATE reach their call. A dialog ID (RFC 3261 §12: Call-ID
// and both tags) is computed from a request differently depending on
// which side we are: as UAS the local tag is the request's To tag, as UAC
// it is the From tag. Entries are added when a dialog is created and
// removed when the call ends.
type registry struct {
	mu sync.RWMutex
	m  map[string]dialogRef
}

func (r *registry) add(id string, s *session, l leg) {
	r.mu.Lock()
	r.m[id] = dialogRef{s: s, leg: l}
	r.mu.Unlock()
}

func (r *registry) remove(ids ...string) {
	r.mu.Lock()
	for _, id := range ids {
		delete(r.m, id)
	}
	r.mu.Unlock()
}

// lookup finds the dialog of an in-dialog request from either side.
func (r *registry) lookup(req *sip.Request) (dialogRef, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if id, err := sip.DialogIDFromRequestUAS(req); err == nil {
		if ref, ok := r.m[id]; ok && ref.leg == callerLeg {
			return ref, true
		}
	}
	if id, err := sip.DialogIDFromRequestUAC(req); err == nil {
		if ref, ok := r.m[id]; ok && ref.leg == pbxLeg {
			return ref, true
		}
	}
	return dialogRef{}, false
}

func (r *registry) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.m)
}
