package spann

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/memindex"
	"github.com/gospann/spann/posting"
)

// splitFixture is newFixture's data built with posting limit 30, and
// 1,200 more vectors of the same mixture, those nearest base vector 0
// (so that their postings overflow).
func splitFixture(t *testing.T) (*fixture, *datasets.Matrix, *datasets.Matrix) {
	t.Helper()
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	limited := filepath.Join(f.dir, "limited")
	if _, err := Build(context.Background(), BuildOptions{Base: f.base, Out: limited, Metric: vec.L2, HeadRatio: 0.1,
		Replicas: 4, PostingLimit: 30, Codec: posting.DefaultCodec, Threads: 2, Seed: 3, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	f.index = limited
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.dir, "more.u8bin")
	if err := datasets.Generate(p, datasets.GenParams{N: 8000, Dim: 16, Type: datasets.Uint8, Seed: 11, Clusters: 6, Stream: 2}, 2, nil); err != nil {
		t.Fatal(err)
	}
	more, err := datasets.LoadVectors(p, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := vec.NewSpace[uint8](vec.L2)
	near, err := memindex.BruteForce(sp, datasets.Rows[uint8](more.Data), 16, datasets.Rows[uint8](base.Row(0)), 1200, nil)
	if err != nil {
		t.Fatal(err)
	}
	extra := &datasets.Matrix{N: len(near), Dim: 16}
	for _, nb := range near {
		extra.Data = append(extra.Data, more.Row(int(nb.ID))...)
	}
	return f, base, extra
}

// A checkpoint splits postings that inserts took past the posting limit:
// new heads join the heads, the graph and the directory (heads-1 and
// graph-1 files of the new generation), no posting is lost or damaged
// (exhaustive search equals brute force over the live set), the head
// graph still finds the nearest heads, inserts after it can go to the new
// heads, and all of it survives reopening.
func TestSplit(t *testing.T) {
	f, base, extra := splitFixture(t)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	heads0 := len(ix.eng.headIDs())
	if _, err := ix.Insert(extra.Data[:1000*16]); err != nil {
		t.Fatal(err)
	}
	dead := map[int32]bool{3: true, 3004: true}
	if err := ix.Delete([]int32{3, 3004}); err != nil {
		t.Fatal(err)
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	heads1 := len(ix.eng.headIDs())
	m, _ := indexfile.ReadManifest(f.index)
	if heads1 <= heads0 || m.Heads != heads1 || m.Current(indexfile.HeadsFile) != "heads-000001.bin" || m.Current(indexfile.GraphFile) != "graph-000001.bin" {
		t.Fatalf("heads %d -> %d, manifest %d, files %v", heads0, heads1, m.Heads, m.Files)
	}
	view := ix.store.Snapshot()
	maxCount := 0
	for h := range int32(view.Len()) {
		maxCount = max(maxCount, int(view.Entry(h).Count))
	}
	t.Logf("%d postings split; the largest posting now holds %d", heads1-heads0, maxCount)
	all := &datasets.Matrix{N: 4000, Dim: 16, Data: append(bytes.Clone(base.Data), extra.Data[:1000*16]...)}
	checkLive(t, f, ix, all, dead)
	checkHeadGraph(t, ix)
	// Inserts now reach the new heads too.
	first, err := ix.Insert(extra.Data[1000*16:])
	if err != nil {
		t.Fatal(err)
	}
	all.Data = append(all.Data, extra.Data[1000*16:]...)
	all.N += 200
	newHead := false
	buf := ix.buf.Load()
	for h := heads0; h < len(buf.lists); h++ {
		newHead = newHead || len(buf.list(int32(h))) > 0
	}
	if !newHead {
		t.Error("no insert after the split went to a new head")
	}
	checkLive(t, f, ix, all, dead)
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ix, all, dead)
	ix.Close()
	ro, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ro, all, dead)
	if got, err := ro.Search(extra.Row(1100), 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1}); err != nil || got[0].ID != first+100 {
		t.Fatalf("reopened: inserted vector: %v %v", got, err)
	}
	ro.Close()
	if r, err := Check(f.index); err != nil || r.Heads < heads1 {
		t.Fatalf("check: %v %+v", err, r)
	}
}

