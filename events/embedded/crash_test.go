package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/callguard/callguard/events"
)

const crashDirEnv = "EMBEDDED_CRASH_CHILD_DIR"

// crashPayload tags every event with the append it belongs to, so that the
// parent can check all-or-nothing even for appends it never heard about.
type crashPayload struct {
	G int `json:"g"` // goroutine
	N int `json:"n"` // its append number
	K int `json:"k"` // index in the append
	C int `json:"c"` // events in the append
}

// TestCrashChild is the process TestCrashSafety kills. It appends from many
// goroutines and prints one line per acknowledged append:
//
//	ACK stream firstRev lastRev position id,id,...
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process of TestCrashSafety")
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, WithLogger(quietLogger()))
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	ack := func(line string) {
		mu.Lock()
		out.WriteString(line)
		out.Flush() // the parent counts a line as acknowledged once written
		mu.Unlock()
	}
	ack("READY\n")
	const goroutines = 16
	for g := range goroutines {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for n := 0; ; n++ {
				// Several goroutines share each stream, so appends use Any
				// and the store picks the revisions.
				stream := fmt.Sprintf("s%d", rng.IntN(6))
				count := 1
				if rng.IntN(3) == 0 {
					count = 2 + rng.IntN(20)
				}
				evs := make([]events.Proposed, count)
				ids := make([]string, count)
				for k := range evs {
					data, _ := json.Marshal(crashPayload{G: g, N: n, K: k, C: count})
					evs[k] = events.Proposed{ID: uuid.New(), Type: "Crash", Version: 1, Data: data}
					ids[k] = evs[k].ID.String()
				}
				res, err := s.Append(ctx, stream, events.Any, evs...)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(1)
				}
				ack(fmt.Sprintf("ACK %s %d %d %d %s\n", stream, res.FirstRevision, res.LastRevision, res.Position.Commit, strings.Join(ids, ",")))
			}
		}()
	}
	time.Sleep(30 * time.Second) // the parent kills this process long before
	os.Exit(2)
}

type ackLine struct {
	stream      string
	first, last uint64
	pos         uint64
	ids         []string
}

func parseAck(line string) (ackLine, error) {
	f := strings.Fields(line)
	if len(f) != 6 || f[0] != "ACK" {
		return ackLine{}, fmt.Errorf("bad line %q", line)
	}
	a := ackLine{stream: f[1], ids: strings.Split(f[5], ",")}
	var err error
	for i, p := range []*uint64{&a.first, &a.last, &a.pos} {
		if *p, err = strconv.ParseUint(f[2+i], 10, 64); err != nil {
			return a, fmt.Errorf("bad line %q: %w", line, err)
		}
	}
	return a, nil
}

// TestCrashSafety kills a child process that is appending at a random moment
// with SIGKILL, reopens its store and checks that every acknowledged append
// survived as acknowledged, that no append survived in part, and that the
// global log and every stream are gap-free.
func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	iterations := 20
	if testing.Short() {
		iterations = 4
	}
	deadline := time.Now().Add(20 * time.Second)
	totalAcks := 0
	for i := range iterations {
		if i > 0 && time.Now().After(deadline) {
			t.Logf("time budget used after %d iterations", i)
			break
		}
		totalAcks += crashOnce(t, filepath.Join(t.TempDir(), "store"))
		if t.Failed() {
			return
		}
	}
	t.Logf("%d acknowledged appends checked", totalAcks)
}

func crashOnce(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var acks []ackLine
	readDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "READY":
				close(ready)
			case strings.HasPrefix(line, "ACK "):
				a, err := parseAck(line)
				if err != nil {
					readDone <- err
					return
				}
				acks = append(acks, a)
			}
		}
		// The kill cannot cut a line: each is one write(2) of less than
		// PIPE_BUF bytes, which a pipe delivers whole or not at all.
		readDone <- nil
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start: %s", stderr.String())
	}
	time.Sleep(time.Duration(20+rand.IntN(280)) * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), "append:") {
		t.Fatalf("child failed an append: %s", stderr.String())
	}
	verifyCrashStore(t, dir, acks)
	return len(acks)
}

func verifyCrashStore(t *testing.T, dir string, acks []ackLine) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, dir)
	defer s.Close()

	// bbolt's own consistency check of pages and freelist.
	if err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt check: %v", err)
	}

	head, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, events.Start, int(head.Commit)+10)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(all)) != head.Commit {
		t.Fatalf("ReadAll returned %d events, head is %d", len(all), head.Commit)
	}
	byID := make(map[string]events.Event, len(all))
	nextRev := map[string]uint64{}
	type appendKey struct{ g, n int }
	groups := map[appendKey][]events.Event{}
	for i, e := range all {
		if want := uint64(i + 1); e.Position != (events.Position{Commit: want, Prepare: want}) {
			t.Fatalf("event %d has position %v: the log has a gap", i, e.Position)
		}
		if e.Revision != nextRev[e.Stream] {
			t.Fatalf("%s: revision %d follows %d", e.Stream, e.Revision, nextRev[e.Stream])
		}
		nextRev[e.Stream]++
		byID[e.ID.String()] = e
		var p crashPayload
		if err := json.Unmarshal(e.Data, &p); err != nil {
			t.Fatalf("event %v: %v", e.Position, err)
		}
		k := appendKey{p.G, p.N}
		groups[k] = append(groups[k], e)
	}
	// Every append is whole and contiguous, acknowledged or not.
	for k, evs := range groups {
		var first crashPayload
		_ = json.Unmarshal(evs[0].Data, &first)
		if len(evs) != first.C {
			t.Fatalf("append %v survived in part: %d of %d events", k, len(evs), first.C)
		}
		for i, e := range evs {
			var p crashPayload
			_ = json.Unmarshal(e.Data, &p)
			if p.K != i || e.Position.Commit != evs[0].Position.Commit+uint64(i) ||
				e.Stream != evs[0].Stream || e.Revision != evs[0].Revision+uint64(i) {
				t.Fatalf("append %v is not contiguous at event %d: %+v", k, i, e)
			}
		}
	}
	// Every acknowledged append is there as acknowledged.
	for _, a := range acks {
		for i, id := range a.ids {
			e, ok := byID[id]
			if !ok {
				t.Fatalf("acknowledged event %s of %s is lost (head %d, %d acks)", id, a.stream, head.Commit, len(acks))
			}
			rev := a.first + uint64(i)
			if e.Stream != a.stream || e.Revision != rev {
				t.Fatalf("acknowledged event %s: stored at %s@%d, acknowledged at %s@%d", id, e.Stream, e.Revision, a.stream, rev)
			}
		}
		if a.last != a.first+uint64(len(a.ids))-1 {
			t.Fatalf("acknowledged append %+v: revision range does not match its events", a)
		}
		if last := byID[a.ids[len(a.ids)-1]]; last.Position.Commit != a.pos {
			t.Fatalf("acknowledged append at position %d, stored at %v", a.pos, last.Position)
		}
	}
	// The store still accepts appends after recovery, at the next position.
	res, err := s.Append(ctx, "after-crash", events.NoStream, ev("A", `{}`))
	if err != nil || res.Position.Commit != head.Commit+1 {
		t.Fatalf("append after recovery = %+v, %v; head was %d", res, err, head.Commit)
	}
}
