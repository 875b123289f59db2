package runner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A copy of a projection taken while it folds holds a read model and the
// checkpoint that goes with it: opened in place of the original it has
// counted exactly the events up to its checkpoint, and catches up from
// there without counting any twice.
func TestBackupCopiesAModelWithItsCheckpoint(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	c := &counter{name: "count", version: "1"}
	r := e.open(Options{BatchSize: 3, SequentialPositions: true, CommitInterval: -1}, c)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			e.append("A", 5)
		}
	}()
	// Copy once the projection has folded some, while appends go on.
	deadline := time.Now().Add(10 * time.Second)
	for status(t, r, "count").Events < 20 {
		if time.Now().After(deadline) {
			t.Fatal("the projection folded nothing in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	copyDir := filepath.Join(t.TempDir(), DirName)
	if err := os.MkdirAll(copyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var got Copy
	err := r.Backup(ctx, func(cp Copy) error {
		got = Copy{Name: cp.Name, Version: cp.Version, Position: cp.Position, Events: cp.Events, Size: cp.Size}
		f, err := os.Create(filepath.Join(copyDir, cp.Name+".db"))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = cp.WriteTo(f)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got.Name != "count" || got.Version != "1" || got.Events == 0 || got.Position.Commit != got.Events {
		t.Fatalf("copy %+v", got)
	}
	r2, err := Open(ctx, copyDir, e.store, []Projection{c}, Options{Logger: quiet(), Clock: e.clock.Now, SequentialPositions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if n := counts(t, r2, "count")["A"]; n != got.Events {
		t.Fatalf("the copy counted %d events, its checkpoint says %d", n, got.Events)
	}
	if err := r2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counts(t, r2, "count")["A"]; n != 200 {
		t.Fatalf("the copy caught up to %d events, want 200", n)
	}
}
