//go:build !race

// protoactor-go's remote.Start sets gRPC's process-wide logger each time a
// node starts, while the gRPC clients of etcd already running read it: a
// data race inside the libraries whenever a process starts a node after
// another node's etcd client (protoactor's provider keeps one until the
// process exits). One node per process, as callguard serve runs, does not
// race; tests/membership_test.go runs the binary under -race. These tests
// start several nodes in one process and so run without -race (.ci/run
// has a pass for them); etcd_race_test.go says so when -race is on.

package node_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/node/etcdtest"
	"github.com/callguard/callguard/events/phone"
)

// startEtcdNode starts a node registered in the etcd at eps and watches
// its registration; both stop when t ends.
func startEtcdNode(t *testing.T, eps []string) (*node.Node, *node.Watch) {
	t.Helper()
	return startEtcdNodeNamed(t, eps, "etcd-test")
}

func startEtcdNodeNamed(t *testing.T, eps []string, cluster string) (*node.Node, *node.Watch) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := node.NewEtcd(node.EtcdConfig{Endpoints: eps, ProbeEvery: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(ctx, node.Config{ClusterName: cluster, Listen: "127.0.0.1:0", Provider: e.Provider(), Logger: log})
	if err != nil {
		t.Fatal(errors.Join(err, e.Close()))
	}
	w, err := e.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Stop()
		n.Stop(false)
		_ = e.Close()
	})
	return n, w
}

func etcdClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestEtcdRegistrationLostEndsTheMembership(t *testing.T) {
	for name, lose := range map[string]func(ctx context.Context, c *clientv3.Client, key string) error{
		"lease revoked": func(ctx context.Context, c *clientv3.Client, key string) error {
			r, err := c.Get(ctx, key)
			if err != nil {
				return err
			}
			if len(r.Kvs) != 1 || r.Kvs[0].Lease == 0 {
				return errors.New("the node's key has no lease")
			}
			_, err = c.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease))
			return err
		},
		"key deleted": func(ctx context.Context, c *clientv3.Client, key string) error {
			_, err := c.Delete(ctx, key)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			etcd := etcdtest.New(t)
			n, w := startEtcdNode(t, etcd.Endpoints())
			c := etcdClient(t, etcd.Endpoints())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })
			select {
			case <-w.Lost():
				t.Fatalf("lost before anything happened: %v", w.Err())
			default:
			}
			if err := lose(ctx, c, node.MemberKey(n)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-w.Lost():
			case <-time.After(10 * time.Second):
				t.Fatal("membership not reported lost 10 s after the registration went")
			}
			if err := w.Err(); !errors.Is(err, node.ErrMembershipLost) {
				t.Fatalf("reason %v, want ErrMembershipLost", err)
			}
			if w.Ready() == nil {
				t.Fatal("a node that lost its membership says ready")
			}
		})
	}
}

func TestEtcdAwayIsNotReadyButNotLost(t *testing.T) {
	etcd := etcdtest.New(t)
	_, w := startEtcdNode(t, etcd.Endpoints())
	actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })
	etcd.Stop()
	actortest.Eventually(t, 10*time.Second, func() error {
		if w.Ready() == nil {
			return errors.New("still ready with etcd stopped")
		}
		return nil
	})
	t.Logf("etcd stopped: %v", w.Ready())
	// Longer than the lease: etcd extends leases when it comes back, so
	// the registration survives an outage of etcd itself.
	time.Sleep(node.EtcdLeaseTTL + time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := etcd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })
	// Give a lost registration time to show before saying it is not.
	time.Sleep(node.EtcdLeaseTTL + time.Second)
	if err := w.Err(); err != nil {
		t.Fatalf("membership lost after etcd came back: %v", err)
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("not ready after etcd came back: %v", err)
	}
}

