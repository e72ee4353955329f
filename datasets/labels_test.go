package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLabelsRoundTrip(t *testing.T) {
	l, err := NewLabels([][]int32{{5, 1, 5}, {}, {0, 9}, {3}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if l.Rows() != 4 || l.Vocab != 10 || !slices.Equal(l.Row(0), []int32{1, 5}) || len(l.Row(1)) != 0 {
		t.Fatalf("NewLabels: %+v", l)
	}
	dir := t.TempDir()
	for _, name := range []string{"l.spmat", "l.txt"} {
		path := filepath.Join(dir, name)
		if err := WriteLabels(path, l); err != nil {
			t.Fatal(err)
		}
		got, err := ReadLabels(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rows() != l.Rows() || !slices.Equal(got.Indptr, l.Indptr) || !slices.Equal(got.Indices, l.Indices) {
			t.Errorf("%s: read back %+v, wrote %+v", name, got, l)
		}
		// Text files know only the labels they hold; .spmat keeps ncol.
		if want := map[string]int{"l.spmat": 10, "l.txt": 10}[name]; got.Vocab != want {
			t.Errorf("%s: vocabulary %d, want %d", name, got.Vocab, want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "l.txt"))
	if string(raw) != "1 5\n\n0 9\n3\n" {
		t.Errorf("text form %q", raw)
	}
}

func TestLabelsText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.txt")
	os.WriteFile(path, []byte("7\t2  7\n\n4"), 0o644) // tabs, repeats, no final newline
	l, err := ReadLabels(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Rows() != 3 || !slices.Equal(l.Row(0), []int32{2, 7}) || len(l.Row(1)) != 0 || !slices.Equal(l.Row(2), []int32{4}) || l.Vocab != 8 {
		t.Errorf("got %+v", l)
	}
	for _, bad := range []struct{ text, want string }{
		{"1 2\n3 x\n", `line 2: "x" is not a label`},
		{"-4\n", `line 1: "-4" is not a label`},
		{"99999999999\n", `line 1: "99999999999" is not a label`},
		{"4194304\n", `line 1: "4194304" is not a label (an integer 0..4194303)`},
	} {
		os.WriteFile(path, []byte(bad.text), 0o644)
		_, err := ReadLabels(path)
		if !errors.Is(err, ErrLabels) || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %v, want %q naming the file", bad.text, err, bad.want)
		}
	}
}

// spmat builds a .spmat image from its fields, valid or not.
func spmat(nrow, ncol, nnz int64, indptr []int64, indices []int32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, []int64{nrow, ncol, nnz})
	binary.Write(&b, binary.LittleEndian, indptr)
	binary.Write(&b, binary.LittleEndian, indices)
	binary.Write(&b, binary.LittleEndian, make([]float32, len(indices)))
	return b.Bytes()
}

func TestSpmatRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.spmat")
	good := spmat(2, 5, 3, []int64{0, 2, 3}, []int32{4, 1, 0})
	os.WriteFile(path, good, 0o644)
	l, err := ReadLabels(path)
	if err != nil || !slices.Equal(l.Row(0), []int32{1, 4}) || !slices.Equal(l.Row(1), []int32{0}) {
		t.Fatalf("good file: %+v, %v", l, err)
	}
	for _, bad := range []struct {
		name string
		data []byte
		want string
	}{
		{"short header", good[:10], "shorter than the 24-byte .spmat header"},
		{"truncated", good[:len(good)-4], "take 72 bytes, the file has 68"},
		{"too long", append(slices.Clone(good), 0), "the file has 73"},
		{"huge nrow", spmat(1<<40, 5, 3, []int64{0, 2, 3}, []int32{4, 1, 0}), "header says 1099511627776 rows"},
		{"huge vocabulary", spmat(2, 1<<23, 3, []int64{0, 2, 3}, []int32{4, 1, 0}), "8388608 columns"},
		{"negative nnz", spmat(2, 5, -1, []int64{0, 2, 3}, []int32{4, 1, 0}), "header says"},
		{"label out of range", spmat(2, 5, 3, []int64{0, 2, 3}, []int32{4, 5, 0}), "row 0 has label 5, out of range 0..4"},
		{"negative label", spmat(2, 5, 3, []int64{0, 2, 3}, []int32{4, 1, -2}), "row 1 has label -2"},
		{"indptr not from 0", spmat(2, 5, 3, []int64{1, 2, 3}, []int32{4, 1, 0}), "indptr runs from 1 to 3"},
		{"indptr decreasing", spmat(2, 5, 3, []int64{0, 4, 3}, []int32{4, 1, 0}), "indptr decreases at row 1"},
	} {
		os.WriteFile(path, bad.data, 0o644)
		_, err := ReadLabels(path)
		if !errors.Is(err, ErrLabels) || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want %q", bad.name, err, bad.want)
		}
	}
}

