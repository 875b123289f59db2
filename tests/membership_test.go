package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/callguard/callguard/actors/node"
	"github.com/callguard/callguard/actors/node/etcdtest"
)

// etcdGuard starts `callguard serve` registered in the etcd at eps, with
// the binary start gives (startGuard, or startClusterGuard when it will
// not be alone).
func etcdGuard(t *testing.T, start func(*testing.T, ...string) *guardProcess, eps []string, cluster string) *guardProcess {
	t.Helper()
	return start(t, "GUARD_DATA_DIR="+t.TempDir(), "GUARD_CLUSTER_PROVIDER=etcd",
		"GUARD_ETCD_ENDPOINTS="+strings.Join(eps, ","), "GUARD_CLUSTER_NAME="+cluster)
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

// memberKeys lists the members registered for cluster.
func memberKeys(ctx context.Context, c *clientv3.Client, cluster string) (map[string]int64, error) {
	r, err := c.Get(ctx, node.EtcdBaseKey+"/"+cluster+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	keys := map[string]int64{}
	for _, kv := range r.Kvs {
		keys[string(kv.Key)] = kv.Lease
	}
	return keys, nil
}

var metricsAddr = regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`)

// readyz asks the guard's /readyz: its status code and membership part.
func readyz(g *guardProcess) (int, string, error) {
	m := metricsAddr.FindStringSubmatch(g.output())
	if m == nil {
		return 0, "", fmt.Errorf("no metrics address in the log")
	}
	resp, err := http.Get("http://" + m[1] + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r struct {
		Membership *struct {
			Ready bool   `json:"ready"`
			Error string `json:"error"`
		} `json:"membership"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, "", err
	}
	if r.Membership == nil {
		return resp.StatusCode, "", fmt.Errorf("/readyz has no membership part")
	}
	return resp.StatusCode, r.Membership.Error, nil
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// With etcd away the guard keeps serving and says it is not ready; once
// its registration is revoked while etcd answers, it exits non-zero so
// that a supervisor restarts it under a new identity.
func TestServeOnEtcdReportsOutageAndExitsOnLostLease(t *testing.T) {
	etcd := etcdtest.New(t)
	g := etcdGuard(t, startGuard, etcd.Endpoints(), "lease")
	if !strings.Contains(g.output(), "cluster membership: etcd") {
		t.Fatalf("the guard did not say which membership it uses:\n%s", g.output())
	}
	ready := func() error {
		code, why, err := readyz(g)
		if err != nil {
			return err
		}
		if code != http.StatusOK || why != "" {
			return fmt.Errorf("/readyz %d, membership %q", code, why)
		}
		return nil
	}
	waitUntil(t, 10*time.Second, "ready on etcd", ready)

	etcd.Stop()
	waitUntil(t, 10*time.Second, "not ready with etcd stopped", func() error {
		code, why, err := readyz(g)
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || why == "" {
			return fmt.Errorf("/readyz %d, membership %q", code, why)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := etcd.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "ready once etcd is back", ready)

	c := etcdClient(t, etcd.Endpoints())
	keys, err := memberKeys(ctx, c, "lease")
	if err != nil || len(keys) != 1 {
		t.Fatalf("registrations %v (%v), want the guard's alone", keys, err)
	}
	for _, lease := range keys {
		if _, err := c.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-g.done:
		g.done <- err
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Fatalf("exit %v after the lease was revoked, want non-zero\n%s", err, g.output())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15 s after its lease was revoked\n%s", g.output())
	}
	if out := g.output(); !strings.Contains(out, "cluster membership lost") || !strings.Contains(out, "new identity") {
		t.Fatalf("the guard did not say why it stopped:\n%s", out)
	}
}

// A guard killed without leaving is dropped from the member list when its
// lease expires; a guard stopped cleanly deregisters at once.
func TestKilledGuardLeavesWhenItsLeaseExpires(t *testing.T) {
	etcd := etcdtest.New(t)
	c := etcdClient(t, etcd.Endpoints())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := etcdGuard(t, startClusterGuard, etcd.Endpoints(), "kill")
	before, err := memberKeys(ctx, c, "kill")
	if err != nil {
		t.Fatal(err)
	}
	b := etcdGuard(t, startClusterGuard, etcd.Endpoints(), "kill")
	var bKey string
	waitUntil(t, 10*time.Second, "both registered", func() error {
		keys, err := memberKeys(ctx, c, "kill")
		if err != nil {
			return err
		}
		for k := range keys {
			if _, ok := before[k]; !ok {
				bKey = k
			}
		}
		if len(keys) != 2 || bKey == "" {
			return fmt.Errorf("registrations %v", keys)
		}
		return nil
	})
	killed := time.Now()
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Received (and put back) so that the cleanup's look at the exited
	// process happens after Wait set it.
	err = <-b.done
	b.done <- err
	waitUntil(t, node.EtcdLeaseTTL+5*time.Second, "the killed guard's key gone", func() error {
		r, err := c.Get(ctx, bKey)
		if err != nil {
			return err
		}
		if len(r.Kvs) > 0 {
			return fmt.Errorf("%s still there", bKey)
		}
		return nil
	})
	gone := time.Since(killed)
	t.Logf("SIGKILL to removal from etcd (what every member's watch sees): %v (lease TTL %v)", gone.Round(10*time.Millisecond), node.EtcdLeaseTTL)
	if gone < node.EtcdLeaseTTL-time.Second {
		t.Fatalf("key gone %v after the kill, before its lease could expire: something deregistered a killed process", gone)
	}
	stopped := time.Now()
	a.stop(t)
	keys, err := memberKeys(ctx, c, "kill")
	if err != nil || len(keys) != 0 {
		t.Fatalf("after a clean stop: registrations %v (%v), want none", keys, err)
	}
	t.Logf("clean stop to deregistered: %v", time.Since(stopped).Round(time.Millisecond))
}
