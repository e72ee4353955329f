package spann

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// Filtered searches return only matching vectors; a filter matching few
// enough vectors for every home to be read is answered exactly, and wider
// ones (the homes plan and the walk) with high recall.
func TestFilteredSearch(t *testing.T) {
	f, bv, labels := labelledFixture(t, 6000, 60, 2000, 4)
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	bms := labels.Bitmaps()
	filters, matches, err := datasets.GenerateFilters(labels, bms, f.q.N, 3)
	if err != nil {
		t.Fatal(err)
	}
	allowed := make([]*roaring.Bitmap, f.q.N)
	rows := make([][]int32, f.q.N)
	for i := range rows {
		rows[i] = filters.Row(i)
		allowed[i], _ = datasets.Matching(bms, rows[i])
	}
	gt, err := eval.ExactKNN(bv, f.q, eval.GTOptions{K: 10, Metric: vec.L2, Allowed: allowed})
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	res, err := ix.SearchBatchFiltered(context.Background(), f.q.Data, rows, 10, SearchParams{NProbe: 24}, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := eval.RecallAt(gt, &datasets.Results{N: f.q.N, K: 10, IDs: res.IDs}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < f.q.N; q++ {
		for _, id := range res.IDs[q*10 : (q+1)*10] {
			if id >= 0 && !allowed[q].Contains(uint32(id)) {
				t.Fatalf("query %d (filter %v): id %d does not carry the filter", q, rows[q], id)
			}
		}
		// Few matches: all their homes are read, the answer is exact.
		if matches[q] <= 20 && r.PerQuery[q] != 1 {
			t.Errorf("query %d: %d matches, recall %.2f, want exact", q, matches[q], r.PerQuery[q])
		}
	}
	if r.Mean < 0.9 || res.Stats.HomesPlan == 0 || res.Stats.HomesPlan == f.q.N {
		t.Errorf("recall %.3f; %d of %d queries by the homes plan (want some, not all)", r.Mean, res.Stats.HomesPlan, f.q.N)
	}
	// Search with SearchParams.Filter answers as the batch does.
	one, err := ix.Search(f.q.Row(7), 10, SearchParams{NProbe: 24, Filter: rows[7]})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range one {
		if n.ID != res.IDs[70+i] {
			t.Fatalf("Search rank %d: %d, the batch found %d", i, n.ID, res.IDs[70+i])
		}
	}
	for _, c := range []struct {
		filter []int32
		want   string
	}{
		{[]int32{}, "names no label"},
		{[]int32{3, 2000}, "label 2000, but the index's labels are 0..1999"},
		{[]int32{-1}, "label -1"},
	} {
		if _, err := ix.Search(f.q.Row(0), 10, SearchParams{Filter: c.filter}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("filter %v: %v, want %q", c.filter, err, c.want)
		}
	}
	if _, err := ix.SearchBatchFiltered(context.Background(), f.q.Data, rows[:5], 10, SearchParams{}, 1); err == nil || !strings.Contains(err.Error(), "5 filters for 60 queries") {
		t.Errorf("too few filters: %v", err)
	}
	rows[9] = nil
	if _, err := ix.SearchBatchFiltered(context.Background(), f.q.Data, rows, 10, SearchParams{}, 1); err == nil || !strings.Contains(err.Error(), "query 9: the filter names no label") {
		t.Errorf("a query without a filter: %v", err)
	}
}

func TestFilterWithoutLabels(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1000, 3, 8, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if _, err := ix.Search(f.q.Row(0), 5, SearchParams{Filter: []int32{1}}); !errors.Is(err, ErrNoLabels) {
		t.Errorf("filter on an index without labels: %v", err)
	}
}

// MatchCount after Close is ErrClosed, not a read of freed memory.
func TestMatchCountClosed(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1000, 3, 8, posting.DefaultCodec)
	labels, _ := datasets.NewLabels(make([][]int32, 1000), 3)
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ix.MatchCount([]int32{1}); n != 0 || err != nil {
		t.Fatalf("MatchCount: %d, %v", n, err)
	}
	ix.Close()
	if _, err := ix.MatchCount([]int32{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
