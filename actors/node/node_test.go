package node_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/node"
)

func TestStartRefusesBadConfig(t *testing.T) {
	good := node.Config{ClusterName: "node-test", Listen: "127.0.0.1:0", Provider: node.SingleMemberProvider()}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for want, mutate := range map[string]func(*node.Config){
		"membership provider": func(c *node.Config) { c.Provider = nil },
		"cluster name":        func(c *node.Config) { c.ClusterName = "" },
		"listen address":      func(c *node.Config) { c.Listen = "7000" },
		"listen port":         func(c *node.Config) { c.Listen = "127.0.0.1:http" },
		"request timeout":     func(c *node.Config) { c.RequestTimeout = -time.Second },
	} {
		c := good
		mutate(&c)
		n, err := node.Start(context.Background(), c)
		if n != nil {
			n.Stop(false)
		}
		if !errors.Is(err, node.ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an ErrConfig about it", want, err)
		}
	}
}

func TestStartAlone(t *testing.T) {
	n, err := node.Start(context.Background(), node.Config{
		ClusterName: "node-test", Listen: "127.0.0.1:0", Provider: node.SingleMemberProvider(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(false)
	// The member list is published asynchronously: poll for it.
	deadline := time.Now().Add(5 * time.Second)
	for n.Cluster.MemberList.Members().Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("members %d, want this node alone", n.Cluster.MemberList.Members().Len())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
