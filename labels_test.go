package spann

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	f, _, labels := labelledFixture(t, 3000, 5, 300, 1)
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
	checkHomes(t, ix)
}

// checkHomes recomputes every vector's home from a decoded copy of every
// posting and compares the index's with it: the home holds the vector and
// its head is the nearest of those that do; a head stored in no posting
// is its own; a vector stored nowhere must be deleted.
func checkHomes(t *testing.T, ix *Index) {
	t.Helper()
	lab := ix.eng.labels()
	n := len(lab.Homes)
	best := make([]float32, n)
	holds := make([]map[int32]bool, n)
	rowOf := make([][]byte, n)
	for i := range best {
		best[i], holds[i] = float32(math.Inf(1)), map[int32]bool{}
	}
	eachPosting(t, ix, ix.store.Snapshot(), func(h int32, ids []uint32, rows []byte) {
		_, head := ix.eng.head(h)
		for j, id := range ids {
			row := rows[j*ix.rowBytes : (j+1)*ix.rowBytes]
			holds[id][h], rowOf[id] = true, bytes.Clone(row)
			best[id] = min(best[id], ix.eng.rowDist(head, row))
		}
	})
	heads := ix.eng.headIDs()
	dead := ix.dead.Load()
	for id, home := range lab.Homes {
		switch {
		case home == -1:
			if len(holds[id]) != 0 || dead == nil || !dead.Contains(uint32(id)) {
				t.Fatalf("vector %d: no home, but in %d postings (deleted: %v)", id, len(holds[id]), dead != nil && dead.Contains(uint32(id)))
			}
		case home <= -2:
			if h := -2 - home; len(holds[id]) != 0 || heads[h] != uint32(id) {
				t.Fatalf("vector %d: home %d, but in %d postings (head %d's id: %d)", id, home, len(holds[id]), h, heads[h])
			}
		default:
			_, head := ix.eng.head(home)
			if !holds[id][home] || ix.eng.rowDist(head, rowOf[id]) != best[id] {
				t.Fatalf("vector %d: home %d (holds it: %v), nearest holding head at %v", id, home, holds[id][home], best[id])
			}
		}
	}
}

