package postgres_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/postgres"
)

// BenchmarkDurableAppend64 measures durable single-event appends from 64
// concurrent appenders, each to a stream of its own with an exact expected
// revision (as caller grains append), on the shared server (fsync on,
// synchronous_commit on). It reports appends/s and the p50 and p99 latency.
//
//	go test -run '^$' -bench DurableAppend64 -benchtime 20000x ./events/postgres/
func BenchmarkDurableAppend64(b *testing.B) {
	const appenders = 64
	for _, bc := range []struct {
		name string
		opts []postgres.Option
	}{
		{"notify-after-commit", nil},
		{"notify-after-commit-pool-64", []postgres.Option{postgres.WithMaxConns(64)}},
		{"notify-in-tx", []postgres.Option{postgres.WithNotifyInTx(true)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := open(b, bc.opts...)
			ctx := b.Context()
			var next atomic.Int64
			lat := make([][]time.Duration, appenders)
			var wg sync.WaitGroup
			errs := make(chan error, appenders)
			b.ResetTimer()
			start := time.Now()
			for w := range appenders {
				wg.Go(func() {
					stream := fmt.Sprintf("bench-%d", w)
					exp := events.NoStream
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						p := proposed(fmt.Sprintf("%s-%d", bc.name, i))
						t0 := time.Now()
						res, err := s.Append(ctx, stream, exp, p)
						if err != nil {
							errs <- err
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
						exp = events.Exact(res.LastRevision)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "appends/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
