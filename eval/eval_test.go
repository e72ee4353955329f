package eval

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/testutil"
	"github.com/gospann/spann/internal/vec"
)

// naiveKNN is the obvious O(n·nq) reference with a full sort.
func naiveKNN[T vec.Elem](sp vec.Space[T], base, qs []T, dim, k int) *datasets.GroundTruth {
	nq := len(qs) / dim
	n := len(base) / dim
	g := &datasets.GroundTruth{NQ: nq, K: k, IDs: make([]int32, nq*k), Dists: make([]float32, nq*k)}
	for q := 0; q < nq; q++ {
		type p struct {
			id int32
			d  float32
		}
		all := make([]p, n)
		for i := 0; i < n; i++ {
			all[i] = p{int32(i), sp.Dist(qs[q*dim:(q+1)*dim], base[i*dim:(i+1)*dim])}
		}
		sort.Slice(all, func(a, b int) bool {
			if all[a].d != all[b].d {
				return all[a].d < all[b].d
			}
			return all[a].id < all[b].id
		})
		ids, dists := g.Row(q)
		for r := 0; r < k; r++ {
			ids[r], dists[r] = all[r].id, all[r].d
		}
	}
	return g
}

func genFile(t *testing.T, typ datasets.ElemType, n, dim int, stream uint64) (string, *datasets.Matrix) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x"+typ.Ext())
	if err := datasets.Generate(p, datasets.GenParams{N: n, Dim: dim, Type: typ, Seed: 3, Stream: stream, Clusters: 5}, 2, nil); err != nil {
		t.Fatal(err)
	}
	m, err := datasets.LoadVectors(p, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

func checkExact[T vec.Elem](t *testing.T, typ datasets.ElemType, metric vec.Metric) {
	basePath, baseM := genFile(t, typ, 1500, 24, 0)
	_, qm := genFile(t, typ, 40, 24, 1)
	base, err := datasets.OpenVectors(basePath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	// Small blocks force many stream blocks and partial tiles.
	got, err := ExactKNN(base, qm, GTOptions{K: 10, Metric: metric, Threads: 3, BlockRows: 333})
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := vec.NewSpace[T](metric)
	b := datasets.Rows[T](baseM.Data)
	q := datasets.Rows[T](qm.Data)
	if metric == vec.Cosine {
		b = append([]T(nil), b...)
		q = append([]T(nil), q...)
		vec.NormalizeRows(b, 24)
		vec.NormalizeRows(q, 24)
	}
	want := naiveKNN(sp, b, q, 24, 10)
	n, bad, err := CompareGroundTruth(got, want, 10, typ != datasets.Float32, 1e-5, 3)
	if err != nil || n != 0 {
		t.Fatalf("%s/%s: %d mismatches %v %v", typ, metric, n, bad, err)
	}
}

func TestExactKNN(t *testing.T) {
	checkExact[float32](t, datasets.Float32, vec.L2)
	checkExact[float32](t, datasets.Float32, vec.IP)
	checkExact[float32](t, datasets.Float32, vec.Cosine)
	checkExact[uint8](t, datasets.Uint8, vec.L2)
	checkExact[uint8](t, datasets.Uint8, vec.IP)
	checkExact[int8](t, datasets.Int8, vec.L2)
	checkExact[int8](t, datasets.Int8, vec.IP)
}

func TestExactKNNErrors(t *testing.T) {
	basePath, _ := genFile(t, datasets.Uint8, 50, 8, 0)
	base, _ := datasets.OpenVectors(basePath, 0)
	defer base.Close()
	_, q16 := genFile(t, datasets.Uint8, 5, 16, 1)
	_, qf := genFile(t, datasets.Float32, 5, 8, 1)
	_, q8 := genFile(t, datasets.Uint8, 5, 8, 1)
	for _, c := range []struct {
		q    *datasets.Matrix
		o    GTOptions
		want string
	}{
		{q16, GTOptions{K: 5, Metric: vec.L2}, "dimension 16"},
		{qf, GTOptions{K: 5, Metric: vec.L2}, "queries are float32"},
		{q8, GTOptions{K: 51, Metric: vec.L2}, "k=51 is larger than the 50"},
		{q8, GTOptions{K: 0, Metric: vec.L2}, "k must be positive"},
		{q8, GTOptions{K: 5, Metric: vec.Cosine}, "cosine"},
	} {
		_, err := ExactKNN(base, c.q, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error with %q, got %v", c.want, err)
		}
	}
}

func TestRecallTieAware(t *testing.T) {
	gt := &datasets.GroundTruth{NQ: 2, K: 4,
		IDs:   []int32{10, 11, 12, 13, 20, 21, 22, 23},
		Dists: []float32{1, 2, 3, 3, 1, 2, 3, 4}}
	res := &datasets.Results{N: 2, K: 3, IDs: []int32{
		10, 13, 99, // 13 is tied with the 3rd distance: a hit; 99 is not in the truth
		21, 21, 23, // duplicates count once; 23 is beyond the 3rd distance
	}}
	r, err := RecallAt(gt, res, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.PerQuery[0] != 2.0/3 || r.PerQuery[1] != 1.0/3 {
		t.Fatalf("per-query recall %v", r.PerQuery)
	}
	if _, err := RecallAt(gt, res, 4); err == nil {
		t.Error("recall@4 of 3-column results accepted")
	}
	if TieEnd([]float32{1, 2, 2, 2, 3}, 2) != 4 {
		t.Error("TieEnd")
	}
}

// TestShippedGroundTruth recomputes realsift-100k's ground truth (all 10,000
// queries; 500 with -short) and requires it to match the shipped file (ids may differ
// only among ties; distances are exact integers for uint8 data).
func TestShippedGroundTruth(t *testing.T) {
	basePath := testutil.RequireDataFile(t, "realsift-100k/base.u8bin")
	qPath := testutil.RequireDataFile(t, "realsift-100k/query.u8bin")
	gtPath := testutil.RequireDataFile(t, "realsift-100k/gt100.bin")
	nq := 10000
	if testing.Short() {
		nq = 500
	}
	base, err := datasets.OpenVectors(basePath, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	qs, err := datasets.LoadVectors(qPath, 0, nq)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ExactKNN(base, qs, GTOptions{K: 100, Metric: vec.L2})
	if err != nil {
		t.Fatal(err)
	}
	want, err := datasets.ReadGroundTruth(gtPath)
	if err != nil {
		t.Fatal(err)
	}
	want.NQ = nq
	n, bad, err := CompareGroundTruth(got, want, 100, true, 0, 5)
	if err != nil || n != 0 {
		t.Fatalf("%d of %d queries differ from the shipped ground truth: %v %v", n, nq, bad, err)
	}
}
