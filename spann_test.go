package spann

import (
	"context"
	"errors"
	"fmt"
	"github.com/gospann/spann/internal/vfs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

type fixture struct {
	dir, base, queries, index string
	q                         *datasets.Matrix
	gt                        *datasets.GroundTruth
}

// newFixture generates a data set, its exact ground truth, and an index.
func newFixture(t *testing.T, typ datasets.ElemType, metric vec.Metric, n, nq, dim int, codec posting.Codec) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	p := datasets.GenParams{N: n, Dim: dim, Type: typ, Seed: 11, Clusters: 6}
	f.base = filepath.Join(f.dir, "base"+typ.Ext())
	if err := datasets.Generate(f.base, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	p.N, p.Stream = nq, 1
	f.queries = filepath.Join(f.dir, "query"+typ.Ext())
	if err := datasets.Generate(f.queries, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.q, err = datasets.LoadVectors(f.queries, 0, 0); err != nil {
		t.Fatal(err)
	}
	bv, _ := datasets.OpenVectors(f.base, 0)
	defer bv.Close()
	if f.gt, err = eval.ExactKNN(bv, f.q, eval.GTOptions{K: 10, Metric: metric}); err != nil {
		t.Fatal(err)
	}
	f.index = filepath.Join(f.dir, "index")
	if _, err := Build(context.Background(), BuildOptions{Base: f.base, Out: f.index, Metric: metric, HeadRatio: 0.1,
		Replicas: 4, PostingLimit: 1 << 20, Codec: codec, Threads: 2, Seed: 3, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	return f
}

func recallOf(t *testing.T, f *fixture, res *BatchResult) float64 {
	t.Helper()
	r, err := eval.RecallAt(f.gt, &datasets.Results{N: f.q.N, K: res.K, IDs: res.IDs}, 10)
	if err != nil {
		t.Fatal(err)
	}
	return r.Mean
}

// With pruning off and every head probed, every vector is scanned, so the
// answer is exact.
func TestExhaustiveSearchIsExact(t *testing.T) {
	for _, c := range []struct {
		typ    datasets.ElemType
		metric vec.Metric
		codec  posting.Codec
	}{
		{datasets.Uint8, vec.L2, posting.DefaultCodec},
		{datasets.Float32, vec.L2, posting.CodecZstd},
		{datasets.Float32, vec.Cosine, posting.CodecNone},
		{datasets.Int8, vec.IP, posting.DefaultCodec},
		{datasets.Uint8, vec.L2, posting.CodecHuffShared},
		{datasets.Float32, vec.L2, posting.CodecHuffShared},
	} {
		f := newFixture(t, c.typ, c.metric, 3000, 60, 24, c.codec)
		ix, err := Open(f.index, Options{})
		if err != nil {
			t.Fatal(err)
		}
		all := ix.Manifest.Heads
		res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: all, Eps: -1, HeadList: all}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if r := recallOf(t, f, res); r != 1 {
			t.Errorf("%s/%s: exhaustive recall@10 = %.4f, want 1", c.typ, c.metric, r)
		}
		// A normal setting is good but reads far less.
		res2, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 2)
		if err != nil {
			t.Fatal(err)
		}
		if r := recallOf(t, f, res2); r < 0.8 {
			t.Errorf("%s/%s: recall@10 at nprobe 16 = %.4f", c.typ, c.metric, r)
		}
		if res2.Stats.Postings >= res.Stats.Postings/4 {
			t.Errorf("nprobe 16 read %d postings, exhaustive %d", res2.Stats.Postings, res.Stats.Postings)
		}
		ix.Close()
	}
}

func TestSearchAPI(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 20, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	q := f.q.Row(0)
	// Pruning reads fewer postings and never more.
	var loose, tight SearchStats
	if _, err := ix.SearchInto(q, 10, SearchParams{NProbe: 32, Eps: -1}, nil, &loose); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.SearchInto(q, 10, SearchParams{NProbe: 32, Eps: 0.2}, nil, &tight); err != nil {
		t.Fatal(err)
	}
	if tight.Postings > loose.Postings || tight.Postings == 0 {
		t.Errorf("eps 0.2 read %d postings, no pruning %d", tight.Postings, loose.Postings)
	}
	// No allocation per query once warm.
	dst := make([]Neighbor, 0, 10)
	p := SearchParams{NProbe: 16, Eps: -1}
	allocs := testing.AllocsPerRun(50, func() {
		dst, _ = ix.SearchInto(q, 10, p, dst[:0], nil)
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per search", allocs)
	}
	// Concurrent searches agree with sequential ones.
	want, _ := ix.Search(q, 10, p)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				got, err := ix.Search(q, 10, p)
				if err != nil || len(got) != len(want) || got[0] != want[0] || got[9] != want[9] {
					t.Errorf("concurrent search differs: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Bad queries.
	for _, c := range []struct {
		q    []byte
		k    int
		want string
	}{
		{q[:15], 10, "16 bytes"},
		{q, 0, "k=0"},
		{q, 2001, "larger than the 2000"},
	} {
		if _, err := ix.Search(c.q, c.k, p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error with %q, got %v", c.want, err)
		}
	}
}

func TestOpenRejectsDamagedIndex(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1500, 5, 8, posting.DefaultCodec)
	copyIndex := func() string {
		dst := filepath.Join(t.TempDir(), "ix")
		os.Mkdir(dst, 0o755)
		ents, _ := os.ReadDir(f.index)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(f.index, e.Name()))
			os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
		return dst
	}
	for _, name := range []string{indexfile.HeadsFile, indexfile.GraphFile, indexfile.DirectoryFile, "manifest.json"} {
		d := copyIndex()
		b, _ := os.ReadFile(filepath.Join(d, name))
		b[len(b)/2] ^= 0x40
		os.WriteFile(filepath.Join(d, name), b, 0o644)
		if _, err := Open(d, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
			t.Errorf("flipped byte in %s: %v, want ErrCorrupt naming the file", name, err)
		}
		d2 := copyIndex()
		os.Remove(filepath.Join(d2, name))
		if _, err := Open(d2, Options{}); err == nil || !strings.Contains(err.Error(), name) && name != "manifest.json" {
			t.Errorf("missing %s: %v", name, err)
		}
	}
	// The postings file's header page is checked at Open: magic, version,
	// row size, the shared table and the CRC.
	for _, off := range []int{0, 8, 16, 30, posting.PageSize - 1} {
		d := copyIndex()
		p := filepath.Join(d, indexfile.PostingsFile)
		b, _ := os.ReadFile(p)
		b[off] ^= 0x10
		os.WriteFile(p, b, 0o644)
		if _, err := Open(d, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), indexfile.PostingsFile) {
			t.Errorf("postings header byte %d flipped: %v", off, err)
		}
	}
	// A flipped byte inside a posting is caught when that posting is read.
	d := copyIndex()
	pb, _ := os.ReadFile(filepath.Join(d, indexfile.PostingsFile))
	for i := posting.PageSize + 40; i < len(pb); i += posting.PageSize {
		pb[i] ^= 0x01
	}
	os.WriteFile(filepath.Join(d, indexfile.PostingsFile), pb, 0o644)
	ix, err := Open(d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	_, err = ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: ix.Manifest.Heads, Eps: -1}, 1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "posting") {
		t.Fatalf("corrupt posting: %v", err)
	}
}

// SearchBatch with several queries in flight per worker gives exactly the
// answers of one Search per query, whatever the depth and thread count.
func TestSearchBatchInFlightMatchesSearch(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 80, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	p := SearchParams{NProbe: 12, Eps: -1}
	var want [][]Neighbor
	var wantStats SearchStats
	for q := 0; q < f.q.N; q++ {
		var st SearchStats
		got, err := ix.SearchInto(f.q.Row(q), 10, p, nil, &st)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got)
		wantStats.Add(st)
	}
	for _, c := range []struct{ inFlight, threads int }{{1, 1}, {3, 1}, {8, 1}, {4, 2}, {200, 2}} {
		p.InFlight = c.inFlight
		res, err := ix.SearchBatch(f.q.Data, 10, p, c.threads)
		if err != nil {
			t.Fatal(err)
		}
		for q := range want {
			for i := 0; i < 10; i++ {
				id, d := res.IDs[q*10+i], res.Dists[q*10+i]
				if i >= len(want[q]) {
					if id != -1 {
						t.Fatalf("in-flight %d: query %d rank %d: id %d, want padding", c.inFlight, q, i, id)
					}
					continue
				}
				if id != want[q][i].ID || d != want[q][i].Dist {
					t.Fatalf("in-flight %d threads %d: query %d rank %d: (%d, %g), Search gave (%d, %g)",
						c.inFlight, c.threads, q, i, id, d, want[q][i].ID, want[q][i].Dist)
				}
			}
			if res.Latency[q] <= 0 {
				t.Fatalf("in-flight %d: query %d has latency %v", c.inFlight, q, res.Latency[q])
			}
		}
		st := res.Stats
		if st.Postings != wantStats.Postings || st.Pages != wantStats.Pages || st.Vectors != wantStats.Vectors || st.Heads != wantStats.Heads {
			t.Fatalf("in-flight %d: stats %+v, one at a time %+v", c.inFlight, st, wantStats)
		}
	}
	if _, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 12, InFlight: -1}, 1); err == nil || !strings.Contains(err.Error(), "in-flight=-1") {
		t.Fatalf("InFlight -1: %v", err)
	}
}

