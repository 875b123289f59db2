//go:build !race

package esdb_test

// raceEnabled says the tests run with the race detector.
const raceEnabled = false