// checkHeadGraph checks the head graph's nearest heads against brute force
// over the head vectors, for the fixture's queries: recall@10 ≥ 0.95.
func checkHeadGraph(t *testing.T, ix *Index) {
	t.Helper()
	e := ix.eng.(*engineT[uint8])
	set := e.current()
	s := set.graph.NewSearcher()
	qs, _ := datasets.LoadVectors(filepath.Join(filepath.Dir(ix.dir), "query.u8bin"), 0, 0)
	hits, total := 0, 0
	for q := 0; q < qs.N; q++ {
		v := datasets.Rows[uint8](qs.Row(q))
		exact, err := memindex.BruteForce(e.sp, set.vecs, ix.dim, v, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := s.Search(v, 10, 40)
		for _, g := range got {
			if slices.ContainsFunc(exact, func(x memindex.Neighbor) bool { return x.ID == g.ID || x.Dist == g.Dist }) {
				hits++
			}
		}
		total += len(exact)
	}
	if r := float64(hits) / float64(total); r < 0.95 {
		t.Fatalf("head graph recall@10 %.3f after splits", r)
	} else {
		t.Logf("head graph recall@10 %.3f over %d heads", r, set.len())
	}
}

// Splitting keeps recall near the inserted vectors for the vectors it
// scans: the same 1,000 inserts into one index folded by a checkpoint
// with splits and by one without, queried with 200 more vectors of the
// same region; at the postings that scan at least as many vectors as 8
// unsplit postings do, recall is within 0.02.
func TestSplitQuality(t *testing.T) {
	f, base, extra := splitFixture(t)
	queries := extra.Data[1000*16:]
	all := &datasets.Matrix{N: 4000, Dim: 16, Data: append(bytes.Clone(base.Data), extra.Data[:1000*16]...)}
	copyDir(t, f.index, f.index+"-nosplit")
	open := func(dir string, noSplit bool) *Index {
		ix, err := Open(dir, Options{Writable: true, noSplit: noSplit})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ix.Insert(extra.Data[:1000*16]); err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		return ix
	}
	measure := func(ix *Index, nprobe int) (recall, vectors float64) {
		res, err := ix.SearchBatch(queries, 10, SearchParams{NProbe: nprobe, Eps: -1}, 1)
		if err != nil {
			t.Fatal(err)
		}
		hits := 0
		for q := 0; q < 200; q++ {
			want := liveTopK(all, queries[q*16:(q+1)*16], nil, 10)
			for r := 0; r < 10; r++ {
				if res.Dists[q*10+r] <= want[9] {
					hits++
				}
			}
		}
		return float64(hits) / 2000, float64(res.Stats.Vectors) / 200
	}
	unsplit := open(f.index+"-nosplit", true)
	defer unsplit.Close()
	split := open(f.index, false)
	defer split.Close()
	if len(split.eng.headIDs()) == len(unsplit.eng.headIDs()) {
		t.Fatal("nothing split")
	}
	for _, np := range []int{4, 6, 8, 10, 12, 16, 24} {
		r1, v1 := measure(unsplit, np)
		r2, v2 := measure(split, np)
		t.Logf("nprobe %d: unsplit %.3f@%.0f split %.3f@%.0f", np, r1, v1, r2, v2)
	}
	wantRecall, wantVectors := measure(unsplit, 8)
	for nprobe := 8; nprobe <= 64; nprobe++ {
		r, v := measure(split, nprobe)
		if v >= wantVectors {
			t.Logf("recall@10: %.3f at nprobe %d with splits (%.0f vectors scanned), %.3f at 8 without (%.0f)", r, nprobe, v, wantRecall, wantVectors)
			if r < wantRecall-0.02 {
				t.Fatalf("splits lose recall: %.3f against %.3f", r, wantRecall)
			}
			return
		}
	}
	t.Fatal("no nprobe scans as many vectors")
}

// copyDir copies the files of directory src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// Everything at once (-race): one goroutine inserts rows crowded into one
// region and deletes, another checkpoints (folding, splitting postings,
// extending the head graph), two search; every search succeeds and never
// returns an id deleted before it began; afterwards exhaustive search
// equals brute force over the live set, before and after reopening.
func TestSplitConcurrent(t *testing.T) {
	f, base, extra := splitFixture(t)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	var mu sync.Mutex
	dead := map[int32]bool{}
	all := &datasets.Matrix{N: base.N, Dim: 16, Data: bytes.Clone(base.Data)}
	stop := make(chan struct{})
	var bg, ck sync.WaitGroup
	for g := 0; g < 2; g++ {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				before := maps.Clone(dead)
				mu.Unlock()
				res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 8, Eps: -1}, 1)
				if err != nil {
					t.Error(err)
					return
				}
				for _, id := range res.IDs {
					if before[id] {
						t.Errorf("deleted id %d returned", id)
						return
					}
				}
			}
		}()
	}
	ck.Add(1)
	go func() {
		defer ck.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := ix.Checkpoint(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < extra.N; i += 50 {
		first, err := ix.Insert(extra.Data[i*16 : (i+50)*16])
		if err != nil {
			t.Fatal(err)
		}
		del := []int32{int32(i), first + 7}
		if err := ix.Delete(del); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		all.Data = append(all.Data, extra.Data[i*16:(i+50)*16]...)
		all.N += 50
		for _, id := range del {
			dead[id] = true
		}
		mu.Unlock()
	}
	close(stop)
	ck.Wait()
	bg.Wait()
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n := len(ix.eng.headIDs()); n <= 300 {
		t.Fatalf("%d heads: nothing split", n)
	}
	checkLive(t, f, ix, all, dead)
	ix.Close()
	if ix, err = Open(f.index, Options{}); err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ix, all, dead)
	if _, err := Check(f.index); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint merges away the postings that deletes emptied: their heads
// leave the graph (unreachable, id RemovedHead in heads-G.bin), each live
// head vector moves to its nearest remaining head's posting, and search
// stays exact over the live set, through later checkpoints and reopening.
func TestMergeAway(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	// Every vector of 5 postings deleted; their heads stay live vectors.
	dead := map[int32]bool{}
	var del []int32
	emptied := []int32{3, 50, 77, 120, 200}
	eachPosting(t, ix, ix.store.Snapshot(), func(h int32, ids []uint32, _ []byte) {
		if !slices.Contains(emptied, h) {
			return
		}
		for _, id := range ids {
			if !dead[int32(id)] {
				dead[int32(id)] = true
				del = append(del, int32(id))
			}
		}
	})
	if err := ix.Delete(del); err != nil {
		t.Fatal(err)
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	set := ix.eng.(*engineT[uint8]).current()
	gone := 0
	for _, h := range emptied {
		if set.removed(h) {
			gone++
		}
	}
	if gone == 0 || len(set.gone) != gone || set.graph.Reachable() != set.len()-gone {
		t.Fatalf("%d of the emptied heads removed, %d gone in all, %d of %d reachable", gone, len(set.gone), set.graph.Reachable(), set.len())
	}
	t.Logf("%d of %d emptied postings merged away", gone, len(emptied))
	checkLive(t, f, ix, base, dead)
	stored := storedRows(t, ix)
	for _, h := range emptied {
		id := ix.heads.IDs[h] // the head's vector, as built
		if !dead[int32(id)] && !bytes.Equal(stored[int32(id)], base.Row(int(id))) {
			t.Fatalf("the vector of removed head %d (id %d) is stored nowhere", h, id)
		}
	}
	// Later checkpoints keep them out; reopening too.
	extra := extraRows(t, 300, 16, 86)
	if _, err := ix.Insert(extra.Data); err != nil {
		t.Fatal(err)
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	all := &datasets.Matrix{N: 3300, Dim: 16, Data: append(bytes.Clone(base.Data), extra.Data...)}
	checkLive(t, f, ix, all, dead)
	ix.Close()
	if ix, err = Open(f.index, Options{Writable: true}); err != nil {
		t.Fatal(err)
	}
	if got := len(ix.eng.(*engineT[uint8]).current().gone); got != gone {
		t.Fatalf("reopened: %d heads removed, want %d", got, gone)
	}
	checkLive(t, f, ix, all, dead)
	if _, err := Check(f.index); err != nil {
		t.Fatal(err)
	}
}
