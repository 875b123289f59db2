package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
)

// A copy taken while appends go on is a store of its own whose log ends
// exactly at the copy's Head, with every event up to there.
func TestBackupCopiesAConsistentLogWhileAppending(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	if _, err := s.Append(ctx, "seed", events.NoStream, ev("T", `{}`)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Append(ctx, fmt.Sprintf("w%d-%d", w, i), events.NoStream, ev("T", `{}`)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	var copies []Copy
	dirs := make([]string, 5)
	for i := range dirs {
		dirs[i] = t.TempDir()
		// Each copy after appends that the one before did not have.
		deadline := time.Now().Add(10 * time.Second)
		for i > 0 {
			h, _ := s.Head(ctx)
			if copies[i-1].Head.Less(h) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no append in 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		err := s.Backup(ctx, func(c Copy) error {
			f, err := os.Create(filepath.Join(dirs[i], FileName))
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := c.WriteTo(f)
			if err == nil && n != c.Size {
				err = fmt.Errorf("wrote %d bytes, Size says %d", n, c.Size)
			}
			copies = append(copies, Copy{Head: c.Head, Size: c.Size})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for i, dir := range dirs {
		c := openTest(t, dir)
		head, err := c.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := c.ReadAll(ctx, events.Start, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if head != copies[i].Head || uint64(len(all)) != head.Commit || head.Commit == 0 {
			t.Errorf("copy %d: head %v with %d events, the copy said %v", i, head, len(all), copies[i].Head)
		}
	}
	// A closed store makes no copy.
	_ = s.Close()
	if err := s.Backup(ctx, func(Copy) error { return nil }); err == nil {
		t.Error("Backup of a closed store succeeded")
	}
}
