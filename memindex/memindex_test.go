package memindex

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gospann/spann/internal/vec"
)

// clustered returns n seeded vectors of dimension dim drawn around
// `clusters` random centres (Gaussian spread sigma), clamped to [lo, hi].
func clustered[T vec.Elem](seed uint64, n, dim, clusters int, lo, hi, sigma float64) []T {
	rng := rand.New(rand.NewPCG(seed, 7))
	centres := make([]float64, clusters*dim)
	for i := range centres {
		centres[i] = lo + rng.Float64()*(hi-lo)
	}
	out := make([]T, n*dim)
	for i := 0; i < n; i++ {
		c := rng.IntN(clusters)
		for j := 0; j < dim; j++ {
			x := centres[c*dim+j] + rng.NormFloat64()*sigma
			x = min(max(x, lo), hi)
			out[i*dim+j] = roundTo[T](x)
		}
	}
	return out
}

func mustSpace[T vec.Elem](t testing.TB, m vec.Metric) vec.Space[T] {
	t.Helper()
	sp, err := vec.NewSpace[T](m)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func mustBuild[T vec.Elem](t testing.TB, sp vec.Space[T], vectors []T, dim int, p Params) *Graph[T] {
	t.Helper()
	g, err := Build(sp, vectors, dim, p)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// recall returns the mean fraction of the exact top-m found by Search with
// the given budget, over all queries.
func recall[T vec.Elem](t testing.TB, g *Graph[T], sp vec.Space[T], vectors, queries []T, dim, m, budget int) float64 {
	t.Helper()
	s := g.NewSearcher()
	var exact []Neighbor
	hits, total := 0, 0
	for qi := 0; qi < len(queries)/dim; qi++ {
		q := queries[qi*dim : (qi+1)*dim]
		var err error
		exact, err = BruteForce(sp, vectors, dim, q, m, exact)
		if err != nil {
			t.Fatal(err)
		}
		hits += overlap(s.Search(q, m, budget), exact)
		total += len(exact)
	}
	return float64(hits) / float64(total)
}

// overlap counts the results whose id is in exact, or whose distance ties
// the m-th exact distance (any of the tied ids is a correct answer).
func overlap(got, exact []Neighbor) int {
	if len(exact) == 0 {
		return 0
	}
	worst := exact[len(exact)-1].Dist
	ids := make(map[int32]bool, len(exact))
	for _, e := range exact {
		ids[e.ID] = true
	}
	hits := 0
	for _, r := range got {
		if ids[r.ID] || r.Dist <= worst {
			hits++
		}
	}
	return min(hits, len(exact))
}

func TestRecallClusteredU8(t *testing.T) {
	const n, dim = 6000, 32
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](1, n+200, dim, 40, 0, 255, 25)
	base, queries := data[:n*dim], data[n*dim:]
	g := mustBuild(t, sp, base, dim, Params{Threads: 2, Seed: 3})
	if got := g.Reachable(); got != n {
		t.Errorf("reachable nodes = %d, want %d", got, n)
	}
	r10 := recall(t, g, sp, base, queries, dim, 10, 40)
	r64 := recall(t, g, sp, base, queries, dim, 64, 128)
	t.Logf("recall@10 (L=40) = %.4f, recall@64 (L=128) = %.4f", r10, r64)
	if r10 < 0.97 {
		t.Errorf("recall@10 = %.4f, want ≥ 0.97", r10)
	}
	if r64 < 0.97 {
		t.Errorf("recall@64 = %.4f, want ≥ 0.97", r64)
	}
	// A bigger budget must not be worse.
	if r := recall(t, g, sp, base, queries, dim, 10, 200); r < r10 {
		t.Errorf("recall@10 with L=200 is %.4f < %.4f with L=40", r, r10)
	}
}

func TestRecallFloat32Metrics(t *testing.T) {
	const n, dim = 3000, 16
	for _, m := range []vec.Metric{vec.L2, vec.IP, vec.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			sp := mustSpace[float32](t, m)
			data := clustered[float32](2, n+100, dim, 30, -1, 1, 0.15)
			if m == vec.Cosine {
				for i := 0; i < len(data)/dim; i++ {
					vec.Normalize(data[i*dim : (i+1)*dim])
				}
			}
			base, queries := data[:n*dim], data[n*dim:]
			g := mustBuild(t, sp, base, dim, Params{Degree: 24, Threads: 2, Seed: 1})
			r := recall(t, g, sp, base, queries, dim, 10, 64)
			t.Logf("%s recall@10 (L=64) = %.4f", m, r)
			// IP is not a metric (a point need not be its own nearest
			// neighbour), so its greedy search is weaker.
			floor := 0.95
			if m == vec.IP {
				floor = 0.85
			}
			if r < floor {
				t.Errorf("recall@10 = %.4f, want ≥ %.2f", r, floor)
			}
		})
	}
}

