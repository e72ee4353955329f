package spann

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// Range search finds exactly the vectors within the radius when it reads
// every posting, and nearly all of them with a modest head budget.
func TestSearchRange(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 4000, 30, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	bv, _ := datasets.OpenVectors(f.base, 0)
	defer bv.Close()
	// A radius giving the median query about 20 results: the 20th
	// neighbour's distance of the ground truth, median over queries.
	_, d := f.gt.Row(0)
	radius := d[9] * 1.5
	gt, err := eval.ExactRange(bv, f.q, radius, eval.GTOptions{Metric: vec.L2})
	if err != nil {
		t.Fatal(err)
	}
	rangeResults := func(res *RangeBatchResult) *datasets.RangeResults {
		r := &datasets.RangeResults{Offsets: res.Offsets}
		for _, n := range res.Neighbors {
			r.IDs = append(r.IDs, n.ID)
			r.Dists = append(r.Dists, n.Dist)
		}
		return r
	}
	all, err := ix.SearchRangeBatch(context.Background(), f.q.Data, radius, SearchParams{NProbe: len(ix.eng.headIDs())}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < f.q.N; q++ {
		ids, dists := gt.Row(q)
		got := all.Row(q)
		if len(got) != len(ids) {
			t.Fatalf("query %d: %d results, %d within %v", q, len(got), len(ids), radius)
		}
		for i := range got {
			if got[i].ID != ids[i] || got[i].Dist != dists[i] {
				t.Fatalf("query %d result %d: %v, want %d at %v", q, i, got[i], ids[i], dists[i])
			}
		}
	}
	some, err := ix.SearchRangeBatch(context.Background(), f.q.Data, radius, SearchParams{NProbe: 8, RangeSlack: 0.5}, 2)
	if err != nil {
		t.Fatal(err)
	}
	ap, err := eval.AveragePrecision(gt, rangeResults(some))
	if err != nil || ap < 0.9 || some.Stats.Postings >= all.Stats.Postings/4 {
		t.Errorf("AP %.3f (%v) reading %d postings (all: %d)", ap, err, some.Stats.Postings, all.Stats.Postings)
	}
	one, _, err := ix.SearchRange(context.Background(), f.q.Row(3), radius, SearchParams{NProbe: 8, RangeSlack: 0.5})
	if err != nil || len(one) != len(some.Row(3)) {
		t.Fatalf("SearchRange: %d results, the batch %d (%v)", len(one), len(some.Row(3)), err)
	}
	// A k-NN search after a range search on the same worker (review: the
	// range answer's scratch once left the k-NN one half-grown).
	fresh, err := Open(f.index, Options{}) // one worker
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, _, err := fresh.SearchRange(context.Background(), f.q.Row(1), radius*4, SearchParams{NProbe: 8}); err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Search(f.q.Row(1), 10, SearchParams{NProbe: 8}); err != nil || len(got) != 10 {
		t.Fatalf("Search after SearchRange: %d, %v", len(got), err)
	}
	for _, bad := range []float32{-1, float32(math.NaN()), float32(math.Inf(1))} {
		if _, _, err := ix.SearchRange(context.Background(), f.q.Row(0), bad, SearchParams{}); err == nil ||
			!strings.Contains(err.Error(), "must be a finite distance") && !strings.Contains(err.Error(), "must be ≥ 0") {
			t.Errorf("radius %v: %v", bad, err)
		}
	}
}

// Under inner product distances are negated dot products, so radii are
// negative; reading every posting, range search is exact there too.
func TestSearchRangeIP(t *testing.T) {
	f := newFixture(t, datasets.Float32, vec.IP, 2000, 10, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	_, d := f.gt.Row(0)
	radius := d[9]
	if radius >= 0 {
		t.Fatalf("IP distance %v: want a negative radius for this test", radius)
	}
	bv, _ := datasets.OpenVectors(f.base, 0)
	defer bv.Close()
	gt, err := eval.ExactRange(bv, f.q, radius, eval.GTOptions{Metric: vec.IP})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ix.SearchRangeBatch(context.Background(), f.q.Data, radius, SearchParams{NProbe: len(ix.eng.headIDs())}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < f.q.N; q++ {
		ids, _ := gt.Row(q)
		if got := res.Row(q); len(got) != len(ids) {
			t.Fatalf("query %d: %d results, %d within %v", q, len(got), len(ids), radius)
		}
	}
}
