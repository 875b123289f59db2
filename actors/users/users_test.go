package users

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
)

type node struct {
	book   *Book
	writer *Writer
}

// cluster opens one store and n nodes on it, each with its book following
// the log and its writer, as guards sharing a store run.
func cluster(t *testing.T, n int) (events.Store, []node) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	st, err := embedded.Open(ctx, t.TempDir(), embedded.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = st.Close() })
	var nodes []node
	for i := range n {
		h := NewHasher(testParams, rand.Reader, 2)
		b := NewBook(st, h, log)
		if err := b.Start(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, node{book: b, writer: &Writer{Store: st, Book: b, Hasher: h, Clock: time.Now, Node: string(rune('a' + i))}})
	}
	return st, nodes
}

func cmd(id string) Command { return Command{ID: id, By: "root", Why: "test"} }

func must(t *testing.T) func(Applied, error) Applied {
	return func(a Applied, err error) Applied {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
}

// waitUntil polls cond with a generous deadline: another node's book
// catches up within its subscription's latency.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAChangeOnOneNodeReachesTheOthers: a user created and then disabled
// through one node's writer signs in, then is out, on the other node.
func TestAChangeOnOneNodeReachesTheOthers(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 2)
	a, b := nodes[0], nodes[1]
	must(t)(a.writer.Create(ctx, "alice", Admin, "alice's long password", cmd("c1")))
	must(t)(a.writer.Create(ctx, "bob", Operator, "bob's long password!", cmd("c2")))
	// The writing node's book has it when the command returns.
	if u, ok := a.book.Account(ctx, "bob"); !ok || u.Role != Operator {
		t.Fatalf("writer's book: %+v %v", u, ok)
	}
	waitUntil(t, "bob on node b", func() bool { _, ok := b.book.Account(ctx, "bob"); return ok })
	if u, err := b.book.Authenticate(ctx, "bob", "bob's long password!"); err != nil || u.Name != "bob" || u.Role != Operator {
		t.Fatalf("bob signs in on b: %+v %v", u, err)
	}
	must(t)(a.writer.Disable(ctx, "bob", cmd("c3")))
	waitUntil(t, "bob disabled on node b", func() bool { _, ok := b.book.Account(ctx, "bob"); return !ok })
	if _, err := b.book.Authenticate(ctx, "bob", "bob's long password!"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled bob signs in on b: %v", err)
	}
	// A fresh node reads the whole stream at start.
	h := NewHasher(testParams, rand.Reader, 1)
	c := NewBook(a.writer.Store, h, nil)
	if _, err := c.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got := c.List()
	if len(got) != 2 || got[0].Name != "alice" || got[1].Name != "bob" || !got[1].Disabled || got[1].CreatedBy != "root" {
		t.Fatalf("a fresh book: %+v", got)
	}
	if r, ok := c.Revision(); !ok || r != 2 {
		t.Fatalf("revision %d %v, want 2", r, ok)
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 1)
	n := nodes[0]
	must(t)(n.writer.Create(ctx, "alice", Admin, "alice's long password", cmd("c1")))
	must(t)(n.writer.Create(ctx, "carol", Viewer, "carol's long password", cmd("c2")))
	must(t)(n.writer.Create(ctx, "dave", Viewer, "dave's long password!", cmd("c3")))
	must(t)(n.writer.Disable(ctx, "dave", cmd("c4")))
	must(t)(n.writer.SetPassword(ctx, "carol", "carol's new password", cmd("c5")))
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"alice", "alice's long password", true},
		{"alice", "alice's long passworD", false},
		{"alice", "", false},
		{"Alice", "alice's long password", false},
		{"nobody", "alice's long password", false},
		{"", "", false},
		{"dave", "dave's long password!", false},  // disabled
		{"carol", "carol's long password", false}, // the old password
		{"carol", "carol's new password", true},
		{"alice", strings.Repeat("x", MaxPassword+1), false},
	}
	for _, tt := range tests {
		u, err := n.book.Authenticate(ctx, tt.name, tt.password)
		if tt.ok {
			if err != nil || u.Name != tt.name {
				t.Errorf("Authenticate(%q) = %+v, %v", tt.name, u, err)
			}
			continue
		}
		// One error for all, with no name or reason in it.
		if err != ErrBadCredentials || u != (User{}) {
			t.Errorf("Authenticate(%q, %.20q) = %+v, %v; want ErrBadCredentials alone", tt.name, tt.password, u, err)
		}
	}
}

