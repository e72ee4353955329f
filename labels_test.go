package spann

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// AttachLabels stores every label's carriers and every vector's home: a
// posting holding it, the nearest-headed of those; heads have none.
func TestAttachLabels(t *testing.T) {
	f, bv, labels := labelledFixture(t, 3000, 5, 300, 1)
	short, _ := datasets.NewLabels(make([][]int32, 2999), 300)
	if err := AttachLabels(f.index, short, LabelOptions{}); err == nil || !strings.Contains(err.Error(), "labels for 2999 vectors, the index has 3000") {
		t.Errorf("short labels: %v", err)
	}
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.Labels() != 300 || ix.Info().Labels != 300 {
		t.Fatalf("Labels() = %d", ix.Labels())
	}
	want := labels.Bitmaps()
	for x := range want {
		if bm := ix.eng.labels().Bitmap(x); !bm.Equals(want[x]) {
			t.Fatalf("label %d: %d carriers stored, %d given", x, bm.GetCardinality(), want[x].GetCardinality())
		}
	}
	// Recompute the homes from a decoded copy of every posting.
	view := ix.store.Snapshot()
	best := make([]float32, ix.N())
	holds := make([]map[int32]bool, ix.N())
	for i := range best {
		best[i], holds[i] = float32(math.Inf(1)), map[int32]bool{}
	}
	eachPosting(t, ix, view, func(h int32, ids []uint32, rows []byte) {
		_, head := ix.eng.head(h)
		for j, id := range ids {
			holds[id][h] = true
			best[id] = min(best[id], ix.eng.rowDist(head, rows[j*ix.rowBytes:(j+1)*ix.rowBytes]))
		}
	})
	isHead := map[uint32]bool{}
	for _, id := range ix.eng.headIDs() {
		isHead[id] = true
	}
	for id, home := range ix.eng.labels().Homes {
		if home < 0 {
			if h := -2 - home; len(holds[id]) != 0 || home > -2 || ix.eng.headIDs()[h] != uint32(id) {
				t.Fatalf("vector %d: home %d, but in %d postings (head: %v)", id, home, len(holds[id]), isHead[uint32(id)])
			}
			continue
		}
		_, head := ix.eng.head(home)
		row, _ := bv.ReadRows(id, 1, nil)
		if !holds[id][home] || ix.eng.rowDist(head, row) != best[id] {
			t.Fatalf("vector %d: home %d (holds it: %v) at %v, nearest holding head at %v", id, home, holds[id][home], ix.eng.rowDist(head, row), best[id])
		}
	}
}

// An index with labels refuses a writable Open (updates do not keep
// labels yet) and a labels file of another build or damaged.
func TestLabelsRefused(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 5, 16, posting.DefaultCodec)
	labels, _ := datasets.NewLabels(make([][]int32, 2000), 4)
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.index, Options{Writable: true}); !errors.Is(err, ErrLabelsUpdate) {
		t.Errorf("writable Open: %v, want ErrLabelsUpdate", err)
	}
	path := filepath.Join(f.index, indexfile.LabelsFile)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 1
	os.WriteFile(path, data, 0o644)
	_, err := Open(f.index, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged labels.bin: %v", err)
	}
	// Attaching again replaces the damaged file.
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatalf("attach over a damaged labels.bin: %v", err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
}