func TestRecallInt8(t *testing.T) {
	const n, dim = 2000, 24
	sp := mustSpace[int8](t, vec.L2)
	data := clustered[int8](5, n+100, dim, 20, -128, 127, 20)
	base, queries := data[:n*dim], data[n*dim:]
	g := mustBuild(t, sp, base, dim, Params{Degree: 16, Threads: 1})
	if r := recall(t, g, sp, base, queries, dim, 10, 48); r < 0.95 {
		t.Errorf("recall@10 = %.4f, want ≥ 0.95", r)
	}
}

// TestBuildIndependentOfThreads checks the documented determinism: the
// graph depends on the seed, not on the thread count. Run with -race to
// check the parallel build for data races.
func TestBuildIndependentOfThreads(t *testing.T) {
	const n, dim = 1500, 16
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](9, n, dim, 10, 0, 255, 30)
	g1 := mustBuild(t, sp, data, dim, Params{Degree: 12, Threads: 1, Seed: 4})
	g2 := mustBuild(t, sp, data, dim, Params{Degree: 12, Threads: 2, Seed: 4})
	g3 := mustBuild(t, sp, data, dim, Params{Degree: 12, Threads: 5, Seed: 4})
	for _, g := range []*Graph[uint8]{g2, g3} {
		if !bytes.Equal(g1.lists.data, g.lists.data) || !slices.Equal(g1.lists.rel, g.lists.rel) || g1.entry != g.entry {
			t.Fatal("graphs built with different thread counts differ")
		}
	}
	g4 := mustBuild(t, sp, data, dim, Params{Degree: 12, Threads: 2, Seed: 5})
	if bytes.Equal(g1.lists.data, g4.lists.data) {
		t.Error("different seeds gave identical graphs; the seed is not used")
	}
}

func TestGraphInvariants(t *testing.T) {
	const n, dim = 2000, 8
	sp := mustSpace[float32](t, vec.L2)
	data := clustered[float32](11, n, dim, 15, 0, 10, 1)
	g := mustBuild(t, sp, data, dim, Params{Degree: 10, BuildList: 30, Passes: 1, Threads: 2})
	for i := 0; i < n; i++ {
		nbs := g.Neighbors(int32(i))
		if len(nbs) == 0 || len(nbs) > 10 {
			t.Fatalf("node %d has %d neighbours", i, len(nbs))
		}
		seen := map[int32]bool{}
		for _, nb := range nbs {
			if nb == int32(i) || nb < 0 || int(nb) >= n || seen[nb] {
				t.Fatalf("node %d: bad or duplicate neighbour %d in %v", i, nb, nbs)
			}
			seen[nb] = true
		}
	}
	if got := g.Reachable(); got != n {
		t.Errorf("reachable = %d, want %d", got, n)
	}
}

