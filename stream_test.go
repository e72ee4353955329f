package spann

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// ServeQueries answers every query it receives exactly once, as Search
// does; a bad or cancelled query gets its error and the others are
// unaffected; the workers it used serve batches afterwards; a closed
// Index answers with ErrClosed.
func TestServeQueries(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 30, 8, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	p := SearchParams{NProbe: 16}
	want := make([][]Neighbor, f.q.N)
	for i := range want {
		if want[i], err = ix.Search(f.q.Row(i), 10, p); err != nil {
			t.Fatal(err)
		}
	}
	queries := make(chan *StreamQuery)
	var serving sync.WaitGroup
	for w := 0; w < 2; w++ {
		serving.Add(1)
		go func() { defer serving.Done(); ix.ServeQueries(queries, 4) }()
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	const rounds = 5
	got := make([][]Neighbor, rounds*f.q.N)
	errs := make([]error, rounds*f.q.N)
	calls := make([]int, rounds*f.q.N)
	var mu sync.Mutex
	var answered sync.WaitGroup
	for i := range got {
		q := &StreamQuery{Query: f.q.Row(i % f.q.N), K: 10, Params: p}
		switch i % 7 {
		case 3:
			q.K = 0 // refused
		case 5:
			q.Ctx = cancelled
		}
		q.Done = func(res []Neighbor, st *SearchStats, lat time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			got[i], errs[i] = slices.Clone(res), err
			calls[i]++
			answered.Done()
		}
		answered.Add(1)
		queries <- q
	}
	answered.Wait()
	close(queries)
	serving.Wait()
	for i := range got {
		switch {
		case calls[i] != 1:
			t.Fatalf("query %d answered %d times", i, calls[i])
		case i%7 == 3:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "k=0") {
				t.Errorf("query %d with k 0: %v", i, errs[i])
			}
		case i%7 == 5:
			if !errors.Is(errs[i], context.Canceled) {
				t.Errorf("cancelled query %d: %v", i, errs[i])
			}
		case errs[i] != nil || !slices.Equal(got[i], want[i%f.q.N]):
			t.Errorf("query %d: %v %v, want %v", i, got[i], errs[i], want[i%f.q.N])
		}
	}
	// The pooled workers carry no cancelled context into a batch.
	res, err := ix.SearchBatch(f.q.Data, 10, p, 2)
	if err != nil {
		t.Fatal(err)
	}
	for q := range want {
		if !slices.Equal(res.IDs[q*10:(q+1)*10], idsOf(want[q])) {
			t.Fatalf("batch after the stream, query %d", q)
		}
	}
	ix.Close()
	closed := make(chan *StreamQuery, 1)
	var cerr error
	closed <- &StreamQuery{Query: f.q.Row(0), K: 10, Done: func(_ []Neighbor, _ *SearchStats, _ time.Duration, err error) { cerr = err }}
	close(closed)
	ix.ServeQueries(closed, 0)
	if !errors.Is(cerr, ErrClosed) {
		t.Fatalf("a closed index: %v", cerr)
	}
}

func idsOf(ns []Neighbor) []int32 {
	out := make([]int32, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}
