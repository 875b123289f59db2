//go:build race

package caller_test

import "testing"

func TestTwoMembersRouteANumberToOneActivation(t *testing.T) {
	t.Skip("multi-member cluster tests race inside protoactor-go (remote.Start sets grpc's global logger); they run in the non-race pass: go test -run TwoMembers ./actors/caller/")
}