// Label lists hold each carrier of a listed label exactly once; a filter
// on such a label reads them (all of them, when nprobe allows: exact),
// Check verifies them, a re-attach without lists removes their file, and
// a missing or damaged lists file is an error, not a silent answer.
func TestLabelLists(t *testing.T) {
	f, bv, labels := labelledFixture(t, 6000, 30, 300, 2)
	if err := AttachLabels(f.index, labels, LabelOptions{ListsMin: 0.05, ListsMax: 0.01}); err == nil || !strings.Contains(err.Error(), "want 0 < min <= max <= 1") {
		t.Errorf("min above max: %v", err)
	}
	o := LabelOptions{ListsMin: 0.005, ListsMax: 0.05}
	if err := AttachLabels(f.index, labels, o); err != nil {
		t.Fatal(err)
	}
	if err := AttachLabels(f.index, labels, o); err != nil { // again: the first lists file goes
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(f.index, "labellists.*.bin"))
	if len(files) != 1 {
		t.Fatalf("lists files after two attaches: %v", files)
	}
	bms := labels.Bitmaps()
	var listed []int32 // labels with lists
	var entries int64
	for x, bm := range bms {
		if c := bm.GetCardinality(); c >= 30 && c <= 300 {
			listed = append(listed, int32(x))
			entries += int64(c)
		}
	}
	r, err := Check(f.index)
	if err != nil {
		t.Fatal(err)
	}
	if r.ListEntries != entries || r.LabelLists == 0 || len(listed) < 5 {
		t.Fatalf("Check: %d lists of %d entries, want %d entries of %d labels", r.LabelLists, r.ListEntries, entries, len(listed))
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Each listed label's lists hold its carriers, each once.
	ll := &ix.eng.labels().Lists
	got := make([]*roaring.Bitmap, len(bms))
	label := 0
	err = eachExtent(ix.eng.labels().lists, func(i int32, ids []uint32, _ []byte, err error) error {
		for _, hi := ll.Of(label); int(i) >= hi; _, hi = ll.Of(label) {
			label++
		}
		if err != nil {
			return err
		}
		if got[label] == nil {
			got[label] = roaring.New()
		}
		for _, id := range ids {
			if !got[label].CheckedAdd(id) {
				t.Errorf("label %d: vector %d in two lists", label, id)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range listed {
		if got[x] == nil || !got[x].Equals(bms[x]) {
			t.Fatalf("label %d: lists hold %v, carriers %v", x, got[x], bms[x])
		}
	}
	// One-label filters read all their lists at nprobe 64 (no label has
	// more than 300/8 lists): the answer is the exact filtered top 10.
	filters := make([][]int32, f.q.N)
	allowed := make([]*roaring.Bitmap, f.q.N)
	for q := range filters {
		filters[q] = []int32{listed[q%len(listed)]}
		allowed[q] = bms[filters[q][0]]
	}
	gt, err := eval.ExactKNN(bv, f.q, eval.GTOptions{K: 10, Metric: vec.L2, Allowed: allowed})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ix.SearchBatchFiltered(context.Background(), f.q.Data, filters, 10, SearchParams{NProbe: 64}, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := eval.RecallAt(gt, &datasets.Results{N: f.q.N, K: 10, IDs: res.IDs}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Mean != 1 || res.Stats.ListsPlan != f.q.N || res.Stats.Pages == 0 || res.Stats.Postings == 0 {
		t.Errorf("recall %.3f (want 1), %d of %d queries by lists, %d pages", rec.Mean, res.Stats.ListsPlan, f.q.N, res.Stats.Pages)
	}
	// A list's damage is an error of the search that reads it.
	path := ix.eng.labels().lists.Path()
	bad := ll.Entries[ll.Starts[listed[0]]] // (ll is freed by Close)
	ix.Close()
	raw, _ := os.ReadFile(path)
	raw[bad.Offset+uint64(bad.Bytes)/2] ^= 0x40
	os.WriteFile(path, raw, 0o644)
	ix, err = Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Search(f.q.Row(0), 10, SearchParams{NProbe: 64, Filter: []int32{listed[0]}}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged list: %v", err)
	}
	ix.Close()
	if r, err := Check(f.index); !errors.Is(err, ErrCheckFailed) || !strings.Contains(r.Problems[0], "label list") {
		t.Errorf("Check of a damaged list: %v", err)
	}
	os.Remove(path)
	if _, err := Open(f.index, Options{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("missing lists file: %v", err)
	}
	// Without lists the same filters take the homes plan.
	if err := AttachLabels(f.index, labels, LabelOptions{NoLists: true}); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(f.index, "labellists.*.bin")); len(files) != 0 {
		t.Errorf("lists files without lists: %v", files)
	}
	ix, err = Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	res, err = ix.SearchBatchFiltered(context.Background(), f.q.Data, filters, 10, SearchParams{NProbe: 64}, 2)
	if err != nil {
		t.Fatal(err)
	}
	homes := 0 // filters matching at most FilterHomesMax of the index
	for _, a := range allowed {
		if float64(a.GetCardinality()) <= FilterHomesMax*6000 {
			homes++
		}
	}
	if res.Stats.ListsPlan != 0 || res.Stats.HomesPlan != homes || homes == 0 {
		t.Errorf("without lists: %d by lists, %d by homes of %d, want %d", res.Stats.ListsPlan, res.Stats.HomesPlan, f.q.N, homes)
	}
}

// labelledFixture is newFixture's uint8 L2 index of n 16-dimensional
// vectors and nq queries, with generated labels (vocab labels, half their
// draws following the vectors' neighbourhoods); the base stays open until
// the test ends.
func labelledFixture(t *testing.T, n, nq, vocab int, seed uint64) (*fixture, *datasets.VectorFile, *datasets.Labels) {
	t.Helper()
	f := newFixture(t, datasets.Uint8, vec.L2, n, nq, 16, posting.DefaultCodec)
	bv, err := datasets.OpenVectors(f.base, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bv.Close() })
	labels, err := datasets.GenerateLabels(bv, datasets.LabelParams{Vocab: vocab, Corr: 0.5, Seed: seed}, 2)
	if err != nil {
		t.Fatal(err)
	}
	return f, bv, labels
}
