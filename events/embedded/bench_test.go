package embedded

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// benchEvent is a payload of realistic size (about 150 bytes of JSON).
func benchEvent(i int) events.Proposed {
	data, _ := json.Marshal(map[string]any{
		"caller": fmt.Sprintf("+7916%07d", i%10_000_000),
		"callee": "88001234567",
		"callId": fmt.Sprintf("a84c2f1e-%012d@10.0.0.1", i),
		"trunk":  "carrier-1",
		"at":     "2025-03-01T12:30:45.123456789Z",
	})
	return events.Proposed{
		ID: events.DeriveID("bench", fmt.Sprint(i)), Type: "CallReceived", Version: 1,
		Meta: events.Metadata{Node: "node-1", Actor: "grain", CorrelationID: fmt.Sprintf("call-%d", i)},
		Data: data,
	}
}

// BenchmarkAppendConcurrent: 64 goroutines append single events to distinct
// streams, each durable before it returns; group commit shares the fsyncs.
//
// ids=derived proposes IDs from events.DeriveID, as callguard does for
// idempotent appends: they are uniformly random, so each event dirties its
// own page of the ID index. ids=store proposes zero IDs, which the store
// replaces with time-ordered UUIDv7s that fill the ID index in order.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, mode := range []string{"derived", "store"} {
		b.Run("ids="+mode, func(b *testing.B) {
			proposed := make([]events.Proposed, b.N)
			for i := range proposed {
				proposed[i] = benchEvent(i)
				if mode == "store" {
					proposed[i].ID = uuid.Nil
				}
			}
			benchConcurrent(b, 64, proposed)
		})
	}
}

func benchConcurrent(b *testing.B, goroutines int, proposed []events.Proposed) {
	ctx := context.Background()
	s := openTest(b, b.TempDir())
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("caller-%d", g)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(proposed)) {
					return
				}
				if _, err := s.Append(ctx, stream, events.Any, proposed[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	commits := float64(s.stats.commits.Load())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(s.stats.requests.Load())/commits, "appends/commit")
	b.ReportMetric(float64(s.stats.pages.Load())/commits, "pages/commit")
}

// BenchmarkAppendSerial: one appender, one event per append, so every
// append pays a whole commit.
func BenchmarkAppendSerial(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, b.TempDir())
	proposed := make([]events.Proposed, b.N)
	for i := range proposed {
		proposed[i] = benchEvent(i)
	}
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := s.Append(ctx, "caller-1", events.Any, proposed[i]); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)*99/100])/float64(time.Millisecond), "p99-ms")
}

// BenchmarkReadAll reads the whole global log of one million events, page
// by page, as a projection rebuild does.
func BenchmarkReadAll(b *testing.B) {
	const (
		total  = 1_000_000
		batch  = 10_000
		page   = 10_000
		stream = 1000 // distinct streams
	)
	ctx := context.Background()
	s := openTest(b, b.TempDir())
	evs := make([]events.Proposed, batch)
	for i := 0; i < total; i += batch {
		for k := range evs {
			evs[k] = benchEvent(i + k)
			evs[k].ID = uuid.New()
		}
		if _, err := s.Append(ctx, fmt.Sprintf("caller-%d", (i/batch)%stream), events.Any, evs...); err != nil {
			b.Fatal(err)
		}
	}
	read := 0
	for b.Loop() {
		from := events.Start
		for {
			got, err := s.ReadAll(ctx, from, page)
			if err != nil {
				b.Fatal(err)
			}
			read += len(got)
			if len(got) < page {
				break
			}
			from = got[len(got)-1].Position
		}
	}
	if read%total != 0 {
		b.Fatalf("read %d events, want a multiple of %d", read, total)
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "events/s")
}
