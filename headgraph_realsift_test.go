package spann

import (
	"os"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/testutil"
	"github.com/gospann/spann/memindex"
)

// TestHeadGraphRecallRealsift measures the head graph of a built index
// against brute force over the same heads: recall@64 and time per query, for
// the first 1,000 queries. It needs an index (SPANN_HEADS_INDEX, e.g.
// out/bench-realsift-1M/index made by scripts/bench-realsift.sh) and skips
// otherwise. Run:
//
//	SPANN_HEADS_INDEX=out/bench-realsift-1M/index go test -run HeadGraphRecall -v .
func TestHeadGraphRecallRealsift(t *testing.T) {
	dir := os.Getenv("SPANN_HEADS_INDEX")
	if dir == "" {
		t.Skip("set SPANN_HEADS_INDEX to an index directory built from realsift-1M")
	}
	qpath := testutil.RequireDataFile(t, "realsift-1M/query.u8bin")
	ix, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	eng, ok := ix.eng.(*engineT[uint8])
	if !ok {
		t.Skip("not a uint8 index")
	}
	qs, err := datasets.LoadVectors(qpath, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	set := eng.current()
	s := set.graph.NewSearcher()
	const m = 64
	var exact []memindex.Neighbor
	for _, list := range []int{64, 96, 128} {
		hits, total := 0, 0
		var spent time.Duration
		for q := 0; q < qs.N; q++ {
			v := datasets.Rows[uint8](qs.Row(q))
			t0 := time.Now()
			got := s.Search(v, m, list)
			spent += time.Since(t0)
			exact, err = memindex.BruteForce(eng.sp, set.vecs, ix.dim, v, m, exact[:0])
			if err != nil {
				t.Fatal(err)
			}
			kth := exact[m-1].Dist
			for _, g := range got {
				if g.Dist <= kth {
					hits++
				}
			}
			total += m
		}
		t.Logf("heads %d, m %d, list %d: recall@%d %.4f, %.1f µs per query (1 thread)",
			ix.heads.Len(), m, list, m, float64(hits)/float64(total), float64(spent.Microseconds())/float64(qs.N))
	}
}
