//go:build race

package node_test

import "testing"

// The etcd tests start several nodes in one process, which races inside
// protoactor-go and gRPC (see etcd_test.go); they run in the non-race
// pass: go test -run Etcd ./actors/node/
const etcdRaceSkip = "etcd membership tests race inside protoactor-go (remote.Start sets gRPC's global logger); they run in the non-race pass: go test -run Etcd ./actors/node/"

func TestEtcdRegistrationLostEndsTheMembership(t *testing.T) { t.Skip(etcdRaceSkip) }
func TestEtcdAwayIsNotReadyButNotLost(t *testing.T)          { t.Skip(etcdRaceSkip) }
func TestEtcdMembershipRefusesWithoutEtcd(t *testing.T)      { t.Skip(etcdRaceSkip) }
func TestEtcdTwoMembersRouteANumberToOneActivation(t *testing.T) {
	t.Skip(etcdRaceSkip)
}
func TestEtcdKilledMemberLeaves(t *testing.T)                    { t.Skip(etcdRaceSkip) }
func TestEtcdHelperNode(t *testing.T)                            { t.Skip(etcdRaceSkip) }
func TestEtcdClusterLosesOneMemberThenQuorum(t *testing.T)       { t.Skip(etcdRaceSkip) }
func TestEtcdRegistrationIsPutAgainForLateWatchers(t *testing.T) { t.Skip(etcdRaceSkip) }
