package spann

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// checkModel fails unless exhaustive search over ix answers every query
// exactly as brute force over model (external id → row) does, each
// result's id naming the row at its distance.
func checkModel(t *testing.T, what string, f *fixture, ix *Index, model map[int32][]byte) {
	t.Helper()
	all := len(ix.eng.headIDs())
	res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: all, HeadList: all, Eps: -1}, 2)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	l2 := func(a, b []byte) float32 {
		var d float32
		for i := range a {
			e := float32(a[i]) - float32(b[i])
			d += e * e
		}
		return d
	}
	for q := 0; q < f.q.N; q++ {
		var want []float32
		for _, row := range model {
			want = append(want, l2(f.q.Row(q), row))
		}
		slices.Sort(want)
		for r := 0; r < 10; r++ {
			id, d := res.IDs[q*10+r], res.Dists[q*10+r]
			row, ok := model[id]
			if !ok || l2(f.q.Row(q), row) != d || d != want[r] {
				t.Fatalf("%s: query %d rank %d: id %d at %g (in the model: %v), brute force %g", what, q, r, id, d, ok, want[r])
			}
		}
	}
}

// Explicit ids: inserted under the ids given, found under them, replaced
// with replace (the old vector gone), refused when present, deleted, given
// twice or negative; automatic ids continue after the largest; all of it
// through the log, a checkpoint (ids.bin) and reopening.
func TestExplicitIDs(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 30, 16, posting.DefaultCodec)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 20, 16, 87)
	model := map[int32][]byte{}
	for i := 0; i < base.N; i++ {
		model[int32(i)] = base.Row(i)
	}
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	if err := InsertVectorsWithIDs(ix, []int32{5000, 7000, 6000}, extra.Data[:3*16], false); err != nil {
		t.Fatal(err)
	}
	for k, id := range []int32{5000, 7000, 6000} {
		model[id] = extra.Row(k)
	}
	first, err := ix.Insert(extra.Data[3*16 : 5*16])
	if err != nil || first != 7001 {
		t.Fatalf("automatic ids after explicit ones: from %d, %v", first, err)
	}
	model[7001], model[7002] = extra.Row(3), extra.Row(4)
	// Replace an inserted and a built vector.
	if err := ix.InsertWithIDs([]int32{5000, 10}, extra.Data[5*16:7*16], true); err != nil {
		t.Fatal(err)
	}
	model[5000], model[10] = extra.Row(5), extra.Row(6)
	if err := ix.Delete([]int32{7000, 11}); err != nil {
		t.Fatal(err)
	}
	delete(model, 7000)
	delete(model, 11)
	for _, c := range []struct {
		ids     []int32
		replace bool
		want    string
	}{
		{[]int32{5000}, false, "already in the index"},
		{[]int32{12}, false, "already in the index"},
		{[]int32{7000}, true, "was deleted"},
		{[]int32{11}, false, "was deleted"},
		{[]int32{9000, 9000}, false, "given twice"},
		{[]int32{-4}, false, "negative"},
		{[]int32{9001, 9002}, false, "2 ids for 1 vectors"},
	} {
		rows := extra.Data[9*16 : (9+len(c.ids))*16]
		if c.want == "2 ids for 1 vectors" {
			rows = extra.Row(9)
		}
		if err := ix.InsertWithIDs(c.ids, rows, c.replace); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("InsertWithIDs(%v, replace %v): %v, want %q", c.ids, c.replace, err, c.want)
		}
	}
	if err := ix.Delete([]int32{8000}); err == nil || !strings.Contains(err.Error(), "no such id") {
		t.Errorf("delete of an id never given: %v", err)
	}
	checkModel(t, "in the log", f, ix, model)
	ix.Close()
	if ix, err = Open(f.index, Options{Writable: true}); err != nil {
		t.Fatal(err)
	}
	checkModel(t, "replayed", f, ix, model)
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	checkModel(t, "checkpointed", f, ix, model)
	if first, err := ix.Insert(extra.Row(10)); err != nil || first != 7003 {
		t.Fatalf("automatic id after a checkpoint: %d %v", first, err)
	}
	model[7003] = extra.Row(10)
	if err := ix.InsertWithIDs([]int32{5000}, extra.Row(11), true); err != nil {
		t.Fatal(err)
	}
	model[5000] = extra.Row(11)
	ix.Close()
	ro, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkModel(t, "reopened read-only", f, ro, model)
	got, err := ro.Search(extra.Row(11), 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1})
	if err != nil || got[0].ID != 5000 || got[0].Dist != 0 {
		t.Fatalf("replaced vector: %v %v", got, err)
	}
	if _, err := ro.Search(extra.Row(0), 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1}); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if _, err := Check(f.index); err != nil {
		t.Fatal(err)
	}
}