func FuzzReadSpmat(f *testing.F) {
	f.Add(spmat(2, 5, 3, []int64{0, 2, 3}, []int32{4, 1, 0}))
	f.Add(spmat(0, 0, 0, []int64{0}, nil))
	path := filepath.Join(f.TempDir(), "f.spmat")
	f.Fuzz(func(t *testing.T, data []byte) {
		os.WriteFile(path, data, 0o644)
		l, err := ReadLabels(path)
		if err != nil {
			if !errors.Is(err, ErrLabels) {
				t.Fatalf("error not ErrLabels: %v", err)
			}
			return
		}
		// Whatever is accepted is well formed.
		for i := 0; i < l.Rows(); i++ {
			row := l.Row(i)
			for j, x := range row {
				if x < 0 || int(x) >= l.Vocab || (j > 0 && row[j-1] >= x) {
					t.Fatalf("row %d: %v (vocabulary %d)", i, row, l.Vocab)
				}
			}
		}
	})
}

func TestMatching(t *testing.T) {
	l, _ := NewLabels([][]int32{{0, 1}, {1}, {0, 1, 2}, {2}}, 4)
	bms := l.Bitmaps()
	m, err := Matching(bms, []int32{0, 1})
	if err != nil || !slices.Equal(m.ToArray(), []uint32{0, 2}) {
		t.Errorf("0∧1: %v, %v", m, err)
	}
	if m, _ := Matching(bms, []int32{3}); m.GetCardinality() != 0 {
		t.Errorf("label 3 matches %v", m)
	}
	if _, err := Matching(bms, nil); err == nil || !strings.Contains(err.Error(), "names no label") {
		t.Errorf("empty filter: %v", err)
	}
	if _, err := Matching(bms, []int32{1, 4}); err == nil || !strings.Contains(err.Error(), "label 4, but the labels are 0..3") {
		t.Errorf("label out of range: %v", err)
	}
	// Matching must not hand out the label's own bitmap to be modified.
	m, _ = Matching(bms, []int32{2})
	m.Add(0)
	if bms[2].Contains(0) {
		t.Error("Matching aliased the label's bitmap")
	}
}