// The two-round rule reads the first round's postings, then only the
// candidates within the slack of the k-th distance: an infinite-like slack
// reads every candidate and answers exactly as one round does, a zero
// slack reads fewer postings, and pipelined batches agree with Search.
func TestTwoRoundRule(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 60, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	one := SearchParams{NProbe: 24, Eps: -1}
	all := SearchParams{NProbe: 24, Eps: -1, FirstRound: 4, KthSlack: 1e30}
	tight := SearchParams{NProbe: 24, Eps: -1, FirstRound: 4, KthSlack: 0}
	var stOne, stAll, stTight SearchStats
	for q := 0; q < f.q.N; q++ {
		var a, b, c SearchStats
		r1, err := ix.SearchInto(f.q.Row(q), 10, one, nil, &a)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ix.SearchInto(f.q.Row(q), 10, all, nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ix.SearchInto(f.q.Row(q), 10, tight, nil, &c); err != nil {
			t.Fatal(err)
		}
		if len(r1) != len(r2) {
			t.Fatalf("query %d: %d results in one round, %d in two", q, len(r1), len(r2))
		}
		for i := range r1 {
			if r1[i] != r2[i] {
				t.Fatalf("query %d rank %d: one round %v, two rounds with unbounded slack %v", q, i, r1[i], r2[i])
			}
		}
		if b.Rounds != 2 || a.Rounds != 1 || c.Rounds < 1 || c.Rounds > 2 {
			t.Fatalf("query %d: rounds %d / %d / %d", q, a.Rounds, b.Rounds, c.Rounds)
		}
		if b.Postings != a.Postings {
			t.Fatalf("query %d: unbounded slack read %d postings, one round %d", q, b.Postings, a.Postings)
		}
		stOne.Add(a)
		stAll.Add(b)
		stTight.Add(c)
	}
	if stTight.Postings >= stOne.Postings || stTight.Postings < 4*f.q.N {
		t.Fatalf("zero slack read %d postings, one round %d (first round alone %d)", stTight.Postings, stOne.Postings, 4*f.q.N)
	}
	for _, p := range []SearchParams{all, tight} {
		for _, inFlight := range []int{1, 5} {
			p.InFlight = inFlight
			res, err := ix.SearchBatch(f.q.Data, 10, p, 2)
			if err != nil {
				t.Fatal(err)
			}
			for q := 0; q < f.q.N; q++ {
				want, _ := ix.Search(f.q.Row(q), 10, p)
				for i, nb := range want {
					if res.IDs[q*10+i] != nb.ID || res.Dists[q*10+i] != nb.Dist {
						t.Fatalf("slack %g in-flight %d: query %d rank %d differs from Search", p.KthSlack, inFlight, q, i)
					}
				}
			}
		}
	}
	for _, c := range []struct {
		p    SearchParams
		want string
	}{
		{SearchParams{NProbe: 8, FirstRound: -1}, "first-round=-1"},
		{SearchParams{NProbe: 8, FirstRound: 2, KthSlack: -0.5}, "kth-slack=-0.5"},
		{SearchParams{NProbe: 8, HeadList: -1}, "head-list=-1"},
		{SearchParams{NProbe: 8, MaxPostings: -4}, "max-postings=-4"},
	} {
		if _, err := ix.Search(f.q.Row(0), 10, c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p, err, c.want)
		}
	}
}