// Inserts with ids, replacements and deletes while searches run (-race):
// no search fails or returns an id twice.
func TestExplicitIDsConcurrent(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 20, 16, posting.DefaultCodec)
	extra := extraRows(t, 400, 16, 88)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 1)
			if err != nil {
				t.Error(err)
				return
			}
			for q := 0; q < f.q.N; q++ {
				row := slices.Clone(res.IDs[q*10 : q*10+10])
				slices.Sort(row)
				if len(slices.Compact(row)) != 10 {
					t.Errorf("query %d: an id twice: %v", q, res.IDs[q*10:q*10+10])
					return
				}
			}
		}
	}()
	for i := 0; i < 100; i++ {
		id := int32(10000 + i%40) // the second pass replaces the first
		if err := ix.InsertWithIDs([]int32{id}, extra.Row(i), i >= 40); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := ix.Delete([]int32{int32(i)}); err != nil {
				t.Fatal(err)
			}
			if err := ix.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	<-done
}

// Regressions. A refused insert leaves no gap that ids.bin cannot hold;
// insert records with ids replay in log order even when that is not the
// order of their ids (the first insert that gave ids committed second).
func TestExplicitIDsReplay(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 10, 16, posting.DefaultCodec)
	extra := extraRows(t, 10, 16, 89)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.InsertWithIDs([]int32{5000}, extra.Row(0), false); err != nil {
		t.Fatal(err)
	}
	if err := ix.InsertWithIDs([]int32{5000}, extra.Row(1), false); err == nil {
		t.Fatal("a present id accepted")
	}
	if err := ix.InsertWithIDs([]int32{5001}, extra.Row(2), false); err != nil {
		t.Fatal(err)
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if ix, err = Open(f.index, Options{Writable: true}); err != nil { // ids.bin has no gap
		t.Fatal(err)
	}
	// Two records by hand, in the order a race can commit them: internal
	// id 3003 (an automatic id from the map) before 3002 (given).
	heads, rows, err := ix.eng.assign(extra.Data[3*16 : 5*16])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.log.Append(recInsertIDs, encodeInsertIDs([]int32{5002}, 3003, heads[1:], rows[16:])); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.log.Append(recInsertIDs, encodeInsertIDs([]int32{4000}, 3002, heads[:1], rows[:16])); err != nil {
		t.Fatal(err)
	}
	ix.Close()
	// ids.bin is removed, as if the map began in the log.
	os.Remove(filepath.Join(f.index, indexfile.IDMapFile))
	ix, err = Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for _, c := range []struct {
		row int
		id  int32
	}{{3, 4000}, {4, 5002}} {
		got, err := ix.Search(extra.Row(c.row), 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1})
		if err != nil || got[0].ID != c.id || got[0].Dist != 0 {
			t.Fatalf("row %d: %v %v, want id %d", c.row, got, err, c.id)
		}
	}
}

// A checkpoint killed after writing ids.bin (which then covers ids the
// manifest does not): reopening replays the insert and its replacement in
// order, so the id has its new vector, the old one deleted, once.
func TestKilledUpsert(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	extra := extraRows(t, 2, 16, 90)
	rows := filepath.Join(t.TempDir(), "rows.u8bin")
	if err := datasets.WriteVectors(rows, extra); err != nil {
		t.Fatal(err)
	}
	killedChild(t, "checkpoint: tombstones written#1", "SPANN_UPSERT_CHILD="+f.index, "SPANN_INSERT_ROWS="+rows)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.Deleted() != 1 {
		t.Fatalf("%d deleted, want the replaced vector alone", ix.Deleted())
	}
	p := SearchParams{NProbe: 16, HeadList: 256, Eps: -1}
	if got, err := ix.Search(extra.Row(1), 1, p); err != nil || got[0].ID != 9000 || got[0].Dist != 0 {
		t.Fatalf("the new vector of id 9000: %v %v", got, err)
	}
	if got, err := ix.Search(extra.Row(0), 1, p); err != nil || (got[0].ID == 9000 && got[0].Dist == 0) {
		t.Fatalf("the replaced vector of id 9000 still found: %v %v", got, err)
	}
}

// upsertChild is TestKilledUpsert's child: id 9000 inserted with row 0,
// replaced by row 1, then a checkpoint (where the test kills it).
func upsertChild(dir, rows string) {
	m, err := datasets.LoadVectors(rows, 0, 0)
	if err == nil {
		var ix *Index
		if ix, err = Open(dir, Options{Writable: true}); err == nil {
			if err = ix.InsertWithIDs([]int32{9000}, m.Row(0), false); err == nil {
				if err = ix.InsertWithIDs([]int32{9000}, m.Row(1), true); err == nil {
					err = ix.Checkpoint()
				}
			}
		}
	}
	fmt.Println(err)
	os.Exit(1)
}
