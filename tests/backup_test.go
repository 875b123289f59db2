package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/cmd/callguard/backup"
	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/events/postgres/pgtest"
	"github.com/callguard/callguard/sip/siptest"
)

// A backup taken from a guard while it serves, with admin commands still
// arriving, restores into a fresh directory on which a new guard stands
// exactly where the log in the archive stood: every number's status, the
// lists and the report as before the backup, the commands that reached
// the log before the copy and none after, and its projections caught up.
func TestBackupOfALiveGuardRestores(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, env := guardSIP(t, pbx.URI(), "GUARD_LIMIT_HOUR=2", "GUARD_LANGUAGE=en")
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunk.Close()

	// The scene: calls passed, challenged and rejected; a whitelist and
	// a block made with the CLI.
	const whitelisted, blocked, regular = "+79990014455", "+79990015566", "+79990016677"
	cli := func(env []string, args ...string) string {
		t.Helper()
		out, stderr, code := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("callguard %s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr)
		}
		return out
	}
	cli(env, "whitelist", "add", whitelisted, "--reason", "VIP")
	cli(env, "block", blocked, "--level", "8", "--reason", "fraud")
	for i, want := range []string{"pass", "pass", "challenge"} {
		if got := callOnce(t, trunk, target, regular, nil); got != want {
			t.Fatalf("regular caller, call %d: %s, want %s", i+1, got, want)
		}
	}
	if got := callOnce(t, trunk, target, whitelisted, nil); got != "pass" {
		t.Fatalf("whitelisted caller: %s", got)
	}
	if got := callOnce(t, trunk, target, blocked, nil); !strings.HasPrefix(got, "reject 603") {
		t.Fatalf("blocked caller: %s", got)
	}

	// What the operator sees before the backup, once the read side has
	// every call (a call's last events land as it ends).
	day := time.Now().In(mustZone(t, "Europe/Moscow"))
	reportArgs := []string{"report", "--format", "json", "--from", day.AddDate(0, 0, -1).Format(time.DateOnly), "--to", day.AddDate(0, 0, 1).Format(time.DateOnly)}
	seen := func(env []string) map[string]string {
		t.Helper()
		v := map[string]string{
			"report":    cli(env, reportArgs...),
			"blacklist": withoutAsOf(t, cli(env, "blacklist", "--format", "json")),
		}
		for _, n := range []string{whitelisted, blocked, regular} {
			v["status "+n] = withoutAsOf(t, cli(env, "status", n, "--json"))
			v["audit "+n] = cli(env, "audit", n, "--json", "--tz", "UTC")
		}
		return v
	}
	var before map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for {
		before = seen(env)
		if strings.Contains(before["report"], `"callsIn": 5`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(before["report"], `"callsIn": 5`) || !strings.Contains(before["report"], `"challenged": 1`) {
		t.Fatalf("the report before the backup does not show the 5 calls:\n%s", before["report"])
	}

	// Commands keep arriving while the backup is taken: whitelist adds,
	// one after the other, straight to the admin API.
	base, token := strings.TrimPrefix(env[1], "GUARD_ADMIN_URL="), adminTokenOf(t, env)
	var (
		mu    sync.Mutex
		added []string
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(added) }
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			n := fmt.Sprintf("+7999002%04d", i)
			body := fmt.Sprintf(`{"number":%q,"reason":"during the backup","by":"test"}`, n)
			req, _ := http.NewRequest("POST", base+"/v1/whitelist", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- err
				return
			}
			res.Body.Close()
			if res.StatusCode != 200 && res.StatusCode != 201 {
				done <- fmt.Errorf("whitelist %s: %s", n, res.Status)
				return
			}
			mu.Lock()
			added = append(added, n)
			mu.Unlock()
		}
	}()
	waitCount := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d commands in 30 s", count())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCount(3)
	inBefore := count()
	archive := filepath.Join(t.TempDir(), "guard.tar.gz")
	out := cli(env, "backup", "--out", archive)
	atReturn := count()
	waitCount(atReturn + 3)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	const after = "+79990017788"
	cli(env, "whitelist", "add", after, "--reason", "after the backup")
	if !strings.Contains(out, "read back whole: from the guard at http://") || !strings.Contains(out, "events.db") {
		t.Fatalf("backup of a running guard: want it taken by the guard:\n%s", out)
	}
	// The running guard's log and lists went on; the backup refuses to
	// overwrite what it wrote.
	if _, stderr, code := runCLI(t, env, "backup", "--out", archive); code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("a second backup onto the same file: exit %d\n%s", code, stderr)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Read(f, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	g.stop(t)

	// A restore refuses the old directory (not empty), then fills a new one.
	old := strings.TrimPrefix(env[0], "GUARD_DATA_DIR=")
	if _, stderr, code := runCLI(t, nil, "restore", "--from", archive, "--data-dir", old); code != 1 || !strings.Contains(stderr, "is not empty") {
		t.Fatalf("restore over the guard's directory: exit %d\n%s", code, stderr)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out = cli(nil, "restore", "--from", archive, "--data-dir", restored)
	if !strings.Contains(out, "restored "+archive+" into "+restored) || !strings.Contains(out, fmt.Sprintf("event log, up to event %v", m.Store.Head)) {
		t.Fatalf("restore: want what it restored:\n%s", out)
	}

	g2, _, env2 := guardSIPOn(t, restored, pbx.URI(), "GUARD_LIMIT_HOUR=2", "GUARD_LANGUAGE=en")
	defer g2.stop(t)
	now := seen(env2)
	for k, v := range before {
		if k == "status "+regular {
			continue // its counters are live; compared below without them
		}
		if now[k] != v {
			t.Errorf("%s differs after the restore:\nbefore:\n%s\nafter:\n%s", k, v, now[k])
		}
	}
	if withoutCounters(t, now["status "+regular]) != withoutCounters(t, before["status "+regular]) {
		t.Errorf("status %s differs after the restore:\n%s\n%s", regular, before["status "+regular], now["status "+regular])
	}

	// The commands that arrived during the backup: a prefix of them, at
	// least those done before it began, none done after it returned, and
	// the one after the backup absent.
	var wl struct {
		Items []struct {
			Number string `json:"number"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(cli(env2, "whitelist", "list", "--format", "json", "--limit", "1000")), &wl); err != nil {
		t.Fatal(err)
	}
	var during []string
	for _, it := range wl.Items {
		switch {
		case it.Number == after:
			t.Errorf("%s, whitelisted after the backup, is in the restored whitelist", after)
		case strings.HasPrefix(it.Number, "+7999002"):
			during = append(during, it.Number)
		}
	}
	slices.Sort(during)
	k := len(during)
	if k < inBefore || k > atReturn || !slices.Equal(during, added[:k]) {
		t.Errorf("restored %d of the commands sent during the backup (%d were done before it began, %d when it returned); want a prefix:\n%v", k, inBefore, atReturn, during)
	}
	t.Logf("the backup holds %d of the commands sent while it ran (%d before it began, %d when it returned); log head %v", k, inBefore, atReturn, m.Store.Head)

	// The projections stand at the log's head: caught up.
	var pv struct {
		Projections []struct {
			Name       string `json:"name"`
			Checkpoint string `json:"checkpoint"`
			Head       string `json:"head"`
			LagEvents  int    `json:"lagEvents"`
		} `json:"projections"`
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		if err := json.Unmarshal([]byte(cli(env2, "projections", "--format", "json")), &pv); err != nil {
			t.Fatal(err)
		}
		caught := len(pv.Projections) == 3
		for _, p := range pv.Projections {
			caught = caught && p.LagEvents == 0 && p.Checkpoint == m.Store.Head.String() && p.Head == m.Store.Head.String()
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restored projections are not caught up at %v: %+v", m.Store.Head, pv.Projections)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A truncated or altered archive is refused before anything is written.
func TestRestoreRefusesADamagedArchive(t *testing.T) {
	data := t.TempDir()
	cwd := t.TempDir()
	env := []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_LISTEN=" + deadAddr(t)}
	// A store no guard holds: the CLI makes the archive itself.
	g := startGuard(t, "GUARD_DATA_DIR="+data)
	if r := runIn(t, cwd, []string{"GUARD_DATA_DIR=" + data, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}, "block", "+79990018899", "--level", "7", "--reason", "fraud"); r.code != 0 {
		t.Fatal(r)
	}
	g.stop(t)
	r := runIn(t, cwd, env, "backup", "--out", "b.tar.gz")
	if r.code != 0 || !strings.Contains(r.stdout, "(no guard holds it)") {
		t.Fatalf("backup of a stopped guard's directory:\n%v", r)
	}
	whole, err := os.ReadFile(filepath.Join(cwd, "b.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// The target exists, empty, as an operator may have made it.
	if err := os.Mkdir(filepath.Join(cwd, "r"), 0o700); err != nil {
		t.Fatal(err)
	}
	altered := bytes.Clone(whole)
	altered[len(altered)/2] ^= 0x40
	for name, b := range map[string][]byte{"cut.tar.gz": whole[:len(whole)*2/3], "altered.tar.gz": altered} {
		if err := os.WriteFile(filepath.Join(cwd, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		r := runIn(t, cwd, nil, "restore", "--from", name, "--data-dir", "r")
		if r.code != 1 || !strings.Contains(r.stderr, "not a valid callguard backup") {
			t.Errorf("restore of %s:\n%v", name, r)
		}
		if entries, err := os.ReadDir(filepath.Join(cwd, "r")); err != nil || len(entries) > 0 {
			t.Errorf("restore of %s wrote into the directory: %v %v", name, entries, err)
		}
		entries, _ := os.ReadDir(cwd)
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".tar.gz") && e.Name() != "r" {
				t.Errorf("restore of %s left %s behind", name, e.Name())
			}
		}
	}
	if r := runIn(t, cwd, nil, "restore", "--from", "b.tar.gz", "--data-dir", "r"); r.code != 0 {
		t.Fatalf("restore of the whole archive:\n%v", r)
	}
	r = runIn(t, cwd, []string{"GUARD_DATA_DIR=" + filepath.Join(cwd, "r"), "GUARD_ADMIN_LISTEN=" + deadAddr(t)}, "blacklist")
	if r.code != 0 || !strings.Contains(r.stdout, "+79990018899") {
		t.Fatalf("blacklist of the restored directory:\n%v", r)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// withoutAsOf drops the moment of asking from an answer.
func withoutAsOf(t *testing.T, s string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	delete(v, "asOf")
	b, _ := json.Marshal(v)
	return string(b)
}

// withoutCounters drops a status's live counters and next verdict, which
// move with the clock.
func withoutCounters(t *testing.T, s string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	delete(v, "counters")
	delete(v, "nextCall")
	b, _ := json.Marshal(v)
	return string(b)
}

// guardSIPOn is guardSIP on a data directory of the caller's.
func guardSIPOn(t *testing.T, dir, pbxURI string, extra ...string) (*guardProcess, string, []string) {
	t.Helper()
	sipAddr := fmt.Sprintf("127.0.0.1:%d", porttest.Port(t))
	g := startGuard(t, append([]string{
		"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_LISTEN=127.0.0.1:0",
		"GUARD_SIP_LISTEN=" + sipAddr, "GUARD_TRUSTED_PEERS=127.0.0.1/32",
		"GUARD_PBX_URI=" + pbxURI,
	}, extra...)...)
	requireSIPListener(t, sipAddr)
	return g, sipAddr, []string{"GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
}

// With PostgreSQL as the store the log is not in the data directory: a
// backup holds the projections and the spool, says that the log is backed
// up with the database's tools, and a guard on the restored directory and
// the same database stands where the first did.
func TestBackupOnPostgreSQLHoldsTheProjectionsOnly(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.URL()
	dir := t.TempDir()
	g := startGuard(t, "GUARD_POSTGRES_URL="+url, "GUARD_DATA_DIR="+dir)
	env := []string{"GUARD_POSTGRES_URL=" + url, "GUARD_DATA_DIR=" + dir, "GUARD_ADMIN_URL=http://" + adminAddr(t, g)}
	if _, stderr, code := runCLI(t, env, "block", "+79990019911", "--level", "7", "--reason", "fraud"); code != 0 {
		t.Fatal(stderr)
	}
	archive := filepath.Join(t.TempDir(), "pg.tar.gz")
	out, stderr, code := runCLI(t, env, "backup", "--out", archive)
	if code != 0 || !strings.Contains(out, "the event log is NOT in this archive: it is in PostgreSQL") || !strings.Contains(out, "pg_dump") ||
		strings.Contains(out, "events.db") || !strings.Contains(out, "projections/lists.db") {
		t.Fatalf("backup on PostgreSQL: exit %d\n%s%s", code, out, stderr)
	}
	g.stop(t)
	restored := filepath.Join(t.TempDir(), "restored")
	out, stderr, code = runCLI(t, nil, "restore", "--from", archive, "--data-dir", restored)
	if code != 0 || !strings.Contains(out, "the event log was not in the archive") {
		t.Fatalf("restore of a PostgreSQL guard's backup: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(restored, "events.db")); err == nil {
		t.Fatal("the restore wrote an events.db")
	}
	g2 := startGuard(t, "GUARD_POSTGRES_URL="+url, "GUARD_DATA_DIR="+restored)
	defer g2.stop(t)
	env2 := []string{"GUARD_DATA_DIR=" + restored, "GUARD_ADMIN_URL=http://" + adminAddr(t, g2)}
	out, stderr, code = runCLI(t, env2, "blacklist")
	if code != 0 || !strings.Contains(out, "+79990019911") {
		t.Fatalf("blacklist on the restored guard: exit %d\n%s%s", code, out, stderr)
	}
}