func TestBruteForce(t *testing.T) {
	sp := mustSpace[uint8](t, vec.L2)
	const dim = 4
	// Rows 1 and 3 are equidistant from q; ties go to the smaller id.
	data := []uint8{
		9, 9, 9, 9,
		1, 0, 0, 0,
		0, 0, 0, 0,
		0, 1, 0, 0,
		5, 5, 5, 5,
	}
	q := []uint8{0, 0, 0, 0}
	got, err := BruteForce(sp, data, dim, q, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Neighbor{{2, 0}, {1, 1}, {3, 1}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	all, _ := BruteForce(sp, data, dim, q, 99, got)
	if len(all) != 5 || all[4].ID != 0 {
		t.Errorf("m > n: got %v", all)
	}
	if _, err := BruteForce(sp, data, dim, q[:3], 1, nil); err == nil {
		t.Error("query dimension mismatch accepted")
	}
	if _, err := BruteForce(sp, data[:7], dim, q, 1, nil); err == nil {
		t.Error("ragged vectors accepted")
	}
	if _, err := BruteForce(sp, data, dim, q, 0, nil); err == nil {
		t.Error("m = 0 accepted")
	}
}

func TestEdgeCases(t *testing.T) {
	sp := mustSpace[uint8](t, vec.L2)
	t.Run("n=1", func(t *testing.T) {
		v := []uint8{1, 2, 3}
		g := mustBuild(t, sp, v, 3, Params{})
		got := g.NewSearcher().Search([]uint8{0, 0, 0}, 5, 10)
		if len(got) != 1 || got[0].ID != 0 || got[0].Dist != 14 {
			t.Errorf("got %v", got)
		}
	})
	t.Run("n<degree and m>n", func(t *testing.T) {
		const n, dim = 7, 2
		data := clustered[uint8](3, n, dim, 2, 0, 255, 40)
		g := mustBuild(t, sp, data, dim, Params{Degree: 32, Threads: 2})
		q := []uint8{100, 100}
		got := g.NewSearcher().Search(q, 50, 0)
		exact, _ := BruteForce(sp, data, dim, q, 50, nil)
		if len(got) != n {
			t.Fatalf("got %d results, want all %d", len(got), n)
		}
		for i := range got {
			if got[i].Dist != exact[i].Dist {
				t.Errorf("result %d: %v, want %v", i, got[i], exact[i])
			}
		}
	})
	t.Run("dimension mismatch", func(t *testing.T) {
		if _, err := Build(sp, []uint8{1, 2, 3, 4, 5}, 2, Params{}); err == nil {
			t.Error("ragged vectors accepted")
		}
		if _, err := Build(sp, nil, 2, Params{}); err == nil {
			t.Error("empty vector set accepted")
		}
		if _, err := Build(sp, []uint8{1, 2}, 0, Params{}); err == nil {
			t.Error("dim 0 accepted")
		}
		g := mustBuild(t, sp, []uint8{1, 2, 3, 4}, 2, Params{})
		if got := g.NewSearcher().Search([]uint8{1, 2, 3}, 1, 1); got != nil {
			t.Errorf("query of wrong length gave %v", got)
		}
		if got := g.NewSearcher().Search([]uint8{1, 2}, 0, 1); got != nil {
			t.Errorf("m = 0 gave %v", got)
		}
		var buf bytes.Buffer
		if _, err := g.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(bytes.NewReader(buf.Bytes()), sp, []uint8{1, 2, 3, 4}, 1); err == nil {
			t.Error("load with a different dimension accepted")
		}
		if _, err := Load(bytes.NewReader(buf.Bytes()), sp, []uint8{1, 2, 3, 4, 5, 6}, 2); err == nil {
			t.Error("load with a different vector count accepted")
		}
	})
	t.Run("bad params", func(t *testing.T) {
		v := []uint8{1, 2, 3, 4}
		for _, p := range []Params{{Degree: -1}, {Alpha: 0.5}, {Passes: -2}, {Threads: -1}, {BuildList: -3}} {
			if _, err := Build(sp, v, 2, p); err == nil {
				t.Errorf("params %+v accepted", p)
			}
		}
	})
}

func TestSearchAllocs(t *testing.T) {
	const n, dim = 2000, 16
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](4, n+10, dim, 10, 0, 255, 30)
	base, queries := data[:n*dim], data[n*dim:]
	g := mustBuild(t, sp, base, dim, Params{Degree: 16, Threads: 2})
	s := g.NewSearcher()
	s.Search(queries[:dim], 64, 128) // warm up to the largest budget
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		q := queries[(i%10)*dim : (i%10+1)*dim]
		s.Search(q, 16+i%48, 64+i%64)
		i++
	})
	if allocs != 0 {
		t.Errorf("Search allocates %.1f times per query, want 0", allocs)
	}
}