// Close while searches run: it waits for them, never crashes, and every
// search either answers exactly as before or fails with ErrClosed.
func TestCloseDuringSearches(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := SearchParams{NProbe: 16, Eps: -1}
	want := make([][]Neighbor, f.q.N)
	for q := range want {
		if want[q], err = ix.Search(f.q.Row(q), 10, p); err != nil {
			t.Fatal(err)
		}
	}
	var done sync.WaitGroup
	var searches atomic.Int64
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		done.Add(1)
		go func(g int) {
			defer done.Done()
			for i := g; ; i++ {
				q := i % f.q.N
				got, err := ix.Search(f.q.Row(q), 10, p)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(got, want[q]) {
					errs <- fmt.Errorf("query %d: %v, want %v", q, got, want[q])
					return
				}
				searches.Add(1)
			}
		}(g)
	}
	done.Add(1)
	go func() {
		defer done.Done()
		for {
			res, err := ix.SearchBatch(f.q.Data, 10, p, 2)
			if errors.Is(err, ErrClosed) {
				return
			}
			if err != nil {
				errs <- err
				return
			}
			for q := range want {
				for i, nb := range want[q] {
					if res.IDs[q*10+i] != nb.ID {
						errs <- fmt.Errorf("batch query %d rank %d: %d, want %d", q, i, res.IDs[q*10+i], nb.ID)
						return
					}
				}
			}
		}
	}()
	for searches.Load() < 200 {
		runtime.Gosched()
	}
	if ix.mem.Mapped() == 0 {
		t.Fatal("heads, graph and directory are not in the off-heap arena")
	}
	if err := ix.Close(); err != nil {
		t.Fatalf("Close during searches: %v", err)
	}
	// Close returned with no search running: the arena is unmapped (a
	// search still reading it would have faulted under -race's eyes).
	if m := ix.mem.Mapped(); m != 0 {
		t.Fatalf("%d bytes still mapped after Close", m)
	}
	done.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := ix.Search(f.q.Row(0), 10, p); !errors.Is(err, ErrClosed) {
		t.Fatalf("Search after Close: %v, want ErrClosed", err)
	}
	if _, err := ix.SearchBatch(f.q.Data, 10, p, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("SearchBatch after Close: %v, want ErrClosed", err)
	}
	if err := ix.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// An open Index keeps reading the index it opened when another build is
