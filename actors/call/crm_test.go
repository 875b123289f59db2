package call_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/actortest"
	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/crm"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// fakeCRM answers every lookup with ans, and records the numbers asked.
type fakeCRM struct {
	ans   crm.Answer
	asked chan string
}

func (f *fakeCRM) Lookup(_ context.Context, number string) crm.Answer {
	f.asked <- number
	return f.ans
}

// showEffects are effects that show the customer to the PBX.
type showEffects struct{ *effects }

func (f showEffects) ShowCustomer(c crm.Customer) {
	f.add(fmt.Sprintf("customer %q %q vip=%v", c.Name, c.Segment, c.VIP))
}

func startCRM(t *testing.T, c call.CRM, prepare func(string)) *harness {
	t.Helper()
	h := &harness{t: t, number: fmt.Sprintf("+7999%07d", 2000000+seq.Add(1)), fx: newEffects()}
	h.id = "call-test-" + h.number[1:]
	if prepare != nil {
		prepare(h.number)
	}
	sp, err := call.NewSpawner(shared.node.System, call.Deps{Callers: shared.callers, CRM: c, Store: shared.store, Rand: actortest.FixedRand("47"), Node: "test", Logger: quiet()}, config())
	if err != nil {
		t.Fatal(err)
	}
	h.sp = sp
	h.call, err = sp.Start(call.Setup{
		ID: h.id, SIPCallID: "abc@carrier", Caller: phone.Number{Key: h.number, Kind: phone.KindE164},
		IdentityFrom: "from", Callee: "+78005553535", Source: "127.0.0.1:5060", Transport: "UDP", Received: time.Now(),
	}, showEffects{h.fx})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// The call asks the CRM before the grain decides; a VIP whose number an
// admin blocked passes by rule vip, the customer is shown to the PBX
// before the pass, and the caller's CallReceived records the answer
// without the name.
func TestVIPFromTheCRMPasses(t *testing.T) {
	c := &fakeCRM{ans: crm.Answer{Status: schema.CRMHit, Customer: crm.Customer{VIP: true, Name: "Ivan Petrov", Segment: "private"}}, asked: make(chan string, 1)}
	var h *harness
	h = startCRM(t, c, func(n string) { h.block(9)(n) })
	h.fx.expect(t, `customer "Ivan Petrov" "private" vip=true`)
	h.fx.expect(t, "pass")
	if got := <-c.asked; got != h.number {
		t.Errorf("CRM asked about %q, want %q", got, h.number)
	}
	h.send(call.Ended{At: time.Now(), By: schema.PartyCaller, Cause: schema.EndCallerCancelled})
	h.stream()
	rec := h.received()
	want := schema.CRMAnswer{Status: schema.CRMHit, VIP: true, Segment: "private"}
	if rec.Verdict != schema.Pass || rec.Rule != schema.RuleVIP || rec.CRM == nil || *rec.CRM != want {
		t.Fatalf("CallReceived %+v (crm %+v), want a pass by rule vip recording %+v", rec, rec.CRM, want)
	}
}

// A CRM that failed is recorded as such, and the call is decided as
// without it: the admin's block rejects.
func TestCRMFailureDecidesWithoutIt(t *testing.T) {
	c := &fakeCRM{ans: crm.Answer{Status: schema.CRMTimeout}, asked: make(chan string, 1)}
	var h *harness
	h = startCRM(t, c, func(n string) { h.block(9)(n) })
	select {
	case got := <-h.fx.ch:
		if got[:6] != "reject" {
			t.Fatalf("actor ordered %q, want a reject", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no order")
	}
	h.send(call.Ended{At: time.Now(), By: schema.PartyGuard, Cause: schema.EndRejected})
	rec := h.received()
	if rec.Rule != schema.RuleManual || rec.CRM == nil || rec.CRM.Status != schema.CRMTimeout {
		t.Fatalf("CallReceived %+v (crm %+v), want the manual block and crm timeout", rec, rec.CRM)
	}
}
