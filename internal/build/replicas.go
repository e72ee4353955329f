package build

import "github.com/gospann/spann/memindex"

// ChooseReplicas picks the heads a vector x is stored under (boundary
// replication with SPANN's RNG rule). cands are x's candidate heads sorted by
// ascending distance to x. Walking them in that order, a candidate c is
// skipped when
//
//   - it is farther than the eps bound: d(x,c) > d(x,c1) + eps·|d(x,c1)|,
//     c1 being the nearest candidate (eps < 0 disables the bound; for squared
//     L2 this is d(x,c) ≤ (1+eps)·d(x,c1)); or
//   - an already chosen head c' is closer to c than x is:
//     rngFactor·d(c,c') < d(x,c). Such a c lies "behind" c' as seen from x,
//     so a query near x that would probe c also probes c'; storing x under c
//     adds bytes without adding recall.
//
// Distances are the metric's as the kernels return them (squared for L2).
// At most maxReplicas heads are chosen; the nearest candidate always is.
// headDist returns the distance between two heads. The chosen head ids are
// appended to out, nearest first.
func ChooseReplicas(cands []memindex.Neighbor, maxReplicas int, rngFactor, eps float32, headDist func(a, b int32) float32, out []int32) []int32 {
	if len(cands) == 0 || maxReplicas <= 0 {
		return out
	}
	first := len(out)
	d1 := cands[0].Dist
	bound := d1 + eps*abs32(d1)
	for _, c := range cands {
		if len(out)-first >= maxReplicas {
			break
		}
		if eps >= 0 && c.Dist > bound {
			break // sorted: every later candidate is farther still
		}
		keep := true
		for _, chosen := range out[first:] {
			if rngFactor*headDist(c.ID, chosen) < c.Dist {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, c.ID)
		}
	}
	return out
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