// renamed over its directory (as spann-build --force does): workers created
// afterwards read the old postings through the descriptor Open kept.
func TestRebuildUnderOpenIndex(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	p := SearchParams{NProbe: 16, Eps: -1}
	before, err := ix.SearchBatch(f.q.Data, 10, p, 1)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(f.dir, "other")
	if _, err := Build(context.Background(), BuildOptions{Base: f.base, Out: other, Metric: vec.L2, HeadRatio: 0.05,
		Replicas: 2, PostingLimit: 1 << 20, Codec: posting.CodecHuff, Threads: 2, Seed: 9, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.index, f.index+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, f.index); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(f.index + ".old"); err != nil {
		t.Fatal(err)
	}
	// Four threads: three workers are new, made after the swap.
	after, err := ix.SearchBatch(f.q.Data, 10, p, 4)
	if err != nil {
		t.Fatalf("search after the rebuild: %v", err)
	}
	if !slices.Equal(before.IDs, after.IDs) || !slices.Equal(before.Dists, after.Dists) {
		t.Fatal("answers changed after another index was renamed over the open one")
	}
}

// The zero SearchParams means the documented defaults (no pruning: it reads
// as many postings as DefaultSearchParams), and a bad k is an error, not a
// panic, in SearchBatch too.
func TestZeroParamsAndBadK(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 10, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	var zero, def SearchStats
	a, err := ix.SearchInto(f.q.Row(0), 10, SearchParams{}, nil, &zero)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ix.SearchInto(f.q.Row(0), 10, DefaultSearchParams(), nil, &def)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) || zero.Postings != def.Postings || zero.Postings < 32 {
		t.Fatalf("zero params read %d postings, defaults %d (answers equal: %v)", zero.Postings, def.Postings, slices.Equal(a, b))
	}
	for _, k := range []int{-1, 0} {
		if _, err := ix.SearchBatch(f.q.Data, k, SearchParams{}, 1); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("k=%d", k)) {
			t.Errorf("SearchBatch k=%d: %v", k, err)
		}
	}
}

