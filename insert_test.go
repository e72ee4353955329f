package spann

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// extraRows generates n more vectors like the fixture's base.
func extraRows(t *testing.T, n, dim int, seed uint64) *datasets.Matrix {
	t.Helper()
	p := filepath.Join(t.TempDir(), "extra.u8bin")
	if err := datasets.Generate(p, datasets.GenParams{N: n, Dim: dim, Type: datasets.Uint8, Seed: seed, Clusters: 6}, 2, nil); err != nil {
		t.Fatal(err)
	}
	m, err := datasets.LoadVectors(p, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Inserted vectors get new ids, are found (exhaustive search stays exact
// over base, inserted and deleted together), and survive reopening and
// checkpoints; Check counts them as stored.
func TestInsert(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 600, 16, 77)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	first, err := ix.Insert(extra.Data[:400*16])
	if err != nil || first != 3000 {
		t.Fatalf("first insert: ids from %d, %v", first, err)
	}
	first, err = InsertVectors(ix, extra.Data[400*16:])
	if err != nil || first != 3400 || ix.N() != 3600 {
		t.Fatalf("second insert: ids from %d, n %d, %v", first, ix.N(), err)
	}
	all := &datasets.Matrix{N: 3600, Dim: 16, Data: append(bytes.Clone(base.Data), extra.Data...)}
	dead := map[int32]bool{}
	for _, id := range []int32{3001, 3002, 3599, 10, 20} {
		dead[id] = true
	}
	if err := ix.Delete([]int32{3001, 3002, 3599, 10, 20}); err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ix, all, dead)
	// Queries equal to inserted vectors find them first.
	res, err := ix.SearchBatch(extra.Data[:20*16], 1, SearchParams{NProbe: 16, Eps: -1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for q := 0; q < 20; q++ {
		if want := int32(3000 + q); !dead[want] && (res.IDs[q] != want || res.Dists[q] != 0) {
			t.Errorf("inserted vector %d searched for itself: got %d at %g", want, res.IDs[q], res.Dists[q])
		}
	}
	if _, err := ix.Insert(make([]byte, 17)); err == nil || !strings.Contains(err.Error(), "16-byte vectors") {
		t.Errorf("ragged insert: %v", err)
	}
	if _, err := InsertVectors(ix, make([]float32, 16)); !errors.Is(err, ErrType) {
		t.Errorf("float32 insert into a uint8 index: %v", err)
	}
	ix.Close()

	// Replayed from the log; after a checkpoint still there.
	ix, err = Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if ix.N() != 3600 || ix.Info().N != 3600 {
		t.Fatalf("reopened: n %d", ix.N())
	}
	checkLive(t, f, ix, all, dead)
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if first, err := ix.Insert(extra.Data[:16]); err != nil || first != 3600 {
		t.Fatalf("insert after checkpoint: %d %v", first, err)
	}
	all = &datasets.Matrix{N: 3601, Dim: 16, Data: append(all.Data, extra.Data[:16]...)}
	ix.Close()
	ro, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkLive(t, f, ro, all, dead)
	if _, err := ro.Insert(extra.Data[:16]); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only insert: %v", err)
	}
	ro.Close()
	if r, err := Check(f.index); err != nil || r.Vectors != 3601 || r.Unreachable != 0 || r.Deleted != 5 {
		t.Fatalf("check: %v %+v", err, r)
	}
}

// Inserts, deletes, searches and checkpoints at once (-race): every
// acknowledged insert is then found, nothing deleted is.
func TestInsertConcurrent(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 20, 16, posting.DefaultCodec)
	extra := extraRows(t, 200, 16, 78)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 2); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var mu sync.Mutex
	ids := map[int32][]byte{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < 200; i += 4 {
				row := extra.Row(i)
				id, err := ix.Insert(row)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[id] = row
				mu.Unlock()
				if i%50 == 0 {
					if err := ix.Checkpoint(); err != nil {
						t.Error(err)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	if len(ids) != 200 || ix.N() != 3200 {
		t.Fatalf("%d distinct ids, n %d", len(ids), ix.N())
	}
	for id, row := range ids {
		got, err := ix.Search(row, 1, SearchParams{NProbe: 16, Eps: -1})
		if err != nil || len(got) != 1 || got[0].Dist != 0 {
			t.Fatalf("inserted %d not found: %v %v", id, got, err)
		}
	}
}

// An inserter killed with SIGKILL loses no acknowledged insert.
func TestKilledInserter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	extra := extraRows(t, 400, 16, 79)
	rows := filepath.Join(t.TempDir(), "rows.u8bin")
	if err := datasets.WriteVectors(rows, extra); err != nil {
		t.Fatal(err)
	}
	points := []string{"wal: written#3", "wal: synced#8", "checkpoint: tombstones written#1", "wal: batch#30",
		"checkpoint: postings written#1", "checkpoint: directory written#2", "checkpoint: manifest written#1",
		"checkpoint: manifest written#3", "checkpoint: log reset#2"}
	for _, point := range points {
		out := killedChild(t, point, "SPANN_INSERT_CHILD="+f.index, "SPANN_INSERT_ROWS="+rows)
		ix, err := Open(f.index, Options{Writable: true})
		if err != nil {
			t.Fatalf("%s: reopen: %v", point, err)
		}
		stored := storedRows(t, ix)
		acked := 0
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var id, i int
			if _, err := fmt.Sscanf(sc.Text(), "inserted %d row %d", &id, &i); err != nil {
				continue
			}
			if !bytes.Equal(stored[int32(id)], extra.Row(i)) {
				t.Fatalf("%s: acknowledged insert %d (row %d) lost or changed", point, id, i)
			}
			acked++
		}
		t.Logf("%s: %d acknowledged, %d stored after reopening", point, acked, len(stored))
		ix.Close()
		if r, err := Check(f.index); err != nil {
			t.Fatalf("%s: check after reopening: %v\n%+v", point, err, r)
		}
	}
}

// storedRows returns every vector the index stores in its postings, its
// insert buffer or its heads, by (external) id; a vector in both (folded into postings, then
// replayed into the buffer again) fails the test.
func storedRows(t *testing.T, ix *Index) map[int32][]byte {
	t.Helper()
	stored, buffered := map[int32][]byte{}, map[int32]bool{}
	if buf := ix.buf.Load(); buf != nil {
		for h := range buf.lists {
			for _, e := range buf.list(int32(h)) {
				stored[e.id] = buf.row(e)
				buffered[e.id] = true
			}
		}
	}
	eachPosting(t, ix, ix.store.Snapshot(), func(h int32, ids []uint32, rows []byte) {
		for i, id := range ids {
			if buffered[int32(id)] {
				t.Fatalf("vector %d is both in posting %d and in the insert buffer", id, h)
			}
			stored[int32(id)] = bytes.Clone(rows[i*ix.rowBytes : (i+1)*ix.rowBytes])
		}
	})
	// A vector a split made a head is stored as the head's.
	e := ix.eng.(*engineT[uint8])
	set := e.current()
	for h, id := range set.ids {
		if _, ok := stored[int32(id)]; !ok && id != indexfile.RemovedHead {
			stored[int32(id)] = bytes.Clone(datasets.Bytes(set.row(int32(h), ix.dim)))
		}
	}
	if m := ix.idm.Load(); m != nil { // by the ids users see
		byExt := map[int32][]byte{}
		for _, id := range slices.Sorted(maps.Keys(stored)) { // a replaced vector's newest copy wins
			byExt[m.external(id)] = stored[id]
		}
		return byExt
	}
	return stored
}

// eachPosting reads and decodes every posting v names, in head order,
// and gives fn its ids and rows (valid during the call).
func eachPosting(t *testing.T, ix *Index, v *posting.View, fn func(h int32, ids []uint32, rows []byte)) {
	t.Helper()
	f, err := os.Open(ix.postings)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec, err := ix.store.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for h := range int32(v.Len()) {
		e := v.Entry(h)
		raw := make([]byte, e.Bytes)
		if _, err := f.ReadAt(raw, int64(e.Offset)); err != nil {
			t.Fatal(err)
		}
		ids, rows, err := dec.Decode(raw, e)
		if err != nil {
			t.Fatalf("posting %d: %v", h, err)
		}
		fn(h, ids, rows)
	}
}

// insertChild is TestKilledInserter's child: it inserts the rows of the
// vector file rows one at a time.
func insertChild(dir, rows string) {
	m, err := datasets.LoadVectors(rows, 0, 0)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	updateChild(dir, m.N, 40, func(ix *Index, i int) (string, error) {
		id, err := ix.Insert(m.Row(i))
		return fmt.Sprintf("inserted %d row %d", id, i), err
	})
}

// Checkpoint folds the insert buffer into postings.bin: a search answers
// exactly as before (the same vectors under the same heads), the buffer
// and the log are empty, deleted vectors leave the rewritten postings, a
// new generation's directory and manifest are committed (the one before
// the previous is removed), and a reopened index, writable or not,
// answers the same again.
func TestCheckpointFoldsInserts(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 40, 16, posting.DefaultCodec)
	extra := extraRows(t, 900, 16, 78)
	queries := extraRows(t, 50, 16, 79).Data
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	p := SearchParams{NProbe: 8, Eps: -1}
	before0, err := Check(f.index)
	if err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 3; round++ {
		rows := extra.Data[(round-1)*300*16 : round*300*16]
		if _, err := ix.Insert(rows); err != nil {
			t.Fatal(err)
		}
		// Delete some built and some inserted vectors.
		if err := ix.Delete([]int32{int32(round), int32(100 + round), int32(3000 + 300*(round-1) + 7)}); err != nil {
			t.Fatal(err)
		}
		want, err := ix.SearchBatch(queries, 10, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if buf := ix.buf.Load(); buf != nil && (buf.prev.Load() != nil || buf.recs.Load() != nil) {
			t.Fatalf("round %d: the insert buffer survived the checkpoint", round)
		}
		sameResults(t, fmt.Sprintf("round %d, folded", round), ix, queries, p, want)
		m, err := indexfile.ReadManifest(f.index)
		if err != nil || m.Generation != int64(round) || m.N != 3000+300*round {
			t.Fatalf("round %d: manifest %+v, %v", round, m, err)
		}
		for g := int64(0); g <= int64(round); g++ {
			_, err := os.Stat(filepath.Join(f.index, indexfile.DirectoryName(g)))
			if present := err == nil; present != (g >= int64(round)-1) {
				t.Errorf("round %d: directory of generation %d present: %v", round, g, present)
			}
		}
		if st, err := os.Stat(filepath.Join(f.index, walFile)); err != nil || st.Size() > 4096 {
			t.Errorf("round %d: log not emptied: %v, %v", round, st.Size(), err)
		}
		ro, err := Open(f.index, Options{})
		if err != nil {
			t.Fatal(err)
		}
		sameResults(t, fmt.Sprintf("round %d, reopened read-only", round), ro, queries, p, want)
		ro.Close()
		r, err := Check(f.index)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if r.Vectors != 3000+300*round || r.Deleted != 3*round || r.Unreachable != 0 {
			t.Fatalf("round %d: check %+v", round, r)
		}
	}
	after, err := Check(f.index)
	if err != nil {
		t.Fatal(err)
	}
	if after.Entries <= before0.Entries {
		t.Fatalf("posting entries %d after 900 inserts, %d before", after.Entries, before0.Entries)
	}
	// A checkpoint with only deletes rewrites the postings they leave
	// sparse (a small fixture's postings: every one holding the id);
	// one with nothing new commits no new generation.
	if err := ix.Delete([]int32{2000}); err != nil {
		t.Fatal(err)
	}
	if _, ok := storedRows(t, ix)[2000]; !ok {
		t.Fatal("vector 2000 not stored before the checkpoint")
	}
	for want := int64(4); want <= 5; want++ { // the second adds nothing
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		if m, _ := indexfile.ReadManifest(f.index); m.Generation != 4 {
			t.Fatalf("delete-only checkpoint: generation %d, want 4", m.Generation)
		}
	}
	if _, ok := storedRows(t, ix)[2000]; ok {
		t.Fatal("deleted vector 2000 still stored after the checkpoint")
	}
	ix.Close()
	ix, err = Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if ix.N() != 3900 || ix.Deleted() != 10 || ix.buf.Load() != nil {
		t.Fatalf("reopened: n %d, %d deleted", ix.N(), ix.Deleted())
	}
}

// sameResults checks that ix answers queries exactly as want.
func sameResults(t *testing.T, what string, ix *Index, queries []byte, p SearchParams, want *BatchResult) {
	t.Helper()
	got, err := ix.SearchBatch(queries, want.K, p, 1)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Dists, want.Dists) {
		t.Fatalf("%s: results differ from before the checkpoint", what)
	}
}

// Close while inserts run: each insert succeeds or fails with an error,
// none reads freed memory.
func TestCloseDuringInsert(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 3, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 400, 16, 84)
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := range 400 {
			if i == 10 {
				close(started)
			}
			if _, err := ix.Insert(extra.Row(i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	<-started
	ix.Close()
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) && !strings.Contains(err.Error(), "closed") {
		t.Errorf("insert after Close: %v", err)
	}
}

// TestCloseDuringCheckpoint: Close waits for a running checkpoint (which
// reads off-heap memory Close frees) and the checkpoint commits; a
// checkpoint after Close is refused with ErrClosed.
func TestCloseDuringCheckpoint(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 3, 16, posting.DefaultCodec)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 50, 16, 85)
	for i := range 50 {
		if _, err := ix.Insert(extra.Row(i)); err != nil {
			t.Fatal(err)
		}
	}
	frozen, release := make(chan struct{}), make(chan struct{})
	checkpointFrozen = func(*Index) { close(frozen); <-release }
	defer func() { checkpointFrozen = nil }()
	ckDone := make(chan error, 1)
	go func() { ckDone <- ix.Checkpoint() }()
	<-frozen
	closed := make(chan error, 1)
	go func() { closed <- ix.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a checkpoint ran", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-ckDone; err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := ix.Checkpoint(); !errors.Is(err, ErrClosed) {
		t.Fatalf("checkpoint after Close: %v, want ErrClosed", err)
	}
	re, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	if re.N() != 2050 {
		t.Fatalf("reopened: %d vectors, want 2050", re.N())
	}
}
