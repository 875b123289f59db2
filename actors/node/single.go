package node

import (
	"fmt"

	"github.com/asynkron/protoactor-go/cluster"
)

// SingleMember is the membership of a node that runs alone: it publishes
// this one member and nothing else, keeps no state outside the process and
// needs no etcd. No other node can ever join a member started with it, so
// it suits one node on its own store; nodes sharing a log need a provider
// they share (etcd).
type SingleMember struct{}

// SingleMemberProvider returns the membership of a node that runs alone.
func SingleMemberProvider() cluster.ClusterProvider { return SingleMember{} }

// StartMember publishes the node as the cluster's only member.
func (SingleMember) StartMember(c *cluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return fmt.Errorf("single member: %w", err)
	}
	c.MemberList.UpdateClusterTopology(cluster.Members{{
		Id: c.ActorSystem.ID, Host: host, Port: int32(port), Kinds: c.GetClusterKinds(),
	}})
	return nil
}

// StartClient refuses: a client of a one-member cluster would need a
// member in its own process, where it could simply be that member.
func (SingleMember) StartClient(*cluster.Cluster) error {
	return fmt.Errorf("single member: a client-only node has no members to reach")
}

// Shutdown has nothing to deregister.
func (SingleMember) Shutdown(bool) error { return nil }