// TestUnknownNamesCostAHash: a sign-in of an unknown or disabled name
// waits for a hashing slot like a real one (no fast answer to time), and
// so does one of a name that exists.
func TestUnknownNamesCostAHash(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 1)
	n := nodes[0]
	must(t)(n.writer.Create(ctx, "alice", Admin, "alice's long password", cmd("c1")))
	must(t)(n.writer.Create(ctx, "dave", Viewer, "dave's long password!", cmd("c2")))
	must(t)(n.writer.Disable(ctx, "dave", cmd("c3")))
	if _, err := n.book.dummy(); err != nil { // drawn once, before the slots are taken
		t.Fatal(err)
	}
	h := n.book.hasher
	for range cap(h.sem) {
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"alice", "nobody", "dave", "Not A Name"} {
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err := n.book.Authenticate(short, name, "whatever password")
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Authenticate(%q) with every hashing slot taken = %v; want it to wait for a slot", name, err)
		}
	}
	for range cap(h.sem) {
		h.release()
	}
}

func TestWriterRefuses(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 1)
	w := nodes[0].writer
	must(t)(w.Create(ctx, "alice", Admin, "alice's long password", cmd("c1")))
	must(t)(w.Create(ctx, "bob", Operator, "bob's long password!", cmd("c2")))
	must(t)(w.Create(ctx, "eve", Admin, "eve's long password!", cmd("c3")))
	must(t)(w.Disable(ctx, "eve", cmd("c4")))
	long := strings.Repeat("x", schema.MaxText+1)
	tests := []struct {
		name   string
		do     func() (Applied, error)
		target error
		says   string
	}{
		{"duplicate name", func() (Applied, error) { return w.Create(ctx, "bob", Viewer, "another password", cmd("d1")) }, ErrExists, "bob (operator, enabled, created by root)"},
		{"duplicate of a disabled user", func() (Applied, error) { return w.Create(ctx, "eve", Viewer, "another password", cmd("d2")) }, ErrExists, "disabled"},
		{"bad name", func() (Applied, error) { return w.Create(ctx, "Bob Smith", Viewer, "another password", cmd("d3")) }, ErrInvalid, "name is \"Bob Smith\""},
		{"bad role", func() (Applied, error) { return w.Create(ctx, "zed", "root", "another password", cmd("d4")) }, ErrInvalid, "role is \"root\": want viewer, operator or admin"},
		{"short password", func() (Applied, error) { return w.Create(ctx, "zed", Viewer, "short", cmd("d5")) }, ErrInvalid, "password it has 5 characters, at least 12"},
		{"no by", func() (Applied, error) {
			return w.Create(ctx, "zed", Viewer, "another password", Command{ID: "d6"})
		}, ErrInvalid, "by is required"},
		{"why too long", func() (Applied, error) {
			return w.Disable(ctx, "bob", Command{ID: "d7", By: "root", Why: long})
		}, ErrInvalid, "why is 501 characters"},
		{"unknown user role", func() (Applied, error) { return w.SetRole(ctx, "nobody", Viewer, cmd("d8")) }, ErrNotFound, "nobody"},
		{"unknown user password", func() (Applied, error) { return w.SetPassword(ctx, "nobody", "another password", cmd("d9")) }, ErrNotFound, "nobody"},
		{"unknown user disable", func() (Applied, error) { return w.Disable(ctx, "nobody", cmd("d10")) }, ErrNotFound, "nobody"},
		{"unknown user enable", func() (Applied, error) { return w.Enable(ctx, "nobody", cmd("d11")) }, ErrNotFound, "nobody"},
		{"last admin disabled", func() (Applied, error) { return w.Disable(ctx, "alice", cmd("d12")) }, ErrLastAdmin, "alice is the only enabled admin"},
		{"last admin demoted", func() (Applied, error) { return w.SetRole(ctx, "alice", Operator, cmd("d13")) }, ErrLastAdmin, "alice is the only enabled admin"},
	}
	before := nodes[0].book.List()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.do()
			if !errors.Is(err, tt.target) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("= %+v, %v; want %v saying %q", a, err, tt.target, tt.says)
			}
		})
	}
	after := nodes[0].book.List()
	if len(before) != len(after) {
		t.Fatalf("a refused command changed the users: %+v", after)
	}
	if r, _ := nodes[0].book.Revision(); r != 3 {
		t.Fatalf("revision %d after refusals, want 3", r)
	}
	// Field errors come apart per field for the edges.
	_, err := w.Create(ctx, "BAD", "root", "short", Command{})
	fields := map[string]bool{}
	for _, fe := range FieldErrors(err) {
		fields[fe.Field] = true
	}
	if len(fields) != 4 || !fields["name"] || !fields["role"] || !fields["password"] || !fields["by"] {
		t.Fatalf("field errors of %v: %v", err, fields)
	}
	// With a second enabled admin the first may step down.
	must(t)(w.Enable(ctx, "eve", cmd("e1")))
	if a := must(t)(w.SetRole(ctx, "alice", Operator, cmd("e2"))); a.Event != schema.TypeUserRoleChanged {
		t.Fatalf("demote with another admin: %+v", a)
	}
	if _, err := w.Disable(ctx, "eve", cmd("e3")); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("eve is now the last admin: %v", err)
	}
}

