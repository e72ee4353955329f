package eval

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
)

// ExactRange returns, for every query, every base row within radius of it
// (distance ≤ radius, in the metric's own terms: squared for L2), sorted
// by (distance, id), by brute force over the streamed base.
func ExactRange(base *datasets.VectorFile, queries *datasets.Matrix, radius float32, o GTOptions) (*datasets.RangeResults, error) {
	if queries.Type != base.Type {
		return nil, fmt.Errorf("queries are %s but base %s is %s", queries.Type, base.Path, base.Type)
	}
	if queries.Dim != base.Dim {
		return nil, fmt.Errorf("queries have dimension %d but base %s has %d", queries.Dim, base.Path, base.Dim)
	}
	if !(radius >= 0) || math.IsInf(float64(radius), 1) {
		return nil, fmt.Errorf("radius %v: must be a finite number ≥ 0", radius)
	}
	switch base.Type {
	case datasets.Float32:
		return exactRange[float32](base, queries, radius, o)
	case datasets.Uint8:
		return exactRange[uint8](base, queries, radius, o)
	case datasets.Int8:
		return exactRange[int8](base, queries, radius, o)
	}
	return nil, fmt.Errorf("%s: unsupported element type %v", base.Path, base.Type)
}

type hit struct {
	id   int32
	dist float32
}

func exactRange[T vec.Elem](base *datasets.VectorFile, queries *datasets.Matrix, radius float32, o GTOptions) (*datasets.RangeResults, error) {
	sp, err := vec.NewSpace[T](o.Metric)
	if err != nil {
		return nil, err
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
	found := make([][]hit, nq)
	const tileRows = 1024
	chunk := (nq + threads - 1) / threads
	var normBuf []T
	err = base.Stream(block, func(start int, raw []byte) error {
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
				out := make([]float32, tileRows)
				for ts := 0; ts < nrows; ts += tileRows {
					tn := min(tileRows, nrows-ts)
					for q := lo; q < hi; q++ {
						sp.Batch(qs[q*dim:(q+1)*dim], rows[ts*dim:(ts+tn)*dim], out[:tn])
						for i, d := range out[:tn] {
							if d <= radius {
								found[q] = append(found[q], hit{int32(start + ts + i), d})
							}
						}
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
	if err != nil {
		return nil, err
	}
	r := &datasets.RangeResults{Offsets: make([]int, nq+1)}
	for q, hs := range found {
		slices.SortFunc(hs, func(a, b hit) int {
			if a.dist != b.dist {
				return cmpF32(a.dist, b.dist)
			}
			return int(a.id - b.id)
		})
		for _, h := range hs {
			r.IDs = append(r.IDs, h.id)
			r.Dists = append(r.Dists, h.dist)
		}
		r.Offsets[q+1] = len(r.IDs)
	}
	return r, nil
}

func cmpF32(a, b float32) int {
	if a < b {
		return -1
	}
	return 1
}

// AveragePrecision scores range results against the exact ones as
// big-ann-benchmarks' range track does: all returned results, of all
// queries, are ordered by distance; at each distance threshold t the
// precision is the share of results within t that are true and the recall
// the share of all true results found within t; the score is the area
// under that precision–recall curve, Σ precision·Δrecall. Returning
// exactly the true results scores 1. If there is nothing to find, it is 1
// when nothing was returned and 0 otherwise.
func AveragePrecision(gt, res *datasets.RangeResults) (float64, error) {
	if gt.NQ() != res.NQ() {
		return 0, fmt.Errorf("average precision: %d result rows for %d ground-truth queries", res.NQ(), gt.NQ())
	}
	type scored struct {
		dist float32
		true bool
	}
	var all []scored
	for q := 0; q < gt.NQ(); q++ {
		truth, _ := gt.Row(q)
		sorted := slices.Sorted(slices.Values(truth))
		ids, dists := res.Row(q)
		seen := map[int32]bool{}
		for i, id := range ids {
			if seen[id] {
				continue // a duplicate counts once
			}
			seen[id] = true
			_, ok := slices.BinarySearch(sorted, id)
			all = append(all, scored{dists[i], ok})
		}
	}
	total := len(gt.IDs)
	if total == 0 {
		if len(all) == 0 {
			return 1, nil
		}
		return 0, nil
	}
	slices.SortStableFunc(all, func(a, b scored) int {
		if a.dist == b.dist {
			return 0
		}
		return cmpF32(a.dist, b.dist)
	})
	ap, tp, prevRecall := 0.0, 0, 0.0
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].dist == all[i].dist { // one threshold per distinct distance
			if all[j].true {
				tp++
			}
			j++
		}
		recall := float64(tp) / float64(total)
		ap += float64(tp) / float64(j) * (recall - prevRecall)
		prevRecall, i = recall, j
	}
	return ap, nil
}
