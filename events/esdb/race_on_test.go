//go:build race

package esdb_test

// raceEnabled says the tests run with the race detector, which makes the
// fake server's 100,000-event case take half a minute.
const raceEnabled = true
