package call_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

var benchSeq atomic.Int64

// benchCalls runs b.N calls, one after the other, through the real call
// actor and caller grain on the embedded store, and reports what each
// costs the store: events/op and appends/op, both streams together (the
// caller's and the call's). Rejected calls come from numbers an admin
// blocked at level 7 (blocked before the timer starts); passed calls are
// answered by the PBX and hung up by the caller.
func benchCalls(b *testing.B, reject bool) {
	ctx := context.Background()
	sp, err := call.NewSpawner(shared.node.System, call.Deps{
		Callers: shared.callers, Store: shared.store, Rand: actortest.FixedRand("47"), Node: "bench", Logger: quiet(),
	}, config())
	if err != nil {
		b.Fatal(err)
	}
	numbers := make([]string, b.N)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+7997%07d", benchSeq.Add(1))
		if reject {
			cmd := caller.Command{Verb: caller.VerbBlock, Command: policy.Command{ID: "b", By: "bench", Why: "bench", Level: 7}}
			if _, err := shared.callers.Command(ctx, numbers[i], cmd); err != nil {
				b.Fatal(err)
			}
		}
	}
	st := shared.store
	appends0, events0 := st.appends.Load(), st.events.Load()
	b.ResetTimer()
	for i, n := range numbers {
		fx := newEffects()
		c, err := sp.Start(call.Setup{
			ID: fmt.Sprintf("bench-%s", n[1:]), SIPCallID: n[1:] + "@carrier", Caller: phone.Number{Key: n, Kind: phone.KindE164},
			Presented: "<sip:" + n + "@carrier>", IdentityFrom: "pai", Callee: "+78005553535", Source: "127.0.0.1:5060", Transport: "UDP",
			Received: time.Now(),
		}, fx)
		if err != nil {
			b.Fatal(err)
		}
		order := <-fx.ch
		switch {
		case reject && order == "reject storeDown=false rule=manual level=7":
			c.Tell(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndRejected, Status: 603})
		case !reject && order == "pass":
			now := time.Now()
			c.Tell(call.Answered{At: now, By: schema.PartyPBX})
			c.Tell(call.Ended{At: now.Add(time.Minute), By: schema.PartyCaller, Cause: schema.EndCallerHangup})
		default:
			b.Fatalf("call %d: ordered %q", i, order)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := sp.Wait(wctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(st.events.Load()-events0)/float64(b.N), "events/op")
	b.ReportMetric(float64(st.appends.Load()-appends0)/float64(b.N), "appends/op")
}

// BenchmarkRejectedCall: what a rejected call writes.
func BenchmarkRejectedCall(b *testing.B) { benchCalls(b, true) }

// BenchmarkPassedCall: what a passed call, answered and hung up, writes.
func BenchmarkPassedCall(b *testing.B) { benchCalls(b, false) }
