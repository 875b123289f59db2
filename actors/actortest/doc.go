// Package actortest is the test kit for code that talks to caller grains:
// a one-member cluster hosting them on an embedded store in a temporary
// directory (Start, New), a fake clock (Clock), a random source that makes
// the drawn challenge code known (FixedRand), and a polling helper
// (Eventually).
//
// It is a test kit: only _test.go files (and cmd) import it. Starting a
// cluster member takes about a second, so a package whose tests share one
// node starts it in TestMain with Start and stops it after m.Run; a test
// that needs a node of its own (its own policy, clock or store directory)
// calls New, which stops the node when the test ends.
package actortest
