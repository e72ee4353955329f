package spann

import (
	"context"
	"fmt"

	"github.com/gospann/spann/datasets"
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
	Query   []SearchStats   // per query
	Wall    time.Duration   // wall time of the whole batch
}

// SearchBatch searches every query of queries (nq rows of the index's
// element type, row-major raw bytes) with threads concurrent workers (0 =
// GOMAXPROCS), each keeping p.InFlight queries in flight, and returns all
// answers. It stops at the first error.
func (ix *Index) SearchBatch(queries []byte, k int, p SearchParams, threads int) (*BatchResult, error) {
	return ix.SearchBatchContext(context.Background(), queries, k, p, threads)
}

// SearchBatchContext is SearchBatch stopped by ctx: once it is done, the
// workers take no more queries, finish those in flight and it returns
// ctx's error.
func (ix *Index) SearchBatchContext(ctx context.Context, queries []byte, k int, p SearchParams, threads int) (*BatchResult, error) {
	return ix.searchBatch(ctx, queries, nil, k, p, threads)
}

// SearchBatchFiltered is SearchBatchContext with a filter per query:
// query i returns only vectors carrying every label of filters[i] (see
// SearchParams.Filter, which it overrides). There must be a filter for
// every query.
func (ix *Index) SearchBatchFiltered(ctx context.Context, queries []byte, filters [][]int32, k int, p SearchParams, threads int) (*BatchResult, error) {
	if nq := len(queries) / max(1, ix.rowBytes); len(filters) != nq {
		return nil, fmt.Errorf("%d filters for %d queries", len(filters), nq)
	}
	for i, f := range filters {
		q := p
		q.Filter = f
		if f == nil {
			q.Filter = []int32{} // refused below: every query of a filtered batch has a filter
		}
		if err := ix.checkFilter(&q); err != nil {
			return nil, fmt.Errorf("query %d: %w", i, err)
		}
	}
	return ix.searchBatch(ctx, queries, filters, k, p, threads)
}

func (ix *Index) searchBatch(ctx context.Context, queries []byte, filters [][]int32, k int, p SearchParams, threads int) (*BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(queries)%ix.rowBytes != 0 {
		return nil, fmt.Errorf("queries: %d bytes is not a whole number of %d-byte vectors", len(queries), ix.rowBytes)
	}
	nq := len(queries) / ix.rowBytes
	if nq == 0 {
		return nil, fmt.Errorf("queries: none given")
	}
	if err := ix.checkParams(k, &p); err != nil {
		return nil, err
	}
	if ix.typ == datasets.Float32 {
		if err := datasets.CheckFinite(ix.typ, queries, ix.dim, 0); err != nil {
			return nil, fmt.Errorf("queries: %w", err)
		}
	}
	res := &BatchResult{K: k, IDs: make([]int32, nq*k), Dists: make([]float32, nq*k), Latency: make([]time.Duration, nq), Query: make([]SearchStats, nq)}
	// emit stores one answer; each query is answered by one worker, so the
	// rows they write never overlap.
	emit := func(q int, out []Neighbor, st *SearchStats, lat time.Duration) {
		res.Latency[q] = lat
		res.Query[q] = *st
		ids, dists := res.IDs[q*k:(q+1)*k], res.Dists[q*k:(q+1)*k]
		for i := range ids {
			if i < len(out) {
				ids[i], dists[i] = out[i].ID, out[i].Dist
			} else {
				ids[i], dists[i] = -1, float32(math.Inf(1))
			}
		}
	}
	var err error
	if res.Wall, err = ix.onWorkers(ctx, queries, threads, k, p, filters, emit); err != nil {
		return nil, err
	}
	for q := range res.Query {
		res.Stats.Add(res.Query[q])
	}
	return res, nil
}

// onWorkers answers every query of queries with threads workers, each
// keeping p.InFlight queries in flight (searchMany; filters as there),
// calling emit with each answer (from several goroutines, never twice for
// one query). It stops taking queries at ctx's end or the first error,
// and returns the wall time and that error.
func (ix *Index) onWorkers(ctx context.Context, queries []byte, threads, k int, p SearchParams, filters [][]int32,
	emit func(q int, out []Neighbor, st *SearchStats, lat time.Duration)) (time.Duration, error) {
	nq := len(queries) / ix.rowBytes
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	errs := make([]error, threads)
	done := ctx.Done()
	take := func() (int, []byte, bool) {
		if done != nil {
			select {
			case <-done:
				return 0, nil, false
			default:
			}
		}
		q := int(next.Add(1) - 1)
		if q >= nq {
			return 0, nil, false
		}
		return q, queries[q*ix.rowBytes : (q+1)*ix.rowBytes], true
	}
	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			w, err := ix.getWorker()
			if err != nil {
				errs[t] = err
				next.Store(int64(nq)) // stop the others
				return
			}
			defer ix.putWorker(w)
			if errs[t] = w.searchMany(take, k, p, filters, p.InFlight, emit); errs[t] != nil {
				next.Store(int64(nq))
			}
		}(t)
	}
	wg.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return wall, err
	}
	for _, err := range errs {
		if err != nil {
			return wall, err
		}
	}
	return wall, nil
}
