package spann

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// BatchResult holds the answers to a batch of queries.
type BatchResult struct {
	K       int
	IDs     []int32         // nq×K, row-major; -1 pads rows with fewer than K results
	Dists   []float32       // nq×K, matching IDs (+Inf for padding)
	Latency []time.Duration // per query, from worker pickup to answer
	Stats   SearchStats     // sums over all queries
	Wall    time.Duration   // wall time of the whole batch
}

// SearchBatch searches every query of queries (nq rows of the index's
// element type, row-major raw bytes) with threads concurrent workers (0 =
// GOMAXPROCS) and returns all answers. It stops at the first error.
func (ix *Index) SearchBatch(queries []byte, k int, p SearchParams, threads int) (*BatchResult, error) {
	if len(queries)%ix.rowBytes != 0 {
		return nil, fmt.Errorf("queries: %d bytes is not a whole number of %d-byte vectors", len(queries), ix.rowBytes)
	}
	nq := len(queries) / ix.rowBytes
	if nq == 0 {
		return nil, fmt.Errorf("queries: none given")
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	res := &BatchResult{K: k, IDs: make([]int32, nq*k), Dists: make([]float32, nq*k), Latency: make([]time.Duration, nq)}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, threads)
	stats := make([]SearchStats, threads)
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			dst := make([]Neighbor, 0, k)
			var st SearchStats
			for {
				q := int(next.Add(1) - 1)
				if q >= nq || errs[t] != nil {
					return
				}
				t0 := time.Now()
				out, err := ix.SearchInto(queries[q*ix.rowBytes:(q+1)*ix.rowBytes], k, p, dst, &st)
				res.Latency[q] = time.Since(t0)
				if err != nil {
					errs[t] = fmt.Errorf("query %d: %w", q, err)
					next.Store(int64(nq)) // stop the others
					return
				}
				stats[t].Add(st)
				ids, dists := res.IDs[q*k:(q+1)*k], res.Dists[q*k:(q+1)*k]
				for i := range ids {
					if i < len(out) {
						ids[i], dists[i] = out[i].ID, out[i].Dist
					} else {
						ids[i], dists[i] = -1, float32(math.Inf(1))
					}
				}
			}
		}(t)
	}
	wg.Wait()
	res.Wall = time.Since(start)
	for t := range errs {
		if errs[t] != nil {
			return nil, errs[t]
		}
		res.Stats.Add(stats[t])
	}
	return res, nil
}
