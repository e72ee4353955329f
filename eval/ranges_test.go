package eval

import (
	"math"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
)

// ExactRange returns exactly the rows within the radius, sorted.
func TestExactRange(t *testing.T) {
	basePath, baseM := genFile(t, datasets.Uint8, 2000, 16, 0)
	_, qm := genFile(t, datasets.Uint8, 10, 16, 1)
	base, _ := datasets.OpenVectors(basePath, 0)
	defer base.Close()
	sp, _ := vec.NewSpace[uint8](vec.L2)
	b := datasets.Rows[uint8](baseM.Data)
	// A radius around the 20th nearest distance of query 0.
	knn := naiveKNN(sp, b, datasets.Rows[uint8](qm.Data), 16, 20)
	_, d := knn.Row(0)
	radius := d[19]
	got, err := ExactRange(base, qm, radius, GTOptions{Metric: vec.L2, Threads: 3, BlockRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < qm.N; q++ {
		ids, dists := got.Row(q)
		want := 0
		for i := 0; i < 2000; i++ {
			if sp.Dist(qm.Row(q), b[i*16:(i+1)*16]) <= radius {
				want++
			}
		}
		if len(ids) != want {
			t.Fatalf("query %d: %d within %v, want %d", q, len(ids), radius, want)
		}
		for i := range ids {
			if dists[i] != sp.Dist(qm.Row(q), b[int(ids[i])*16:int(ids[i]+1)*16]) || dists[i] > radius || (i > 0 && dists[i] < dists[i-1]) {
				t.Fatalf("query %d result %d: id %d at %v", q, i, ids[i], dists[i])
			}
		}
	}
	if _, err := ExactRange(base, qm, -1, GTOptions{}); err == nil {
		t.Error("negative radius accepted")
	}
	if _, err := ExactRange(base, qm, float32(math.NaN()), GTOptions{}); err == nil {
		t.Error("NaN radius accepted")
	}
}

// AveragePrecision follows big-ann-benchmarks' compute_AP: checked
// against values worked out by hand from its definition.
func TestAveragePrecision(t *testing.T) {
	// One query, true results {1, 2}, distances 0 and 99 (thresholds
	// -0.001, 0.999, …, 99: the one at 0 is inside from the second
	// threshold on, the one at 99 never, being at the largest distance).
	gt := &datasets.RangeResults{Offsets: []int{0, 2}, IDs: []int32{1, 2}, Dists: []float32{0, 99}}
	exact := &datasets.RangeResults{Offsets: []int{0, 2}, IDs: []int32{1, 2}, Dists: []float32{0, 99}}
	// (p, r): (1, 0), then (1, 0.5) for every later threshold: area 0.5.
	if ap, err := AveragePrecision(gt, exact); err != nil || math.Abs(ap-0.5) > 1e-12 {
		t.Errorf("exact answer: AP %v, %v; want 0.5", ap, err)
	}
	// A false result at 0 as well: (1, 0), then (0.5, 0.5): area
	// 0.5·(1+0.5)/2 = 0.375.
	noisy := &datasets.RangeResults{Offsets: []int{0, 3}, IDs: []int32{1, 7, 2}, Dists: []float32{0, 0, 99}}
	if ap, _ := AveragePrecision(gt, noisy); math.Abs(ap-0.375) > 1e-12 {
		t.Errorf("noisy answer: AP %v, want 0.375", ap)
	}
	empty := &datasets.RangeResults{Offsets: []int{0, 0}}
	if ap, _ := AveragePrecision(gt, empty); ap != 0 {
		t.Errorf("empty answer: AP %v, want 0", ap)
	}
	if _, err := AveragePrecision(gt, &datasets.RangeResults{Offsets: []int{0, 0, 0}}); err == nil {
		t.Error("row count mismatch accepted")
	}
}
