package rules

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/callguard/callguard/events/postgres"
	"github.com/callguard/callguard/events/postgres/pgtest"
	"github.com/callguard/callguard/events/schema"
)

// TestTwoNodesOnPostgreSQL: two nodes, each with its own connection to
// one shared PostgreSQL log and its own table, as a cluster runs. A rule
// written through one node is in force on the other within the log
// subscription's latency, which the test measures (-v prints it).
func TestTwoNodesOnPostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL server")
	}
	srv := pgtest.Start(t)
	url := srv.NewDatabaseT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	var nodes []*Live
	var writers []*Writer
	for range 2 {
		octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := postgres.Open(octx, url)
		ocancel()
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		l := NewLive(st, log)
		if err := l.Start(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, l)
		writers = append(writers, &Writer{Store: st, Live: l, Clock: time.Now, Node: "n"})
	}
	var lat []time.Duration
	for i := range 10 {
		from, to := writers[i%2], nodes[(i+1)%2]
		rng := "+7999" + string(rune('0'+i))
		start := time.Now()
		a, err := from.Add(ctx, Command{List: schema.RangeBlock, Range: rng, Level: 7, CommandID: rng, By: "alice", Why: "wave"})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := to.WaitFor(wctx, a.Revision); err != nil {
			t.Fatalf("rule %d did not reach the other node: %v", i, err)
		}
		wcancel()
		lat = append(lat, time.Since(start))
		if got := to.Lookup(rng+"1234567", time.Now()); len(got) != 1 || got[0].Range != rng {
			t.Fatalf("the other node's table: %+v", got)
		}
	}
	slices.Sort(lat)
	t.Logf("command accepted on one node to in force on the other (10 rules, PostgreSQL): median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
}
