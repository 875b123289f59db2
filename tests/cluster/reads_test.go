package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/reports"
)

// reads is what one node answers for the lists and reports an operator
// reads, with the parts that are the node's own (the moment expiries are
// judged at) left out.
type reads struct {
	Blacklist   []lists.BlacklistEntry
	Blocked     int
	Whitelisted int
	Rows        []reports.Row
	Total       reports.Row
}

func (n *Node) reads(ctx context.Context) (reads, error) {
	cl := n.Client()
	black, err := cl.ListBlacklist(ctx, lists.Query{Limit: lists.MaxLimit})
	if err != nil {
		return reads{}, fmt.Errorf("blacklist on %s: %w", n.Name(), err)
	}
	white, err := cl.ListWhitelist(ctx, lists.Query{Limit: 1})
	if err != nil {
		return reads{}, fmt.Errorf("whitelist on %s: %w", n.Name(), err)
	}
	// Yesterday to tomorrow: today in any time zone.
	now := time.Now().UTC()
	daily, err := cl.Daily(ctx, reports.Query{From: now.AddDate(0, 0, -1).Format(time.DateOnly), To: now.AddDate(0, 0, 1).Format(time.DateOnly)})
	if err != nil {
		return reads{}, fmt.Errorf("daily report on %s: %w", n.Name(), err)
	}
	return reads{Blacklist: black.Items, Blocked: black.Total, Whitelisted: white.Total, Rows: daily.Rows, Total: daily.Total}, nil
}

// checkSameReads asks every node for the blacklist, the whitelist's size
// and today's report once the load has stopped: each node folds the shared
// log into read models of its own, and all of them must answer the same.
// A node may lag for a moment, so the reads are compared until they agree
// or 30 s have passed.
func (c *Cluster) checkSameReads(ctx context.Context, t *testing.T) {
	t.Helper()
	var last []string
	err := waitFor(ctx, 30*time.Second, func() error {
		last = last[:0]
		for _, n := range c.Nodes {
			r, err := n.reads(ctx)
			if err != nil {
				return err
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			last = append(last, string(b))
		}
		for i := 1; i < len(last); i++ {
			if last[i] != last[0] {
				return fmt.Errorf("%s and %s answer differently", c.Nodes[0].Name(), c.Nodes[i].Name())
			}
		}
		return nil
	})
	if err != nil {
		for i, r := range last {
			t.Logf("%s reads %.2000s", c.Nodes[i].Name(), r)
		}
		t.Fatalf("the nodes' read models: %v", err)
	}
	var r reads
	if err := json.Unmarshal([]byte(last[0]), &r); err != nil {
		t.Fatal(err)
	}
	if r.Blocked == 0 || r.Total.CallsIn == 0 {
		t.Fatalf("reads that agree but show nothing (blocked %d, calls in %d): the check proves nothing", r.Blocked, r.Total.CallsIn)
	}
	t.Logf("FIGURES reads: %d nodes answer the same blacklist (%d), whitelist (%d) and today's report (%d calls in)", len(c.Nodes), r.Blocked, r.Whitelisted, r.Total.CallsIn)
}
