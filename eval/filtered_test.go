package eval

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
)

// Filtered ground truth equals a full sort over the allowed rows only, for
// allowed sets dense and sparse (both of ExactKNN's tile paths), empty, and
// smaller than k (padded with -1 at +Inf).
func TestExactKNNFiltered(t *testing.T) {
	const n, dim, k = 3000, 16, 10
	basePath, baseM := genFile(t, datasets.Uint8, n, dim, 0)
	_, qm := genFile(t, datasets.Uint8, 8, dim, 1)
	base, err := datasets.OpenVectors(basePath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	allowed := make([]*roaring.Bitmap, qm.N)
	for q := range allowed {
		bm := roaring.New()
		share := []float64{0.9, 0.3, 0.01, 0.001, 0, 0.5, 0.05, 0.002}[q]
		for i := 0; i < n; i++ {
			if rng.Float64() < share {
				bm.Add(uint32(i))
			}
		}
		allowed[q] = bm
	}
	allowed[5] = nil // unfiltered
	got, err := ExactKNN(base, qm, GTOptions{K: k, Metric: vec.L2, Threads: 2, BlockRows: 700, Allowed: allowed})
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := vec.NewSpace[uint8](vec.L2)
	b := datasets.Rows[uint8](baseM.Data)
	for q := 0; q < qm.N; q++ {
		type cand struct {
			id int32
			d  float32
		}
		var all []cand
		for i := 0; i < n; i++ {
			if allowed[q] == nil || allowed[q].Contains(uint32(i)) {
				all = append(all, cand{int32(i), sp.Dist(qm.Row(q), b[i*dim:(i+1)*dim])})
			}
		}
		sort.Slice(all, func(x, y int) bool {
			if all[x].d != all[y].d {
				return all[x].d < all[y].d
			}
			return all[x].id < all[y].id
		})
		ids, dists := got.Row(q)
		for r := 0; r < k; r++ {
			wantID, wantD := int32(-1), float32(math.Inf(1))
			if r < len(all) {
				wantID, wantD = all[r].id, all[r].d
			}
			if ids[r] != wantID || dists[r] != wantD {
				t.Fatalf("query %d rank %d: %d at %v, want %d at %v", q, r, ids[r], dists[r], wantID, wantD)
			}
		}
	}
	if _, err := ExactKNN(base, qm, GTOptions{K: k, Allowed: allowed[:3]}); err == nil {
		t.Error("3 allowed sets for 8 queries accepted")
	}
}

// A ground-truth row with fewer than k neighbours is scored out of those
// it has.
func TestRecallPadded(t *testing.T) {
	inf := float32(math.Inf(1))
	gt := &datasets.GroundTruth{NQ: 3, K: 4,
		IDs:   []int32{7, 8, -1, -1, -1, -1, -1, -1, 1, 2, 3, 4},
		Dists: []float32{1, 2, inf, inf, inf, inf, inf, inf, 1, 2, 3, 4}}
	res := &datasets.Results{N: 3, K: 4, IDs: []int32{8, 5, -1, -1, -1, -1, -1, -1, 1, 9, 3, 4}}
	r, err := RecallAt(gt, res, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.PerQuery[0] != 0.5 || r.PerQuery[1] != 1 || r.PerQuery[2] != 0.75 {
		t.Errorf("per query %v, want [0.5 1 0.75]", r.PerQuery)
	}
}