// Finding 1 of issue 8: files of two builds of the same base, with the same
// parameters and seed (so that they differ only in their build id), never
// open as one index. Copying one file across is caught, naming the file;
// and when the manifest is edited to carry the copied file's SHA-256 too,
// the build id in the file's header still gives it away.
func TestMixedBuildsRefused(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1500, 5, 8, posting.DefaultCodec)
	other := filepath.Join(t.TempDir(), "other")
	otherID := indexfile.BuildID{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	if _, err := Build(context.Background(), BuildOptions{Base: f.base, Out: other, Metric: vec.L2, HeadRatio: 0.1,
		Replicas: 4, PostingLimit: 1 << 20, Codec: posting.DefaultCodec, Threads: 2, Seed: 3, MemoryBudget: 256 << 20,
		BuildID: otherID}); err != nil {
		t.Fatal(err)
	}
	mine, err := indexfile.ReadManifest(f.index)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := indexfile.ReadManifest(other)
	if err != nil {
		t.Fatal(err)
	}
	if mine.BuildID == theirs.BuildID || theirs.BuildID != otherID.String() {
		t.Fatalf("build ids %s and %s", mine.BuildID, theirs.BuildID)
	}
	mix := func(name string, fixManifest bool) string {
		d := filepath.Join(t.TempDir(), "ix")
		os.Mkdir(d, 0o755)
		ents, _ := os.ReadDir(f.index)
		for _, e := range ents {
			src := filepath.Join(f.index, e.Name())
			if e.Name() == name {
				src = filepath.Join(other, name)
			}
			b, _ := os.ReadFile(src)
			os.WriteFile(filepath.Join(d, e.Name()), b, 0o644)
		}
		if fixManifest {
			m := *mine
			m.Files = slices.Clone(mine.Files)
			info, _ := theirs.File(name)
			for i := range m.Files {
				if m.Files[i].Name == name {
					m.Files[i] = info
				}
			}
			if err := indexfile.WriteManifest(vfs.OS, d, &m); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	for _, name := range []string{indexfile.HeadsFile, indexfile.GraphFile, indexfile.DirectoryFile, indexfile.PostingsFile} {
		for _, fix := range []bool{false, true} {
			_, err := Open(mix(name, fix), Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) {
				t.Errorf("%s of another build (manifest fixed: %v): %v, want ErrCorrupt naming the file", name, fix, err)
				continue
			}
			if (fix || name == indexfile.PostingsFile) && !strings.Contains(err.Error(), "is from build "+otherID.String()) {
				t.Errorf("%s of another build (manifest fixed: %v): %v, want the build id check", name, fix, err)
			}
		}
	}
	// Same files, both whole: each opens.
	for _, d := range []string{f.index, other} {
		ix, err := Open(d, Options{})
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		ix.Close()
	}
}
