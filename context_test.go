package spann

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// cancellingReader cancels a context during its first read, as a client
// hanging up while the postings are on their way would.
type cancellingReader struct {
	iouring.Reader
	cancel context.CancelFunc
}

func (c cancellingReader) ReadEach(reqs []iouring.Request, done func(int)) error {
	c.cancel()
	return c.Reader.ReadEach(reqs, done)
}

func (c cancellingReader) Read(reqs []iouring.Request) error {
	return c.ReadEach(reqs, func(int) {})
}

// A search whose context ends while its postings are read scans none of
// them and returns the context's error; one whose context ended before is
// not searched; a live context answers as Search does; a batch stops.
func TestSearchContext(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 30, 8, posting.DefaultCodec)
	ctx, cancel := context.WithCancel(context.Background())
	ix, err := Open(f.index, Options{IO: "pread", WrapReader: func(r iouring.Reader) iouring.Reader {
		return cancellingReader{Reader: r, cancel: cancel}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	p := SearchParams{NProbe: 16}
	var st SearchStats
	got, err := ix.SearchContext(ctx, f.q.Row(0), 10, p, nil, &st)
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Fatalf("cancelled during its reads: %v, %v", got, err)
	}
	if st.Postings == 0 || st.Vectors != 0 {
		t.Fatalf("cancelled during its reads: %d postings read, %d vectors scanned; want reads started and none scanned", st.Postings, st.Vectors)
	}
	if _, err := ix.SearchContext(ctx, f.q.Row(0), 10, p, nil, &st); !errors.Is(err, context.Canceled) {
		t.Fatalf("context done before: %v", err)
	}
	// The worker that saw the cancellation answers the next query whole.
	want, err := ix.Search(f.q.Row(1), 10, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err = ix.SearchContext(context.Background(), f.q.Row(1), 10, p, nil, nil)
	if err != nil || !slices.Equal(got, want) || len(got) != 10 {
		t.Fatalf("after a cancellation: %v %v, want %v", got, err, want)
	}
	live, stop := context.WithCancel(context.Background())
	defer stop()
	if got, err = ix.SearchContext(live, f.q.Row(1), 10, p, nil, nil); err != nil || !slices.Equal(got, want) {
		t.Fatalf("live context: %v %v, want %v", got, err, want)
	}
	done, end := context.WithCancel(context.Background())
	end()
	if _, err := ix.SearchBatchContext(done, f.q.Data, 10, p, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("batch with a done context: %v", err)
	}
	res, err := ix.SearchBatchContext(live, f.q.Data, 10, p, 2)
	if err != nil || len(res.Query) != f.q.N || res.Query[1].Postings == 0 {
		t.Fatalf("batch: %v", err)
	}
	for i := 0; i < 10; i++ {
		if res.IDs[10+i] != want[i].ID {
			t.Fatalf("batch query 1 rank %d: %d, want %d", i, res.IDs[10+i], want[i].ID)
		}
	}
	var sum SearchStats
	for _, q := range res.Query {
		sum.Add(q)
	}
	if sum.Pages != res.Stats.Pages || sum.Postings != res.Stats.Postings {
		t.Fatalf("per-query stats sum to %d pages, %d postings; the batch's are %d, %d", sum.Pages, sum.Postings, res.Stats.Pages, res.Stats.Postings)
	}
}
