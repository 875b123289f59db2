// Package cluster is the failure suite: three `callguard serve` processes
// on loopback, sharing a PostgreSQL event store and an etcd membership, all
// started by the tests, under SIP load spread over the three, while a
// scenario kills, pauses, restarts or cuts off a node, an etcd member or
// PostgreSQL. After each scenario the shared log is read back and checked:
// every caller stream linear with one writer at a time, every acknowledged
// admin command present, each call decided while the store answered
// recorded exactly once, hour and day counts consecutive, and the verdicts
// those the policy gives when the stream is replayed.
//
// Scenarios 1, 2, 3 and 7 run with `go test ./tests/cluster/`; all eight
// run with CALLGUARD_FAILURE_SUITE=all (`go tool task failure-suite`).
// Tests skip with a message when etcd, PostgreSQL or network namespaces
// are missing. Settings (environment):
//
//	CALLGUARD_CLUSTER_RATE     total calls/s over the nodes (default 60)
//	CALLGUARD_CLUSTER_SECONDS  load duration of each scenario (default 12)
//	CALLGUARD_CLUSTER_RACE     1 builds the guard binary with -race (default: without, three race-built guards do not fit on two cores)
//	CALLGUARD_FAILURE_SUITE    all: also run scenarios 4, 5, 6 and 8
package cluster
