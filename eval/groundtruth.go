package eval

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/topk"
	"github.com/gospann/spann/internal/vec"
)

// GTOptions controls ExactKNN.
type GTOptions struct {
	K       int
	Metric  vec.Metric
	Threads int // 0 = GOMAXPROCS
	// BlockRows is how many base rows are held in memory at once (twice, as
	// the next block is read ahead). 0 picks about 64 MiB worth.
	BlockRows int
	// Progress, if set, is called with base rows done and the total.
	Progress func(done, total int)
	// Allowed, if set, has one bitmap per query: the base rows that query
	// may return (a filtered search's matching set). A query allowed fewer
	// than K rows gets them all, its row padded with id -1 at +Inf.
	Allowed []*roaring.Bitmap
}

// ExactKNN computes the exact K nearest base rows of every query by brute
// force, streaming the base in blocks so that a base larger than memory
// works. Each query's neighbours are sorted by (distance, id), which is how
// the shipped ground-truth files break ties. For Cosine the base and queries
// are normalised on the fly (the queries in place, on a copy).
func ExactKNN(base *datasets.VectorFile, queries *datasets.Matrix, o GTOptions) (*datasets.GroundTruth, error) {
	if queries.Type != base.Type {
		return nil, fmt.Errorf("queries are %s but base %s is %s", queries.Type, base.Path, base.Type)
	}
	if queries.Dim != base.Dim {
		return nil, fmt.Errorf("queries have dimension %d but base %s has %d", queries.Dim, base.Path, base.Dim)
	}
	if o.K <= 0 {
		return nil, fmt.Errorf("k must be positive, got %d", o.K)
	}
	if o.Allowed != nil && len(o.Allowed) != queries.N {
		return nil, fmt.Errorf("%d allowed sets for %d queries", len(o.Allowed), queries.N)
	}
	if o.K > base.N {
		return nil, fmt.Errorf("k=%d is larger than the %d base vectors of %s", o.K, base.N, base.Path)
	}
	switch base.Type {
	case datasets.Float32:
		return exactKNN[float32](base, queries, o)
	case datasets.Uint8:
		return exactKNN[uint8](base, queries, o)
	case datasets.Int8:
		return exactKNN[int8](base, queries, o)
	}
	return nil, fmt.Errorf("%s: unsupported element type %v", base.Path, base.Type)
}

func exactKNN[T vec.Elem](base *datasets.VectorFile, queries *datasets.Matrix, o GTOptions) (*datasets.GroundTruth, error) {
	nq, dim := queries.N, base.Dim
	heaps := make([]*topk.Heap, nq)
	for i := range heaps {
		heaps[i] = topk.New(o.K)
	}
	err := bruteForce(base, queries, o, func(sp vec.Space[T], sc *scratch, q int, query []T, first int, tile []T) {
		h := heaps[q]
		tn := len(tile) / dim
		var allowed *roaring.Bitmap
		if o.Allowed != nil {
			allowed = o.Allowed[q]
		}
		if allowed != nil {
			// A query allowed few rows of the tile scores only those;
			// otherwise all, then filters.
			if few := allowedIn(allowed, uint32(first), uint32(first+tn), tn/8, &sc.it, sc.few[:0]); few != nil {
				for _, id := range few {
					i := int(id) - first
					if d := sp.Dist(query, tile[i*dim:(i+1)*dim]); d < h.Worst() {
						h.Push(int32(id), d)
					}
				}
				return
			}
		}
		out := sc.out[:tn]
		sp.Batch(query, tile, out)
		for i, d := range out {
			// Rows arrive in increasing id order, so a tie with the current
			// worst never displaces it: (dist, id) order.
			if d < h.Worst() && (allowed == nil || allowed.Contains(uint32(first+i))) {
				h.Push(int32(first+i), d)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	gt := &datasets.GroundTruth{NQ: nq, K: o.K, IDs: make([]int32, nq*o.K), Dists: make([]float32, nq*o.K)}
	for q, h := range heaps {
		ids, dists := gt.Row(q)
		h.Sorted(ids, dists)
	}
	return gt, nil
}

// tileRows is the unit of cache reuse of brute force: every query of a
// worker is scored against one tile of base rows while it sits in L2.
const tileRows = 1024

// scratch is one brute-force worker's buffers.
type scratch struct {
	out []float32 // a tile's distances
	few []uint32
	it  roaring.IntIterator
}

// bruteForce streams base in blocks (each read while the last is scored)
// and calls score for every query and every tile of up to tileRows base
// rows, first being the tile's first row id. The queries are split among
// o.Threads workers, each query always on the same worker, so score may
// keep per-query state without locks. Under Cosine the queries (a copy)
// and base rows are normalised first.
func bruteForce[T vec.Elem](base *datasets.VectorFile, queries *datasets.Matrix, o GTOptions,
	score func(sp vec.Space[T], sc *scratch, q int, query []T, first int, tile []T)) error {
	sp, err := vec.NewSpace[T](o.Metric)
	if err != nil {
		return err
	}
	threads := o.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	dim, nq := base.Dim, queries.N
	qs := datasets.Rows[T](queries.Data)
	if o.Metric == vec.Cosine {
		qs = append([]T(nil), qs...)
		vec.NormalizeRows(qs, dim)
	}
	block := o.BlockRows
	if block <= 0 {
		block = max(1024, (64<<20)/base.RowBytes())
	}
	chunk := (nq + threads - 1) / threads
	workers := make([]scratch, threads)
	for t := range workers {
		workers[t] = scratch{out: make([]float32, tileRows), few: make([]uint32, 0, tileRows/8)}
	}
	var normBuf []T
	return base.Stream(block, func(start int, raw []byte) error {
		rows := datasets.Rows[T](raw)
		if o.Metric == vec.Cosine {
			normBuf = append(normBuf[:0], rows...)
			vec.NormalizeRows(normBuf, dim)
			rows = normBuf
		}
		nrows := len(rows) / dim
		var wg sync.WaitGroup
		for t := 0; t < threads; t++ {
			lo, hi := t*chunk, min(nq, (t+1)*chunk)
			if lo >= hi {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ts := 0; ts < nrows; ts += tileRows {
					tile := rows[ts*dim : min(nrows, ts+tileRows)*dim]
					for q := lo; q < hi; q++ {
						score(sp, &workers[t], q, qs[q*dim:(q+1)*dim], start+ts, tile)
					}
				}
			}()
		}
		wg.Wait()
		if o.Progress != nil {
			o.Progress(start+nrows, base.N)
		}
		return nil
	})
}

// allowedIn appends to dst the ids of bm in [lo, hi) if there are at most
// limit of them, returning dst (non-nil, possibly empty); if there are
// more it returns nil. it is the caller's iterator, reused.
func allowedIn(bm *roaring.Bitmap, lo, hi uint32, limit int, it *roaring.IntIterator, dst []uint32) []uint32 {
	it.Initialize(bm)
	it.AdvanceIfNeeded(lo)
	for it.HasNext() {
		id := it.PeekNext()
		if id >= hi {
			break
		}
		if len(dst) == limit {
			return nil
		}
		dst = append(dst, it.Next())
	}
	return dst
}
