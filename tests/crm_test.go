package tests

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// The bank's CRM as a real HTTP server next to the binary: a VIP whose
// number an admin blocked passes (a VIP is the CRM's whitelist), and the
// PBX's INVITE names the customer; a CRM that sleeps past the budget, one
// that answers 500 and one that answers malformed JSON neither delay the
// call past the budget nor change its verdict; the audit explains the VIP
// pass and the CRM's failures, and stores no name; the lookups are
// counted.
func TestCRMLookupThroughTheBinary(t *testing.T) {
	const (
		vip       = "+79991110001"
		slow      = "+79991110002"
		broken    = "+79991110003"
		malformed = "+79991110004"
		budget    = 150 * time.Millisecond
		// margin is generous: the machine running the tests is loaded
		// (and -race), and the slow CRM would take 30 s.
		margin = 2 * time.Second
	)
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("key") != "s3cret" || r.Header.Get("Authorization") != "Bearer bearer-token" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch r.URL.Query().Get("number") {
		case vip:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"vip": true, "name": "Ivan \"Vanya\"\r\nPetrov", "segment": "private"}`)
		case slow:
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		case broken:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"vip": true}`)
		case malformed:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"vip": tru`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer crm.Close()

	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en",
		"GUARD_CRM_URL="+crm.URL+"/lookup?key=s3cret", "GUARD_CRM_TOKEN=bearer-token", "GUARD_CRM_TIMEOUT="+budget.String(),
		"GUARD_CRM_BREAK_AFTER=4", "GUARD_CRM_BREAK_FOR=1h")
	defer g.stop(t)
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	cli := func(args ...string) string {
		t.Helper()
		out, stderr, code := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("callguard %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		return out
	}
	for _, n := range []string{vip, broken, malformed} {
		cli("block", n, "--level", "9", "--reason", "fraud suspected")
	}

	// The VIP passes despite the block; the PBX learns who calls.
	if got := callOnce(t, trunk, target, vip, nil); got != "pass" {
		t.Fatalf("blocked VIP: %q, want pass", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls, err := pbx.WaitCalls(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := calls[0].Invite.GetHeader("X-Callguard-Customer")
	if h == nil || h.Value() != `name="Ivan \"Vanya\" Petrov"; segment="private"; vip=1` {
		t.Fatalf("PBX INVITE X-Callguard-Customer: %v", h)
	}
	out := cli("audit", vip)
	if !strings.Contains(out, "PASS (vip: passed as VIP client (CRM), segment private)") {
		t.Fatalf("the audit does not explain the VIP pass:\n%s", out)
	}
	if strings.Contains(out, "Ivan") {
		t.Errorf("the audit shows the customer's name, which must not be stored:\n%s", out)
	}

	// A CRM past its budget: the call is decided without it, in time.
	start := time.Now()
	if got := callOnce(t, trunk, target, slow, nil); got != "pass" {
		t.Fatalf("caller while the CRM is slow: %q, want pass", got)
	}
	calls, err = pbx.WaitCalls(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if took := calls[1].At.Sub(start); took > budget+margin {
		t.Fatalf("the PBX got the INVITE %v after the call began; CRM budget %v", took, budget)
	}
	if h := calls[1].Invite.GetHeader("X-Callguard-Customer"); h != nil {
		t.Errorf("customer header without a CRM answer: %q", h.Value())
	}
	if out := cli("audit", slow); !strings.Contains(out, "CRM timeout, decided without it") {
		t.Fatalf("the audit does not say the CRM timed out:\n%s", out)
	}

	// 500 (with a VIP body) and malformed JSON: no VIP, the block stands.
	for _, n := range []string{broken, malformed} {
		start := time.Now()
		if got := callOnce(t, trunk, target, n, nil); !strings.HasPrefix(got, "reject 603") {
			t.Fatalf("blocked caller while the CRM fails: %q, want the block's 603", got)
		}
		if took := time.Since(start); took > budget+margin {
			t.Errorf("decided in %v", took)
		}
		if out := cli("audit", n); !strings.Contains(out, "REJECT level 9") || !strings.Contains(out, "CRM error, decided without it") {
			t.Fatalf("audit of %s:\n%s", n, out)
		}
	}

	// The fourth failure in a row takes the CRM out: the next call is
	// decided without asking it, and the audit says so.
	if got := callOnce(t, trunk, target, broken, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("fourth failure: %q, want the block's 603", got)
	}
	if !strings.Contains(g.output(), "CRM taken out") {
		t.Errorf("the log does not say the CRM was taken out:\n%s", g.output())
	}
	if got := callOnce(t, trunk, target, malformed, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("while the CRM is out: %q, want the block's 603", got)
	}
	if out := cli("audit", malformed); !strings.Contains(out, "CRM not asked (it had failed lookups in a row), decided without it") {
		t.Fatalf("the audit does not say the CRM was not asked:\n%s", out)
	}

	// Counted, by result; the URL's token never in the log.
	m := regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`).FindStringSubmatch(g.output())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", g.output())
	}
	res, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`callguard_crm_lookups_total{result="hit"} 1`,
		`callguard_crm_lookups_total{result="timeout"} 1`,
		`callguard_crm_lookups_total{result="error"} 3`,
		`callguard_crm_lookups_total{result="skipped"} 1`,
		"callguard_crm_out 1",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(g.output(), "s3cret") || strings.Contains(g.output(), "bearer-token") {
		t.Errorf("a CRM secret is in the log:\n%s", g.output())
	}
}
