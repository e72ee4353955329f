package eval

import (
	"fmt"
	"math"

	"github.com/gospann/spann/datasets"
)

// Recall is tie-aware recall@K averaged over queries.
type Recall struct {
	K    int
	Mean float64
	// PerQuery[q] is the fraction of query q's K true neighbours found.
	PerQuery []float64
}

// RecallAt computes recall@k of results against gt the way big-ann-benchmarks
// does: a returned id (among the first k of its row) counts as a hit if it is
// one of the true k nearest or if it is in the ground-truth row at a distance
// equal to the k-th true distance (ties extend the true set, up to the end of
// the ground-truth row). Duplicate returned ids count once. k must not exceed
// the ground truth's or the results' k.
//
// A ground-truth row with fewer than k true neighbours (padded with id -1,
// as a filtered ground truth is when fewer than k vectors match) is scored
// out of the neighbours it has: finding all 3 of 3 is recall 1. A row with
// none scores 1.
func RecallAt(gt *datasets.GroundTruth, res *datasets.Results, k int) (*Recall, error) {
	if k <= 0 {
		return nil, fmt.Errorf("recall@%d: k must be positive", k)
	}
	if k > gt.K {
		return nil, fmt.Errorf("recall@%d: the ground truth has only %d neighbours per query", k, gt.K)
	}
	if k > res.K {
		return nil, fmt.Errorf("recall@%d: the results have only %d ids per query", k, res.K)
	}
	if res.N != gt.NQ {
		return nil, fmt.Errorf("recall: %d result rows for %d ground-truth queries", res.N, gt.NQ)
	}
	r := &Recall{K: k, PerQuery: make([]float64, gt.NQ)}
	var sum float64
	for q := 0; q < gt.NQ; q++ {
		ids, dists := gt.Row(q)
		end := TieEnd(dists, k)
		hits := 0
		got := res.Row(q)[:k]
		for i, id := range got {
			if id < 0 || seenBefore(got, i) {
				continue
			}
			for _, t := range ids[:end] {
				if t == id {
					hits++
					break
				}
			}
		}
		valid := k
		for valid > 0 && ids[valid-1] < 0 {
			valid--
		}
		if valid == 0 {
			r.PerQuery[q] = 1
		} else {
			r.PerQuery[q] = float64(hits) / float64(valid)
		}
		sum += r.PerQuery[q]
	}
	r.Mean = sum / float64(gt.NQ)
	return r, nil
}

func seenBefore(ids []int32, i int) bool {
	for _, x := range ids[:i] {
		if x == ids[i] {
			return true
		}
	}
	return false
}

// TieEnd returns how many leading entries of a sorted distance row count as
// the true top-k once ties with the k-th distance are included.
func TieEnd(dists []float32, k int) int {
	end := k
	for end < len(dists) && dists[end] <= dists[k-1] {
		end++
	}
	return end
}

// Mismatch describes one query whose computed neighbours differ from a
// reference ground truth beyond what ties allow.
type Mismatch struct {
	Query  int
	Reason string
}

// CompareGroundTruth checks that got reproduces want on the first k columns:
// per query the same ids, in any order, except that ids may differ among
// distances tied with the k-th one. Distances must agree exactly when exact
// is set (integer data), otherwise within a relative tolerance of float32
// rounding (relTol, e.g. 1e-5) — the reference may have been computed in
// float64. It returns the number of mismatching queries and the first
// maxReport of them.
func CompareGroundTruth(got, want *datasets.GroundTruth, k int, exact bool, relTol float64, maxReport int) (int, []Mismatch, error) {
	if got.NQ != want.NQ {
		return 0, nil, fmt.Errorf("compare: %d queries against %d", got.NQ, want.NQ)
	}
	if k <= 0 || k > got.K || k > want.K {
		return 0, nil, fmt.Errorf("compare: k=%d but the files have k=%d and k=%d", k, got.K, want.K)
	}
	eq := func(a, b float32) bool {
		if exact {
			return a == b
		}
		return math.Abs(float64(a)-float64(b)) <= relTol*math.Max(1, math.Abs(float64(b)))
	}
	var out []Mismatch
	count := 0
	report := func(q int, format string, args ...any) {
		count++
		if len(out) < maxReport {
			out = append(out, Mismatch{q, fmt.Sprintf(format, args...)})
		}
	}
	for q := 0; q < got.NQ; q++ {
		gi, gd := got.Row(q)
		wi, wd := want.Row(q)
		bad := false
		for r := 0; r < k && !bad; r++ {
			if !eq(gd[r], wd[r]) {
				report(q, "rank %d: distance %v, reference %v", r, gd[r], wd[r])
				bad = true
			}
		}
		if bad {
			continue
		}
		kth := wd[k-1]
		for r := 0; r < k; r++ {
			if contains(wi[:k], gi[r]) {
				continue
			}
			// An id the reference does not have in its top k is fine only if
			// it is tied with the reference's k-th distance.
			if !eq(gd[r], kth) {
				report(q, "rank %d: id %d at distance %v is not in the reference top %d (k-th distance %v)", r, gi[r], gd[r], k, kth)
				break
			}
		}
	}
	return count, out, nil
}

func contains(ids []int32, id int32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
