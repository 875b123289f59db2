package tests

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
)

// What a new operator trips over in the configuration, through the
// binary: every problem named at once by `callguard config`, a misspelt
// variable warned about with the name meant, and serve refusing a bad
// mode with that one error.
func TestConfigurationIsCheckedWhole(t *testing.T) {
	_, stderr, code := runCLI(t, []string{"GUARD_MODE=enforc", "GUARD_PBX_URI=notauri"}, "config")
	if code != 1 || !strings.Contains(stderr, "2 problems") || !strings.Contains(stderr, `GUARD_MODE is "enforc", want enforce or observe`) ||
		!strings.Contains(stderr, `GUARD_PBX_URI "notauri" is not a sip: URI`) {
		t.Errorf("config with a bad mode and PBX URI: exit %d, stderr:\n%s", code, stderr)
	}

	out, stderr, code := runCLI(t, []string{"GUARD_LIMT_HOUR=3", "GUARD_NONSENSE=1"}, "config")
	if code != 0 || !strings.Contains(stderr, "GUARD_LIMT_HOUR is not a callguard setting and is ignored; did you mean GUARD_LIMIT_HOUR?") ||
		!strings.Contains(stderr, "GUARD_NONSENSE is not a callguard setting") || strings.Contains(stderr, "GUARD_NONSENSE is not a callguard setting and is ignored; did you mean") {
		t.Errorf("config with unknown variables: exit %d, stderr:\n%s", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^GUARD_LIMIT_HOUR\s+5$`).MatchString(out) {
		t.Errorf("the misspelt variable changed the limit:\n%s", out)
	}
	// Other commands warn too.
	if _, stderr, _ := runCLI(t, []string{"GUARD_LIMT_HOUR=3", "GUARD_DATA_DIR=" + t.TempDir()}, "blacklist"); !strings.Contains(stderr, "did you mean GUARD_LIMIT_HOUR?") {
		t.Errorf("blacklist with a misspelt variable does not warn:\n%s", stderr)
	}

	_, stderr, code = runCLI(t, []string{"GUARD_MODE=enforc", "GUARD_DATA_DIR=" + t.TempDir()}, "serve")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "GUARD_MODE") || strings.Contains(stderr, "GUARD_GRACE") || strings.Contains(stderr, "GUARD_CODE_DIGITS") {
		t.Errorf("serve with a bad mode: exit %d, want exit 1 and one line naming GUARD_MODE:\n%s", code, stderr)
	}
}

// adminToken reads the token a loopback guard drew into its data
// directory.
func adminTokenOf(t *testing.T, env []string) string {
	t.Helper()
	for _, kv := range env {
		if dir, ok := strings.CutPrefix(kv, "GUARD_DATA_DIR="); ok {
			b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatal("no GUARD_DATA_DIR")
	return ""
}

// The admin API's input edges, probed over HTTP against the binary as
// the issue found them: duplicate members, text that is not UTF-8, the
// limit rule; and the CLI's refusal in one sentence of its own terms.
func TestAdminInputEdgesThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	g := startGuard(t, "GUARD_DATA_DIR="+dir)
	env := []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
	base, token := "http://"+adminAddr(t, g), adminTokenOf(t, env)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Admin", "probe")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	type problem struct {
		Errors []struct{ Field, Detail string }
	}
	refused := func(what string, status int, body, field, detail string) {
		t.Helper()
		var p problem
		if err := json.Unmarshal([]byte(body), &p); status != 400 || err != nil || len(p.Errors) != 1 || p.Errors[0].Field != field || !strings.Contains(p.Errors[0].Detail, detail) {
			t.Errorf("%s: %d %s; want 400 naming %s (%s)", what, status, body, field, detail)
		}
	}
	st, body := do("PUT", "/v1/blocks/%2B79990001122", `{"level":6,"level":1,"reason":"r"}`)
	refused("duplicate level", st, body, "level", "given twice")
	st, body = do("PUT", "/v1/blocks/%2B79990001122", "{\"level\":6,\"reason\":\"bad \xff text\"}")
	refused("reason not UTF-8", st, body, "reason", "not valid UTF-8")
	for _, l := range []string{"-1", "0", "1001"} {
		st, body = do("GET", "/v1/blacklist?limit="+l, "")
		refused("blacklist limit "+l, st, body, "limit", "want 1 to 1000")
	}
	if st, body = do("GET", "/v1/blacklist?limit=1000", ""); st != 200 {
		t.Errorf("limit=1000: %d %s", st, body)
	}
	// OPTIONS and a wrong method: a 405 with its standard phrase and Allow.
	req, err := http.NewRequest("OPTIONS", base+"/v1/blacklist", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Status != "405 Method Not Allowed" || !strings.Contains(res.Header.Get("Allow"), "GET") {
		t.Errorf("OPTIONS /v1/blacklist: %q, Allow %q", res.Status, res.Header.Get("Allow"))
	}
	out, _, code := runCLI(t, env, "blacklist")
	if code != 0 || strings.Contains(out, "+79990001122") {
		t.Errorf("a refused command was written: exit %d\n%s", code, out)
	}

	// The CLI says what is wrong once, in its own terms.
	_, stderr, code := runCLI(t, env, "block", "+79990001122", "--level", "10", "--reason", "x")
	if code != 1 || strings.Count(stderr, "level is 10, want 1 to 9") != 1 || strings.Contains(stderr, "400") ||
		strings.Contains(stderr, "DELETE") || strings.Contains(stderr, "invalid-request") || len(strings.Split(strings.TrimSpace(stderr), "\n")) > 2 {
		t.Errorf("block --level 10: exit %d, stderr:\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, env, "blacklist", "--limit", "-1")
	if code == 0 || !strings.Contains(stderr, "limit is -1, want 1 to 1000") {
		t.Errorf("blacklist --limit -1: exit %d, stderr:\n%s", code, stderr)
	}
}

// Blocking the withheld-caller key is a deliberate policy lever: the
// literal "anonymous" blocks every caller without a number until lifted,
// and any other word is refused. Over real SIP: a withheld caller is
// challenged by GUARD_ANONYMOUS, rejected while the key is blocked, and
// challenged again once it is lifted. The guard's OPTIONS and 405
// answers carry their standard reason phrases.
func TestAnonymousKeyBlockOverSIP(t *testing.T) {
	_, target, env := guardSIP(t, "sip:pbx@127.0.0.1:9")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()
	withheld := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := trunk.Call(ctx, siptest.CallOptions{Target: target, Caller: "anonymous", NoPAI: true, FromUser: "anonymous", Callee: "88005553535", Quiet: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		final, err := c.WaitFinal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Hangup(ctx) }()
		for _, r := range c.Responses() {
			if r.Status == 183 {
				return "challenge"
			}
		}
		if final.Status >= 300 {
			return "reject"
		}
		return "pass"
	}
	if got := withheld(); got != "challenge" {
		t.Fatalf("withheld caller before the block: %s, want challenge (GUARD_ANONYMOUS)", got)
	}
	if _, stderr, code := runCLI(t, env, "block", "anonymus", "--level", "7", "--reason", "typo"); code != 1 || !strings.Contains(stderr, "not a phone number") {
		t.Fatalf("block of a misspelt key: exit %d, %s", code, stderr)
	}
	if out, stderr, code := runCLI(t, env, "block", "anonymous", "--level", "7", "--reason", "withheld numbers flood us"); code != 0 || !strings.Contains(out, "anonymous: BlockApplied") {
		t.Fatalf("block anonymous: exit %d, %s %s", code, out, stderr)
	}
	if got := withheld(); got != "reject" {
		t.Fatalf("withheld caller while the key is blocked: %s, want reject", got)
	}
	if _, stderr, code := runCLI(t, env, "unblock", "anonymous", "--reason", "flood over"); code != 0 {
		t.Fatalf("unblock anonymous: exit %d, %s", code, stderr)
	}
	if got := withheld(); got != "challenge" {
		t.Fatalf("withheld caller after the block was lifted: %s, want challenge", got)
	}

	// Reason phrases: OPTIONS is answered "200 OK", a method the guard
	// does not handle "405 Method Not Allowed" with Allow.
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	for method, want := range map[string]string{"OPTIONS": "SIP/2.0 200 OK\r\n", "SUBSCRIBE": "SIP/2.0 405 Method Not Allowed\r\n"} {
		msg := method + " sip:88005553535@" + target + " SIP/2.0\r\nVia: SIP/2.0/UDP " + conn.LocalAddr().String() + ";rport;branch=z9hG4bK-" + method +
			"\r\nFrom: <sip:+79990001122@127.0.0.1>;tag=1\r\nTo: <sip:88005553535@127.0.0.1>\r\nCall-ID: " + method + "@phrase\r\nCSeq: 1 " + method +
			"\r\nMax-Forwards: 70\r\nEvent: presence\r\nContent-Length: 0\r\n\r\n"
		if _, err := conn.WriteTo([]byte(msg), raddr); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", method, err)
		}
		if !bytes.HasPrefix(buf[:n], []byte(want)) || !bytes.Contains(buf[:n], []byte("\r\nAllow: ")) {
			t.Errorf("%s answered:\n%s\nwant %q with Allow", method, buf[:n], want)
		}
	}
}

// Numbers, prefixes and times as an operator writes and reads them:
// --prefix 8999123 finds what +7999123 finds; the whitelist CSV's until
// column takes a date, a duration and an RFC 3339 time like --until;
// every time printed for people is in GUARD_TIMEZONE and says so, and
// CSV and JSON carry UTC with its offset whatever the machine's zone.
func TestPrefixesUntilAndTimeZonesThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	// The CLI reads the same GUARD_* settings as the guard it speaks to.
	g := startGuard(t, "GUARD_DATA_DIR="+dir, "GUARD_TIMEZONE=Asia/Yekaterinburg", "TZ=America/New_York")
	// The machine's zone is not the guard's: TZ must not leak into output.
	env := []string{"TZ=America/New_York", "GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g), "GUARD_TIMEZONE=Asia/Yekaterinburg"}

	if out, stderr, code := runCLI(t, env, "block", "+79991230001", "--level", "7", "--reason", "fraud", "--until", "2099-01-31"); code != 0 {
		t.Fatalf("block: exit %d, %s %s", code, out, stderr)
	}
	csvFile := filepath.Join(t.TempDir(), "wl.csv")
	if err := os.WriteFile(csvFile, []byte("number,until,reason\n+79990000001,2099-01-31,vip\n+79990000002,720h,vip\n+79990000003,2099-01-31T12:00:00+03:00,vip\n+79990000004,soon,vip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, env, "whitelist", "import", csvFile)
	if code != 1 || !strings.Contains(out, "4 rows: 3 applied") || !strings.Contains(out, `"soon" is not an expiry`) {
		t.Fatalf("import: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{{"blacklist", "--prefix", "8999123"}, {"blacklist", "--prefix", "+7999123"}, {"callers", "--prefix", "8 999 123"}} {
		out, stderr, code := runCLI(t, env, args...)
		if code != 0 || !strings.Contains(out, "+79991230001") {
			t.Errorf("%v: exit %d, does not find +79991230001:\n%s%s", args, code, out, stderr)
		}
	}

	// People: GUARD_TIMEZONE, named. A date is through that day there.
	out, _, _ = runCLI(t, env, "whitelist", "list")
	if !strings.Contains(out, "+79990000001  ") || !strings.Contains(out, "2099-02-01 00:00:00 +05") {
		t.Errorf("whitelist list: the date's entry does not end at the midnight after it in GUARD_TIMEZONE:\n%s", out)
	}
	if !strings.Contains(out, "2099-01-31 14:00:00 +05") {
		t.Errorf("whitelist list: the RFC 3339 expiry is not shown in GUARD_TIMEZONE:\n%s", out)
	}
	out, _, _ = runCLI(t, env, "blacklist")
	if !strings.Contains(out, "2099-02-01 00:00:00 +05") {
		t.Errorf("blacklist: --until DATE is not through that day in GUARD_TIMEZONE:\n%s", out)
	}
	out, _, _ = runCLI(t, env, "callers")
	if !strings.Contains(out, "until 2099-02-01 00:00 +05") {
		t.Errorf("callers: times not in GUARD_TIMEZONE with their zone:\n%s", out)
	}
	out, _, _ = runCLI(t, env, "audit", "+79991230001")
	if !strings.Contains(out, "times in Asia/Yekaterinburg") || !strings.Contains(out, "until 2099-02-01 00:00:00") {
		t.Errorf("audit: not in GUARD_TIMEZONE:\n%s", out)
	}
	out, _, _ = runCLI(t, env, "report")
	if !strings.Contains(out, "(days in Asia/Yekaterinburg)") || !strings.Contains(out, "Calls per hour of day (Asia/Yekaterinburg)") {
		t.Errorf("report: does not name the zone of its days:\n%s", out)
	}

	// Machines: UTC with the offset, RFC 3339.
	out, _, _ = runCLI(t, env, "blacklist", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][6] != "2099-01-31T19:00:00Z" || !strings.HasSuffix(rows[1][5], "Z") {
		t.Errorf("blacklist CSV: %v %q", err, out)
	}
	out, _, _ = runCLI(t, env, "whitelist", "list", "--format", "json")
	var page struct {
		Items []struct{ Since, Until string }
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Items) != 3 {
		t.Fatalf("whitelist JSON: %v\n%s", err, out)
	}
	for _, it := range page.Items {
		if _, err := time.Parse(time.RFC3339Nano, it.Since); err != nil || !strings.HasSuffix(it.Since, "Z") || !strings.HasSuffix(it.Until, "Z") {
			t.Errorf("whitelist JSON times not UTC RFC 3339: %+v", it)
		}
	}
	out, _, _ = runCLI(t, env, "audit", "--json", "+79991230001")
	if !strings.Contains(out, `"2099-01-31T19:00:00Z"`) || strings.Contains(out, "-05:00") || strings.Contains(out, "+05:00") {
		t.Errorf("audit JSON: times not in UTC:\n%s", out)
	}
}