// exactFiltered searches one filter per query, each a label with lists or
// one so rare that all its homes are read, at an nprobe that reads them
// all, and checks the answers are the exact filtered top 10 of the base
// vectors bv that are not deleted (inserted vectors carry no labels).
func exactFiltered(t *testing.T, ix *Index, bv *datasets.VectorFile, labels *datasets.Labels, q *datasets.Matrix) {
	t.Helper()
	bms := labels.Bitmaps()
	var listed, rare []int32
	for x, bm := range bms {
		switch c := bm.GetCardinality(); {
		case c >= 15 && c <= 150:
			listed = append(listed, int32(x))
		case c > 0 && c <= 8:
			rare = append(rare, int32(x))
		}
	}
	filters := make([][]int32, q.N)
	allowed := make([]*roaring.Bitmap, q.N)
	dead := ix.dead.Load()
	for i := range filters {
		pick := listed
		if i%2 == 1 {
			pick = rare
		}
		filters[i] = []int32{pick[(i*7)%len(pick)]}
		allowed[i] = bms[filters[i][0]].Clone()
		if dead != nil {
			allowed[i].AndNot(dead)
		}
	}
	gt, err := eval.ExactKNN(bv, q, eval.GTOptions{K: 10, Metric: vec.L2, Allowed: allowed})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ix.SearchBatchFiltered(context.Background(), q.Data, filters, 10, SearchParams{NProbe: 64}, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := eval.RecallAt(gt, &datasets.Results{N: q.N, K: 10, IDs: res.IDs}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Mean != 1 || res.Stats.ListsPlan == 0 || res.Stats.HomesPlan == 0 {
		t.Errorf("filtered recall %.3f, want 1 (%d queries by lists, %d by homes of %d)", rec.Mean, res.Stats.ListsPlan, res.Stats.HomesPlan, q.N)
	}
}

// Labels follow checkpoints: after deletes and inserts that split
// postings, the checkpoint writes the new generation's labels file (homes
// recomputed, lists rebuilt without the deleted vectors), filtered search
// is still exact where all candidates are read, Check passes, and the
// labels of the generation before the previous are removed.
func TestLabelsFollowCheckpoints(t *testing.T) {
	f, bv, labels := labelledFixtureLimit(t, 3000, 20, 2000, 3, 30)
	if err := AttachLabels(f.index, labels, LabelOptions{ListsMin: 0.005, ListsMax: 0.05}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	var del []int32
	for i := 0; i < 3000; i += 5 {
		del = append(del, int32(i))
	}
	heads := len(ix.eng.headIDs())
	for round, gen := range []string{"labels-000001.bin", "labels-000002.bin"} {
		if err := ix.Delete(del[round*len(del)/2 : (round+1)*len(del)/2]); err != nil {
			t.Fatal(err)
		}
		if _, err := ix.Insert(extraRows(t, 900, 16, uint64(78+round)).Data); err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(f.index, gen)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkHomes(t, ix)
		exactFiltered(t, ix, bv, labels, f.q)
	}
	if len(ix.eng.headIDs()) == heads {
		t.Fatalf("no posting split (%d heads): the test needs splits", heads)
	}
	ix.Close()
	if _, err := os.Stat(filepath.Join(f.index, indexfile.LabelsFile)); !os.IsNotExist(err) {
		t.Errorf("generation 0's labels.bin after two checkpoints: %v", err)
	}
	if files, _ := filepath.Glob(filepath.Join(f.index, "labellists.*.bin")); len(files) != 2 {
		t.Errorf("lists files: %v, want those of generations 1 and 2", files)
	}
	if r, err := Check(f.index); err != nil {
		t.Fatalf("Check: %v\n%+v", err, r)
	}
	ix, err = Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	exactFiltered(t, ix, bv, labels, f.q)
}

// A labelled index's inserter killed anywhere in its checkpoints reopens
// with labels that match its postings: Check passes, every home holds its
// vector, filtered search is exact where it reads every candidate.
func TestKilledLabelledInserter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f, bv, labels := labelledFixtureLimit(t, 3000, 20, 2000, 5, 30)
	if err := AttachLabels(f.index, labels, LabelOptions{ListsMin: 0.005, ListsMax: 0.05}); err != nil {
		t.Fatal(err)
	}
	rows := filepath.Join(t.TempDir(), "rows.u8bin")
	if err := datasets.WriteVectors(rows, extraRows(t, 400, 16, 81)); err != nil {
		t.Fatal(err)
	}
	for _, point := range []string{"checkpoint: postings written#1", "checkpoint: labels written#1", "checkpoint: manifest written#2", "checkpoint: log reset#1"} {
		killedChild(t, point, "SPANN_INSERT_CHILD="+f.index, "SPANN_INSERT_ROWS="+rows)
		ix, err := Open(f.index, Options{Writable: true})
		if err != nil {
			t.Fatalf("%s: reopen: %v", point, err)
		}
		checkHomes(t, ix)
		exactFiltered(t, ix, bv, labels, f.q)
		ix.Close()
		if r, err := Check(f.index); err != nil {
			t.Fatalf("%s: check after reopening: %v\n%+v", point, err, r)
		}
	}
}

// A damaged labels file is refused, and attaching again replaces it.
func TestLabelsRefused(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 5, 16, posting.DefaultCodec)
	labels, _ := datasets.NewLabels(make([][]int32, 2000), 4)
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
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
	return labelledFixtureLimit(t, n, nq, vocab, seed, 0)
}

// labelledFixtureLimit is labelledFixture with the index built with
// posting limit limit (0: none), so that inserts split postings.
func labelledFixtureLimit(t *testing.T, n, nq, vocab int, seed uint64, limit int) (*fixture, *datasets.VectorFile, *datasets.Labels) {
	t.Helper()
	f := newFixture(t, datasets.Uint8, vec.L2, n, nq, 16, posting.DefaultCodec)
	if limit > 0 {
		f.index = filepath.Join(f.dir, "limited")
		if _, err := Build(context.Background(), BuildOptions{Base: f.base, Out: f.index, Metric: vec.L2, HeadRatio: 0.1,
			Replicas: 4, PostingLimit: limit, Codec: posting.DefaultCodec, Threads: 2, Seed: 3, MemoryBudget: 256 << 20}); err != nil {
			t.Fatal(err)
		}
	}
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

// Inserts carry labels: filtered searches return them at once, from the
// log after a reopen, and from the labels file after a checkpoint, always
// as the exact answer where every candidate is read; bad labels are
// one-line errors.
func TestInsertLabeled(t *testing.T) {
	f, _, labels := labelledFixtureLimit(t, 3000, 20, 2000, 7, 30)
	if err := AttachLabels(f.index, labels, LabelOptions{ListsMin: 0.005, ListsMax: 0.05}); err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 300, 16, 82)
	// Each inserted vector gets a label of the base's (some with lists)
	// and every tenth a label no base vector carries.
	bms := labels.Bitmaps()
	var used, fresh []int32
	for x, bm := range bms {
		if c := bm.GetCardinality(); c >= 15 && c <= 150 {
			used = append(used, int32(x))
		} else if c == 0 {
			fresh = append(fresh, int32(x))
		}
	}
	rows := make([][]int32, 3300)
	for i := range 3000 {
		rows[i] = labels.Row(i)
	}
	inserted := make([][]int32, 300)
	for i := range inserted {
		inserted[i] = []int32{used[i%len(used)]}
		if i%10 == 0 {
			inserted[i] = append(inserted[i], fresh[0])
		}
		rows[3000+i] = inserted[i]
	}
	all, err := datasets.NewLabels(rows, labels.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	combined := filepath.Join(t.TempDir(), "all.u8bin")
	base, _ := datasets.LoadVectors(f.base, 0, 0)
	if err := datasets.WriteVectors(combined, &datasets.Matrix{Type: datasets.Uint8, N: 3300, Dim: 16, Data: append(base.Data, extra.Data...)}); err != nil {
		t.Fatal(err)
	}
	cv, err := datasets.OpenVectors(combined, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cv.Close()

	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	for _, c := range []struct {
		labels [][]int32
		want   string
	}{
		{[][]int32{{1}}, "labels for 1 vectors, 2 given"},
		{[][]int32{{1}, {2000}}, "vector 1 has label 2000, but the index's labels are 0..1999"},
		{[][]int32{{-3}, {1}}, "vector 0 has label -3"},
	} {
		if _, err := ix.InsertLabeled(extra.Data[:32], c.labels); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %v: %v, want %q", c.labels, err, c.want)
		}
	}
	if first, err := ix.InsertLabeled(extra.Data, inserted); err != nil || first != 3000 {
		t.Fatalf("InsertLabeled: %d, %v", first, err)
	}
	freshOnly := make([][]int32, f.q.N)
	for i := range freshOnly {
		freshOnly[i] = []int32{fresh[0]}
	}
	check := func(stage string) {
		t.Helper()
		exactFiltered(t, ix, cv, all, f.q)
		res, err := ix.SearchBatchFiltered(context.Background(), f.q.Data, freshOnly, 10, SearchParams{NProbe: 8}, 1)
		if err != nil {
			t.Fatal(err)
		}
		for q := 0; q < f.q.N; q++ {
			for _, id := range res.IDs[q*10 : (q+1)*10] {
				if id < 3000 || (id-3000)%10 != 0 {
					t.Fatalf("%s: query %d: id %d does not carry the fresh label", stage, q, id)
				}
			}
		}
		if n, err := ix.MatchCount([]int32{fresh[0]}); n != 30 || err != nil {
			t.Fatalf("%s: MatchCount %d, %v, want 30", stage, n, err)
		}
	}
	check("in the log")
	ix.Close()
	if ix, err = Open(f.index, Options{Writable: true}); err != nil { // replays the log
		t.Fatal(err)
	}
	check("replayed")
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	check("checkpointed")
	checkHomes(t, ix)
	ix.Close()
	if r, err := Check(f.index); err != nil {
		t.Fatalf("Check: %v\n%+v", err, r)
	}
	if ix, err = Open(f.index, Options{}); err != nil {
		t.Fatal(err)
	}
	check("reopened")
	if _, err := ix.InsertLabeled(extra.Data[:16], [][]int32{{1}}); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only insert: %v", err)
	}
}

// Filtered searches running while labelled inserts and checkpoints go on
// always find every insert acknowledged before they began: the labels
// move from memory to the labels file without a gap (run with -race).
func TestInsertLabeledConcurrent(t *testing.T) {
	f, _, labels := labelledFixtureLimit(t, 3000, 5, 2000, 9, 30)
	if err := AttachLabels(f.index, labels, LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh := int32(-1)
	for x, bm := range labels.Bitmaps() {
		if bm.IsEmpty() {
			fresh = int32(x)
			break
		}
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	extra := extraRows(t, 80, 16, 83)
	var acked atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 80 {
			if _, err := ix.InsertLabeled(extra.Row(i), [][]int32{{fresh}}); err != nil {
				t.Error(err)
				return
			}
			acked.Add(1)
			if i%20 == 19 {
				if err := ix.Checkpoint(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for searching := true; searching; {
		select {
		case <-done:
			searching = false
		default:
		}
		want := acked.Load()
		got, err := ix.Search(f.q.Row(0), 100, SearchParams{NProbe: 256, Filter: []int32{fresh}})
		if err != nil || int32(len(got)) < want {
			t.Errorf("%d inserts acknowledged, the search found %d (%v)", want, len(got), err)
			break
		}
	}
	<-done // the inserter, before Close
}

// A labelled insert record round-trips, and damaged ones are errors,
// never a panic or a negative label.
func FuzzInsertLabelsRecord(f *testing.F) {
	f.Add(encodeInsertLabels([][]int32{{1, 5}, {}, {7}}, recInsert, []byte{1, 2, 3}))
	f.Add(encodeInsertLabels([][]int32{{0}}, recInsertIDs, nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		labels, typ, inner, err := splitInsertLabels(p)
		if err != nil {
			return
		}
		if typ != recInsert && typ != recInsertIDs {
			t.Fatalf("inner type %d", typ)
		}
		for _, row := range labels {
			for _, x := range row {
				if x < 0 {
					t.Fatalf("label %d", x)
				}
			}
		}
		if again := encodeInsertLabels(labels, typ, inner); !bytes.Equal(again, p) {
			t.Fatalf("re-encoded as %x, read from %x", again, p)
		}
	})
}

// TestLabelsName: a generation's labels file, or labels.bin when the
// index has only that; an error, not an index without labels, when the
// generation's file is gone and another generation's is there (a
// checkpoint replaced it while the index was opening).
func TestLabelsName(t *testing.T) {
	dir := t.TempDir()
	touch := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if name, err := labelsName(dir, 2); err != nil || name != "labels.bin" {
		t.Fatalf("no labels: %q, %v", name, err)
	}
	touch("labels.bin")
	if name, err := labelsName(dir, 2); err != nil || name != "labels.bin" {
		t.Fatalf("labels.bin only: %q, %v", name, err)
	}
	touch("labels-000003.bin")
	if name, err := labelsName(dir, 3); err != nil || name != "labels-000003.bin" {
		t.Fatalf("generation 3: %q, %v", name, err)
	}
	if _, err := labelsName(dir, 2); err == nil || !strings.Contains(err.Error(), "labels-000002.bin is gone but labels-000003.bin is there") {
		t.Fatalf("generation 2 replaced: %v", err)
	}
	if name, err := labelsName(dir, 0); err != nil || name != "labels.bin" {
		t.Fatalf("generation 0: %q, %v", name, err)
	}
}

// TestIdleWorkersDropOldLists: a checkpoint that replaces the label lists
// closes the old lists reader of every idle worker, so that no idle worker
// keeps a removed lists file open.
func TestIdleWorkersDropOldLists(t *testing.T) {
	f, bv, labels := labelledFixtureLimit(t, 3000, 20, 2000, 3, 30)
	if err := AttachLabels(f.index, labels, LabelOptions{ListsMin: 0.005, ListsMax: 0.05}); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	exactFiltered(t, ix, bv, labels, f.q)
	holding := func() (stale, any int) {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		for _, w := range ix.free {
			if ws := w.(*workerT[uint8]); ws.lstate != nil {
				any++
				if ws.lstate != ix.eng.labels() {
					stale++
				}
			}
		}
		return stale, any
	}
	if _, any := holding(); any == 0 {
		t.Fatal("no idle worker holds a lists reader: the test needs one")
	}
	if _, err := ix.Insert(extraRows(t, 50, 16, 91).Data); err != nil {
		t.Fatal(err)
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if stale, _ := holding(); stale != 0 {
		t.Fatalf("%d idle workers still read the replaced lists", stale)
	}
}