func TestGenerateLabels(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := Generate(base, GenParams{N: 20000, Dim: 16, Type: Uint8, Seed: 3}, 2, nil); err != nil {
		t.Fatal(err)
	}
	vf, err := OpenVectors(base, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	p := LabelParams{Vocab: 20000, Corr: 0.8, Seed: 5}
	l, err := GenerateLabels(vf, p, 2)
	if err != nil {
		t.Fatal(err)
	}
	again, err := GenerateLabels(vf, p, 1)
	if err != nil || !slices.Equal(again.Indices, l.Indices) || !slices.Equal(again.Indptr, l.Indptr) {
		t.Fatal("labels differ with the thread count")
	}
	if l.Rows() != 20000 || l.Vocab != 20000 {
		t.Fatalf("%d rows, vocabulary %d", l.Rows(), l.Vocab)
	}
	per := float64(len(l.Indices)) / 20000
	if per < 5 || per > 11 {
		t.Errorf("%.1f labels per row, want about 10 (2..20 drawn, repeats merged)", per)
	}
	bms := l.Bitmaps()
	counts := make([]int, len(bms))
	for x, bm := range bms {
		counts[x] = int(bm.GetCardinality())
	}
	slices.Sort(counts)
	slices.Reverse(counts)
	// Zipf: the commonest label is carried far more than the median one.
	if counts[0] < 20*max(1, counts[len(counts)/2]) {
		t.Errorf("label counts not skewed: top %d, median %d", counts[0], counts[len(counts)/2])
	}
	filters, matches, err := GenerateFilters(l, bms, 120, 9)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < filters.Rows(); i++ {
		f := filters.Row(i)
		if want := 1 + i%2; len(f) != want && !(want == 2 && len(f) == 1) {
			t.Fatalf("filter %d has %d labels", i, len(f))
		}
		m, err := Matching(bms, f)
		if err != nil || int(m.GetCardinality()) != matches[i] || matches[i] < 1 {
			t.Fatalf("filter %d %v: %d matches, reported %d (%v)", i, f, m.GetCardinality(), matches[i], err)
		}
	}
	// Each aim is met within a factor of 3 by the median filter aimed at it
	// (the rarest aims are floored at one vector).
	for b, sel := range FilterSelectivities {
		for arity := 1; arity <= 2; arity++ {
			var got []float64
			for i := 2*b + arity - 1; i < filters.Rows(); i += 2 * len(FilterSelectivities) {
				got = append(got, float64(matches[i]))
			}
			slices.Sort(got)
			aim := math.Max(1, sel*20000)
			if med := got[len(got)/2]; med > 3*aim || med < aim/3 {
				t.Errorf("selectivity %g, %d labels: median %v matches, aim %v (all %v)", sel, arity, med, aim, got)
			}
		}
	}
}

// With Corr 1 a label's carriers gather in a few neighbourhoods; with 0
// they spread over all of them.
func TestGenerateLabelsCorrelation(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base.u8bin")
	if err := Generate(base, GenParams{N: 20000, Dim: 16, Type: Uint8, Seed: 3}, 2, nil); err != nil {
		t.Fatal(err)
	}
	vf, err := OpenVectors(base, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer vf.Close()
	groups, err := nearestGroups(vf, 64, 2)
	if err != nil {
		t.Fatal(err)
	}
	concentration := func(corr float64) float64 {
		l, err := GenerateLabels(vf, LabelParams{Vocab: 5000, Corr: corr, Seed: 5}, 2)
		if err != nil {
			t.Fatal(err)
		}
		// Over the 200 commonest non-global labels: the share of each one's
		// carriers in its own commonest group, averaged.
		bms := l.Bitmaps()
		order := make([]int, len(bms))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return int(bms[b].GetCardinality()) - int(bms[a].GetCardinality()) })
		sum, n := 0.0, 0
		for _, x := range order {
			if x < GlobalLabels || n == 200 {
				continue
			}
			per := map[uint16]int{}
			most := 0
			for _, id := range bms[x].ToArray() {
				per[groups[id]]++
				most = max(most, per[groups[id]])
			}
			sum += float64(most) / float64(bms[x].GetCardinality())
			n++
		}
		return sum / float64(n)
	}
	if lo, hi := concentration(0), concentration(1); !(hi > 0.25 && lo < 0.1) { // measured 0.06 and 0.35
		t.Errorf("share of a label's carriers in its commonest group: %.2f with corr 0, %.2f with corr 1", lo, hi)
	}
}

// A ground-truth row may end in padding (id -1 at +Inf), and only there.
func TestGroundTruthPadding(t *testing.T) {
	inf := float32(math.Inf(1))
	path := filepath.Join(t.TempDir(), "gt.bin")
	for _, c := range []struct {
		ids   []int32
		dists []float32
		want  string
	}{
		{[]int32{4, -1, -1, 7, 8, 9}, []float32{1, inf, inf, 1, 2, 3}, ""},
		{[]int32{4, 5, -1, 7, 8, 9}, []float32{1, inf, inf, 1, 2, 3}, "query 0, rank 1: distance +Inf is not finite"},
		{[]int32{4, -1, 6, 7, 8, 9}, []float32{1, inf, 2, 1, 2, 3}, "query 0, rank 2: id 6 after padding"},
	} {
		if err := WriteGroundTruth(path, &GroundTruth{NQ: 2, K: 3, IDs: c.ids, Dists: c.dists}); err != nil {
			t.Fatal(err)
		}
		_, err := ReadGroundTruth(path)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.ids, err, c.want)
		}
	}
}