func TestConcurrentSearchers(t *testing.T) {
	const n, dim = 2000, 16
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](6, n+50, dim, 10, 0, 255, 30)
	base, queries := data[:n*dim], data[n*dim:]
	g := mustBuild(t, sp, base, dim, Params{Degree: 16, Threads: 2})
	want := make([][]Neighbor, 50)
	s := g.NewSearcher()
	for i := range want {
		want[i] = slices.Clone(s.Search(queries[i*dim:(i+1)*dim], 10, 32))
	}
	done := make(chan bool)
	for w := 0; w < 4; w++ {
		go func() {
			s := g.NewSearcher()
			ok := true
			for i := range want {
				ok = ok && slices.Equal(s.Search(queries[i*dim:(i+1)*dim], 10, 32), want[i])
			}
			done <- ok
		}()
	}
	for w := 0; w < 4; w++ {
		if !<-done {
			t.Error("concurrent searcher disagreed with the sequential result")
		}
	}
}

// Packed adjacency round-trips lists of every shape: empty, unsorted,
// duplicated, ids needing 1 to 5 varint bytes, and enough nodes to span
// several offset blocks.
func TestPackedLists(t *testing.T) {
	const n = 3*blockNodes + 5
	lists := make([][]int32, n)
	lists[0] = []int32{0, 1, 1<<24 - 1, 1 << 24, 1<<31 - 1}
	lists[1] = nil
	lists[2] = []int32{7, 7, 3}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 3; i < n; i++ {
		for j := rng.IntN(40); j > 0; j-- {
			lists[i] = append(lists[i], int32(rng.IntN(n)))
		}
	}
	edges := 0
	for _, l := range lists {
		edges += len(l)
	}
	// List 0's ids go past n, to exercise 4- and 5-byte varints: the data
	// then outgrows its preallocated bound, which append handles.
	b, _ := newAdjacencyBuilder(n, edges, nil)
	for _, l := range lists {
		b.add(l)
	}
	if _, err := (&adjacencyBuilder{n: 2}).finish(); err == nil {
		t.Error("finish of an incomplete adjacency succeeded")
	}
	a, err := b.finish()
	if err != nil {
		t.Fatal(err)
	}
	g := &Graph[uint8]{n: n, lists: &a}
	for i, l := range lists {
		want := slices.Sorted(slices.Values(l))
		if got := g.appendNbrs(nil, int32(i)); !slices.Equal(got, want) {
			t.Errorf("node %d: %v, want %v", i, got, want)
		}
		if got := g.count(int32(i)); got != len(l) {
			t.Errorf("node %d: count %d, want %d", i, got, len(l))
		}
	}
	if varintBound(1) != 1 || varintBound(128) != 1 || varintBound(129) != 2 || varintBound(1<<31) != 5 {
		t.Errorf("varint bounds %d %d %d %d", varintBound(1), varintBound(128), varintBound(129), varintBound(1<<31))
	}
	// Ids below n never outgrow the bound, so the data is never copied.
	small, _ := newAdjacencyBuilder(200, 3, nil)
	for i := 0; i < 200; i++ {
		if i == 5 {
			small.add([]int32{199, 0, 128})
		} else {
			small.add(nil)
		}
	}
	sa, err := small.finish()
	if err != nil {
		t.Fatal(err)
	}
	if cap(sa.data) != 6 || len(sa.data) != 4 { // 0, 128 (2 bytes), 71
		t.Errorf("small adjacency: %d bytes of cap %d, want 4 of 6", len(sa.data), cap(sa.data))
	}
}
