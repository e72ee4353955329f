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

func TestAveragePrecision(t *testing.T) {
	rr := func(rows ...[]int32) *datasets.RangeResults {
		r := &datasets.RangeResults{Offsets: []int{0}}
		for _, row := range rows {
			for i, id := range row {
				r.IDs = append(r.IDs, id)
				r.Dists = append(r.Dists, float32(i+1))
			}
			r.Offsets = append(r.Offsets, len(r.IDs))
		}
		return r
	}
	gt := rr([]int32{1, 2}, []int32{3, 4})
	for _, c := range []struct {
		res  *datasets.RangeResults
		want float64
	}{
		{rr([]int32{1, 2}, []int32{3, 4}), 1},
		{rr([]int32{1}, []int32{3}), 0.5}, // half found, all precise
		{rr([]int32{}, []int32{}), 0},     // nothing found
		// Within distance 1: 9 (false) and 3: P 1/2, R 1/4; within 2: P 3/4,
		// R 3/4; within 3: P 4/5, R 1. AP = 1/8 + 3/8 + 1/5.
		{rr([]int32{9, 1, 2}, []int32{3, 4}), 0.7},
	} {
		got, err := AveragePrecision(gt, c.res)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%v: AP %v, want %v", c.res.IDs, got, c.want)
		}
	}
}
