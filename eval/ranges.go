package eval

import (
	"fmt"
	"slices"

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
	if err := vec.CheckRadius(o.Metric, float64(radius)); err != nil {
		return nil, err
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
	nq := queries.N
	found := make([][]hit, nq)
	err := bruteForce(base, queries, o, func(sp vec.Space[T], sc *scratch, q int, query []T, first int, tile []T) {
		out := sc.out[:len(tile)/base.Dim]
		sp.Batch(query, tile, out)
		for i, d := range out {
			if d <= radius {
				found[q] = append(found[q], hit{int32(first + i), d})
			}
		}
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

// AveragePrecision scores range results against the exact ones by
// big-ann-benchmarks' range-search average precision (compute_AP in its
// eval_range_search.py, which follows faiss's contrib.evaluation),
// reimplemented: 100 distance thresholds evenly spaced from -0.001 to the
// largest distance returned; at threshold t each query's results closer
// than t (strictly) are its answer, and, pooling all queries ("overall"),
// precision = true answers / answers (1 with none) and recall = true
// answers / true results (with no true results: 1 if nothing was
// answered, else 0); the score is the area under those points by
// trapezoids. Duplicate ids count as often as returned. Returning nothing
// at all scores 0. Note that results at exactly the largest distance fall
// outside every threshold, so even the exact answer scores a little below
// 1.
func AveragePrecision(gt, res *datasets.RangeResults) (float64, error) {
	if gt.NQ() != res.NQ() {
		return 0, fmt.Errorf("average precision: %d result rows for %d ground-truth queries", res.NQ(), gt.NQ())
	}
	if len(res.Dists) == 0 {
		return 0, nil
	}
	const nt = 100
	dmax := float64(slices.Max(res.Dists))
	thresholds := make([]float64, nt)
	for i := range thresholds {
		thresholds[i] = -0.001 + (dmax+0.001)*float64(i)/float64(nt-1)
	}
	thresholds[nt-1] = dmax // as numpy's linspace ends exactly
	var ngt int64
	nres, ninter := make([]int64, nt), make([]int64, nt)
	for q := 0; q < gt.NQ(); q++ {
		truth, _ := gt.Row(q)
		ngt += int64(len(truth))
		sorted := slices.Sorted(slices.Values(truth))
		ids, dists := res.Row(q)
		order := make([]int, len(ids))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case dists[a] < dists[b]:
				return -1
			case dists[a] > dists[b]:
				return 1
			}
			return 0
		})
		ok := make([]int64, len(ids)+1) // ok[n]: true answers among the n nearest
		for n, i := range order {
			_, hit := slices.BinarySearch(sorted, ids[i])
			ok[n+1] = ok[n]
			if hit {
				ok[n+1]++
			}
		}
		n := 0
		for t, th := range thresholds { // thresholds ascend: n only grows
			for n < len(order) && float64(dists[order[n]]) < th {
				n++
			}
			nres[t] += int64(n)
			ninter[t] += ok[n]
		}
	}
	ap, prevP, prevR := 0.0, 0.0, 0.0
	for t := range thresholds {
		p, r := 1.0, 0.0
		if nres[t] > 0 {
			p = float64(ninter[t]) / float64(nres[t])
		}
		switch {
		case ngt > 0:
			r = float64(ninter[t]) / float64(ngt)
		case nres[t] == 0:
			r = 1
		}
		if t > 0 {
			ap += (r - prevR) * (p + prevP) / 2
		}
		prevP, prevR = p, r
	}
	return ap, nil
}