func TestWriterRepeats(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 1)
	w := nodes[0].writer
	first := must(t)(w.Create(ctx, "alice", Admin, "alice's long password", cmd("k1")))
	if first.Event != schema.TypeUserCreated || first.Repeated || first.Revision != 0 {
		t.Fatalf("create: %+v", first)
	}
	// The same command again (a retried request): written once.
	again := must(t)(w.Create(ctx, "alice", Admin, "alice's long password", cmd("k1")))
	if !again.Repeated || again.Revision != 0 {
		t.Fatalf("repeat: %+v", again)
	}
	must(t)(w.Create(ctx, "bob", Viewer, "bob's long password!", cmd("k2")))
	tests := []struct {
		name string
		do   func() (Applied, error)
	}{
		{"the role it has", func() (Applied, error) { return w.SetRole(ctx, "bob", Viewer, cmd("r1")) }},
		{"enable of an enabled user", func() (Applied, error) { return w.Enable(ctx, "bob", cmd("r2")) }},
	}
	for _, tt := range tests {
		if a := must(t)(tt.do()); !a.Repeated || a.Event != "" || a.Revision != 1 {
			t.Errorf("%s: %+v, want nothing written", tt.name, a)
		}
	}
	must(t)(w.Disable(ctx, "bob", cmd("r3")))
	if a := must(t)(w.Disable(ctx, "bob", cmd("r4"))); !a.Repeated {
		t.Errorf("disable of a disabled user: %+v", a)
	}
}

// TestConcurrentWritersRetry: writers on two nodes creating users at once
// conflict on the stream's revision and retry; every user is created once.
func TestConcurrentWritersRetry(t *testing.T) {
	ctx := context.Background()
	_, nodes := cluster(t, 2)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "user" + string(rune('a'+i))
			_, err := nodes[i%2].writer.Create(ctx, name, Viewer, "a long password!", Command{ID: name, By: "root"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "both books at 8 users", func() bool { return nodes[0].book.Len() == 8 && nodes[1].book.Len() == 8 })
	if r, _ := nodes[1].book.Revision(); r != 7 {
		t.Fatalf("revision %d, want 7 (each user once)", r)
	}
}
