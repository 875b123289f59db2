package caller

import "time"

// DefaultOpenCallFor is Deps.OpenCallFor's default: longer than any call
// to a help line, short enough that a call whose end was lost (its node
// crashed) stops holding the caller back the same afternoon.
const DefaultOpenCallFor = 4 * time.Hour

// openCalls are the caller's calls up: decided (not rejected) and not yet
// ended, each with the time it stops counting should its end never come.
//
// The count lives in the grain's memory, not in the caller's stream (a
// call's end is written to the call's own stream): the decision that uses
// it records it in CallReceived.Concurrent, which is what the audit and a
// replay read. While the limit is on, a grain with calls up does not
// passivate, so the count survives idleness; a new activation (another node after a failure)
// starts from zero, which can only let calls through, never block a
// caller by calls long gone.
type openCalls map[string]time.Time

// start counts call id as up until until.
func (o *openCalls) start(id string, until time.Time) {
	if *o == nil {
		*o = openCalls{}
	}
	(*o)[id] = until
}

// end stops counting call id.
func (o openCalls) end(id string) { delete(o, id) }

// others returns the calls up at now other than id.
func (o openCalls) others(id string, now time.Time) int {
	n := 0
	for c, until := range o {
		if c != id && until.After(now) {
			n++
		}
	}
	return n
}

// prune forgets the calls whose time ran out at now and returns how many
// are still up.
func (o openCalls) prune(now time.Time) int {
	for c, until := range o {
		if !until.After(now) {
			delete(o, c)
		}
	}
	return len(o)
}