func TestEtcdMembershipRefusesWithoutEtcd(t *testing.T) {
	if _, err := node.NewEtcd(node.EtcdConfig{}); !errors.Is(err, node.ErrConfig) {
		t.Fatalf("no endpoints: %v, want ErrConfig", err)
	}
	e, err := node.NewEtcd(node.EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(context.Background(), node.Config{ClusterName: "etcd-test", Listen: "127.0.0.1:0", Provider: e.Provider()})
	if err == nil {
		n.Stop(false)
		t.Fatal("no etcd on port 1, yet the node started")
	}
	if _, err := e.Watch(context.Background()); err == nil {
		t.Fatal("a watch without a started node")
	}
}

func TestEtcdTwoMembersRouteANumberToOneActivation(t *testing.T) {
	etcd := etcdtest.New(t)
	var members []*actortest.Node
	for i := range 2 {
		e, err := node.NewEtcd(node.EtcdConfig{Endpoints: etcd.Endpoints()})
		if err != nil {
			t.Fatal(err)
		}
		opts := []actortest.Option{actortest.WithClusterName("etcd-two"), actortest.WithProvider(e.Provider())}
		if i > 0 {
			opts = append(opts, actortest.WithStore(members[0].Store))
		}
		m := actortest.New(t, opts...)
		t.Cleanup(func() { _ = e.Close() }) // after m stops: cleanups run last first
		members = append(members, m)
	}
	actortest.Eventually(t, 10*time.Second, func() error {
		for i, m := range members {
			if got := m.Node.Cluster.MemberList.Members().Len(); got != 2 {
				return fmt.Errorf("member %d sees %d members, want 2", i, got)
			}
		}
		return nil
	})
	numbers := []string{"+79990000001", "+79990000002", "+79990000003", "+79990000004", "+79990000005", "+79990000006"}
	for i, num := range numbers {
		for j, m := range members {
			if _, err := m.Callers.Admit(context.Background(), num, caller.Admit{CallID: fmt.Sprintf("r%d-%d", i, j), Kind: phone.KindE164}); err != nil {
				t.Fatal(err)
			}
		}
	}
	k0 := members[0].Node.Cluster.GetClusterKind(caller.KindName).Count()
	k1 := members[1].Node.Cluster.GetClusterKind(caller.KindName).Count()
	if int(k0+k1) != len(numbers) {
		t.Fatalf("activations: %d and %d, want %d in all (one per number)", k0, k1, len(numbers))
	}
	for _, num := range numbers {
		p0, p1 := members[0].Node.Cluster.Get(num, caller.KindName), members[1].Node.Cluster.Get(num, caller.KindName)
		if p0 == nil || p1 == nil || p0.Address != p1.Address || p0.Id != p1.Id {
			t.Fatalf("%s resolves to %v on one member and %v on the other", num, p0, p1)
		}
		s, err := members[1].Callers.Status(context.Background(), num)
		if err != nil {
			t.Fatal(err)
		}
		if s.Status.Day != 2 {
			t.Fatalf("%s: %d calls today, want 2 (both members' calls in one grain)", num, s.Status.Day)
		}
	}
	t.Logf("activations per member: %d, %d", k0, k1)
}

// TestEtcdHelperNode is not a test: run by TestEtcdKilledMemberLeaves in
// a process of its own, it starts a node on the etcd that NODE_ETCD_CHILD
// names and waits to be killed.
func TestEtcdHelperNode(t *testing.T) {
	eps := os.Getenv("NODE_ETCD_CHILD")
	if eps == "" {
		t.Skip("helper process of TestEtcdKilledMemberLeaves")
	}
	e, err := node.NewEtcd(node.EtcdConfig{Endpoints: strings.Split(eps, ",")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Start(context.Background(), node.Config{ClusterName: "etcd-kill", Listen: "127.0.0.1:0", Provider: e.Provider()}); err != nil {
		t.Fatal(err)
	}
	fmt.Println("helper node started")
	time.Sleep(time.Minute)
}

// A member that dies without leaving (SIGKILL) is dropped from the
// others' member lists when its lease expires: the time a dead node's
// numbers wait before they re-activate on the survivors.
func TestEtcdKilledMemberLeaves(t *testing.T) {
	etcd := etcdtest.New(t)
	n, _ := startEtcdNodeNamed(t, etcd.Endpoints(), "etcd-kill")
	child := exec.Command(os.Args[0], "-test.run=^TestEtcdHelperNode$", "-test.count=1")
	child.Env = append(os.Environ(), "NODE_ETCD_CHILD="+strings.Join(etcd.Endpoints(), ","))
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	actortest.Eventually(t, 20*time.Second, func() error {
		if got := n.Cluster.MemberList.Members().Len(); got != 2 {
			return fmt.Errorf("%d members, want 2", got)
		}
		return nil
	})
	killed := time.Now()
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	actortest.Eventually(t, node.EtcdLeaseTTL+10*time.Second, func() error {
		if got := n.Cluster.MemberList.Members().Len(); got != 1 {
			return fmt.Errorf("%d members %v after the kill, want 1", got, time.Since(killed))
		}
		return nil
	})
	gone := time.Since(killed)
	t.Logf("SIGKILL to removal from the survivor's member list: %v (lease TTL %v)", gone.Round(10*time.Millisecond), node.EtcdLeaseTTL)
	if gone > node.EtcdLeaseTTL+2*time.Second {
		t.Errorf("removal took %v, more than the lease TTL and 2 s", gone)
	}
}

// On a three-member etcd, one member down changes nothing; two down lose
// the quorum: the node says it is not ready, keeps its member list and its
// registration, and is ready again once the quorum is back.
func TestEtcdClusterLosesOneMemberThenQuorum(t *testing.T) {
	etcd := etcdtest.NewCluster(t, 3)
	n, w := startEtcdNode(t, etcd.Endpoints())
	actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })

	etcd.Members[0].Kill()
	// A leader election may make a probe fail for a moment: poll.
	actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })

	etcd.Members[1].Kill()
	actortest.Eventually(t, 10*time.Second, func() error {
		if w.Ready() == nil {
			return errors.New("ready without an etcd quorum")
		}
		return nil
	})
	t.Logf("quorum lost: %v", w.Ready())
	time.Sleep(node.EtcdLeaseTTL + time.Second)
	if err := w.Err(); err != nil {
		t.Fatalf("membership declared lost while etcd had no quorum: %v", err)
	}
	if got := n.Cluster.MemberList.Members().Len(); got != 1 {
		t.Fatalf("member list changed to %d members without a quorum", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range etcd.Members[:2] {
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	actortest.Eventually(t, 15*time.Second, func() error { return w.Ready() })
	time.Sleep(node.EtcdLeaseTTL + time.Second)
	if err := w.Err(); err != nil {
		t.Fatalf("membership lost once the quorum came back: %v", err)
	}
}

// A member's registration is put again soon after it starts, with the same
// value, lease and create revision: protoactor's provider opens its watch
// some time after reading the members, and a member registering in
// between is missed by it; this later event adds the member to its view.
func TestEtcdRegistrationIsPutAgainForLateWatchers(t *testing.T) {
	etcd := etcdtest.New(t)
	c := etcdClient(t, etcd.Endpoints())
	n, w := startEtcdNode(t, etcd.Endpoints())
	actortest.Eventually(t, 10*time.Second, func() error { return w.Ready() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key := node.MemberKey(n)
	before, err := c.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Kvs) != 1 {
		t.Fatalf("%s: %d keys, want the registration", key, len(before.Kvs))
	}
	reg := before.Kvs[0]
	events := c.Watch(ctx, key, clientv3.WithRev(before.Header.Revision+1))
	select {
	case resp := <-events:
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		ev := resp.Events[0]
		if ev.Type != clientv3.EventTypePut || string(ev.Kv.Value) != string(reg.Value) || ev.Kv.Lease != reg.Lease || ev.Kv.CreateRevision != reg.CreateRevision {
			t.Fatalf("event %v %q lease %d created %d; want a put of %q, lease %d, created %d",
				ev.Type, ev.Kv.Value, ev.Kv.Lease, ev.Kv.CreateRevision, reg.Value, reg.Lease, reg.CreateRevision)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the registration was not put again within 10 s")
	}
	select {
	case <-w.Lost():
		t.Fatalf("the put made the node lose its membership: %v", w.Err())
	case <-time.After(500 * time.Millisecond):
	}
}
