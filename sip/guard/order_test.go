package guard

import (
	"slices"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The provisional responses are handed up once each, in order of arrival,
// however sipgo's transaction hands them up: in order, after the final
// response only (it dropped them), swapped, or before observe saw them.
func TestProvisionalsInOrderOfArrival(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	o := newProvisionals()
	invite := func() (*arrivals, func(int) *sip.Response) {
		req := sip.NewRequest(sip.INVITE, sip.Uri{User: "88005553535", Host: "127.0.0.1", Port: 5070})
		req.SetTransport("UDP")
		a := &arrivals{}
		if err := o.watch(a)(cli, req); err != nil {
			t.Fatal(err)
		}
		if a.branch == "" || o.byBranch[a.branch] != a {
			t.Fatalf("watch did not register the INVITE's branch: %q", a.branch)
		}
		return a, func(code int) *sip.Response { return sip.NewResponseFromRequest(req, code, "", nil) }
	}
	codes := func(rs []*sip.Response) []int {
		var out []int
		for _, r := range rs {
			out = append(out, r.StatusCode)
		}
		return out
	}
	type step struct {
		observe *sip.Response // arrives (read from the socket)
		handUp  *sip.Response // handed up by the transaction
		want    []int
	}
	for name, steps := range map[string]func(res func(int) *sip.Response) []step{
		"in order": func(res func(int) *sip.Response) []step {
			r100, r180, r200 := res(100), res(180), res(200)
			return []step{{observe: r100}, {handUp: r100}, {observe: r180}, {handUp: r180, want: []int{180}}, {observe: r200}, {handUp: r200}}
		},
		"180 dropped by the transaction": func(res func(int) *sip.Response) []step {
			r180, r200 := res(180), res(200)
			return []step{{observe: r180}, {observe: r200}, {handUp: r200, want: []int{180}}}
		},
		"18x swapped": func(res func(int) *sip.Response) []step {
			r180, r183, r486 := res(180), res(183), res(486)
			return []step{{observe: r180}, {observe: r183}, {handUp: r183, want: []int{180, 183}}, {handUp: r180}, {observe: r486}, {handUp: r486}}
		},
		"handed up before observed": func(res func(int) *sip.Response) []step {
			r180, r183, r200 := res(180), res(183), res(200)
			return []step{{handUp: r180, want: []int{180}}, {observe: r180}, {observe: r183}, {handUp: r200, want: []int{183}}, {observe: r200}, {handUp: r183}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			a, res := invite()
			defer o.forget(a)
			for i, s := range steps(res) {
				if s.observe != nil {
					o.observe(s.observe)
					continue
				}
				if got := codes(a.handUp(s.handUp)); !slices.Equal(got, s.want) {
					t.Fatalf("step %d, %d handed up: got %v, want %v", i, s.handUp.StatusCode, got, s.want)
				}
			}
		})
	}

	// Nothing else is kept: responses to INVITEs not watched, or to
	// other requests, and requests.
	a, res := invite()
	o.forget(a)
	if len(o.byBranch) != 0 {
		t.Fatalf("forget left %v", o.byBranch)
	}
	o.observe(res(180))
	b, res := invite()
	defer o.forget(b)
	bye := res(180)
	bye.CSeq().MethodName = sip.BYE
	o.observe(bye)
	o.observe(sip.NewRequest(sip.INFO, sip.Uri{Host: "127.0.0.1"}))
	if len(a.queue) != 0 || len(b.queue) != 0 {
		t.Errorf("kept: %d and %d responses", len(a.queue), len(b.queue))
	}
}
