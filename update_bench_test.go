package spann

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
)

// BenchmarkSearchWhileUpdating measures search throughput on an index
// idle, then while one writer streams inserts (batches of 100) and deletes
// (batches of 100 random ids) into it, then while another goroutine also
// checkpoints every 2 s: issue 10's "searches during updates keep ≥ 70 %
// of their idle QPS". It needs a built index and vector files (it skips
// without them):
//
//	SPANN_BENCH_INDEX=out/crop900k SPANN_BENCH_QUERIES=data/realsift-1M/query.u8bin \
//	SPANN_BENCH_INSERT=out/last100k.u8bin go test -run '^$' -bench SearchWhileUpdating -benchtime 1x .
//
// The index is copied into a temporary directory first (postings.bin,
// which checkpoints rewrite in place, really copied; the rest
// hard-linked).
func BenchmarkSearchWhileUpdating(b *testing.B) {
	src, qpath, ipath := os.Getenv("SPANN_BENCH_INDEX"), os.Getenv("SPANN_BENCH_QUERIES"), os.Getenv("SPANN_BENCH_INSERT")
	if src == "" || qpath == "" || ipath == "" {
		b.Skip("set SPANN_BENCH_INDEX, SPANN_BENCH_QUERIES and SPANN_BENCH_INSERT")
	}
	dir := filepath.Join(b.TempDir(), "index")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"manifest.json", "heads.bin", "graph.bin", "directory.bin"} {
		if err := os.Link(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
	}
	if err := copyFile(filepath.Join(src, "postings.bin"), filepath.Join(dir, "postings.bin")); err != nil {
		b.Fatal(err)
	}
	q, err := datasets.LoadVectors(qpath, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	rows, err := datasets.LoadVectors(ipath, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	ix, err := Open(dir, Options{Writable: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ix.Close()
	p := SearchParams{NProbe: 16, Eps: -1}
	qps := func() (float64, float64) {
		res, err := ix.SearchBatch(q.Data, 10, p, 1)
		if err != nil {
			b.Fatal(err)
		}
		lat := slices.Clone(res.Latency)
		slices.Sort(lat)
		return float64(q.N) / res.Wall.Seconds(), float64(lat[len(lat)*99/100].Microseconds())
	}
	for i := 0; i < b.N; i++ {
		idle, idleP99 := qps()
		b.ReportMetric(idle, "idle-qps")
		b.ReportMetric(idleP99, "idle-p99-us")
		for _, ck := range []bool{false, true} {
			var stop atomic.Bool
			var inserted, deleted, checkpoints atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			start := time.Now()
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(1, 2))
				for r := 0; !stop.Load(); r = (r + 100) % (rows.N - 100) {
					if _, err := ix.Insert(rows.Data[r*rows.Dim : (r+100)*rows.Dim]); err != nil {
						b.Error(err)
						return
					}
					inserted.Add(100)
					ids := make([]int32, 100)
					for j := range ids {
						ids[j] = int32(rng.IntN(ix.N()))
					}
					if err := ix.Delete(ids); err != nil {
						b.Error(err)
						return
					}
					deleted.Add(100)
				}
			}()
			if ck {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() {
						time.Sleep(2 * time.Second)
						if err := ix.Checkpoint(); err != nil {
							b.Error(err)
							return
						}
						checkpoints.Add(1)
					}
				}()
			}
			busy, busyP99 := qps()
			stop.Store(true)
			wg.Wait()
			secs := time.Since(start).Seconds()
			tag := "busy"
			if ck {
				tag = "busy-ck"
				b.ReportMetric(float64(checkpoints.Load()), "checkpoints")
			}
			b.ReportMetric(busy, tag+"-qps")
			b.ReportMetric(busy/idle, tag+"/idle")
			b.ReportMetric(busyP99, tag+"-p99-us")
			b.ReportMetric(float64(inserted.Load())/secs, tag+"-inserts/s")
			b.ReportMetric(float64(deleted.Load())/secs, tag+"-deletes/s")
		}
	}
}
