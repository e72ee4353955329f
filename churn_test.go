package spann

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// Churn with searches running throughout: rounds of inserts, deletes and
// a checkpoint (which rewrites postings, reusing the space of earlier
// rewrites) while two goroutines search. Every search must succeed (a
// reused extent read by a search would fail its CRC), never return an id
// deleted before it started, and find a live inserted vector searched for
// itself; after each round an exhaustive search must equal brute force
// over the live set.
func TestChurnConcurrent(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 20, 16, posting.DefaultCodec)
	base, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := extraRows(t, 1200, 16, 81)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	all := &datasets.Matrix{N: base.N, Dim: 16, Data: bytes.Clone(base.Data)}
	// deadBefore[id] is set once Delete(id) returned; probe holds inserted
	// ids that are never deleted, for the self-search check.
	var deadBefore sync.Map
	var probe atomic.Pointer[[]int32]
	probe.Store(&[]int32{})
	stop := make(chan struct{})
	var searches atomic.Int64
	var bg sync.WaitGroup
	for g := 0; g < 2; g++ {
		bg.Add(1)
		go func(g int) {
			defer bg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				ids := *probe.Load()
				dead := map[int32]bool{}
				deadBefore.Range(func(k, _ any) bool { dead[k.(int32)] = true; return true })
				res, err := ix.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 1)
				if err != nil {
					t.Error(err)
					return
				}
				for _, id := range res.IDs {
					if dead[id] {
						t.Errorf("deleted id %d returned", id)
						return
					}
				}
				if len(ids) > 0 {
					id := ids[rng.IntN(len(ids))]
					row := extra.Row(int(id) - base.N)
					// (A wide head list: at nprobe 16 the default one misses
					// the nearest head of a few of these vectors.)
					got, err := ix.Search(row, 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1})
					if err != nil || len(got) != 1 || got[0].Dist != 0 {
						t.Errorf("inserted %d not found: %v %v", id, got, err)
						return
					}
				}
				searches.Add(1)
			}
		}(g)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	dead, kept := map[int32]bool{}, map[int32]bool{}
	var keep []int32
	for round := 0; round < 6; round++ {
		rows := extra.Data[round*200*16 : (round+1)*200*16]
		first, err := ix.Insert(rows)
		if err != nil {
			t.Fatal(err)
		}
		all.Data = append(all.Data, rows...)
		all.N += 200
		var del []int32
		for len(del) < 100 {
			id := int32(rng.IntN(all.N))
			if !dead[id] && !kept[id] && (id < first || id >= first+100) { // the first 100 new ones stay, for the probes
				dead[id] = true
				del = append(del, id)
			}
		}
		if err := ix.Delete(del); err != nil {
			t.Fatal(err)
		}
		for _, id := range del {
			deadBefore.Store(id, true)
		}
		for i := int32(0); i < 100; i++ {
			keep = append(keep, first+i)
			kept[first+i] = true
		}
		next := append([]int32(nil), keep...)
		probe.Store(&next)
		if err := ix.Checkpoint(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		checkLive(t, f, ix, all, dead)
	}
	close(stop)
	bg.Wait()
	if searches.Load() == 0 {
		t.Fatal("no search ran during the churn")
	}
	ix.Close()
	if r, err := Check(f.index); err != nil || r.Vectors != 3000+1200 || r.Deleted != len(dead) {
		t.Fatalf("check: %v %+v", err, r)
	}
}

// Checkpoints reuse the pages of postings rewritten before, so repeated
// rewrites of every posting do not grow postings.bin without bound (this
// small file settles at about twice its built size); while another Index
// has the directory open read-only, they append instead.
func TestCheckpointReusesSpace(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	extra := extraRows(t, 4800, 16, 82)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	size := func() int64 {
		st, err := os.Stat(ix.postings)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	built := size()
	var sizes []int64
	for round := 0; round < 16; round++ {
		// Replace 300 vectors: most postings are rewritten every round.
		if _, err := ix.Insert(extra.Data[round*300*16 : (round+1)*300*16]); err != nil {
			t.Fatal(err)
		}
		del := make([]int32, 300)
		for i := range del {
			del[i] = int32(round*300 + i)
		}
		if err := ix.Delete(del); err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, size())
	}
	t.Logf("postings.bin: built %d, after each round %v", built, sizes)
	if last := sizes[len(sizes)-1]; last > 3*built || slices.Max(sizes[8:]) > slices.Max(sizes[:8]) {
		t.Fatalf("postings.bin grew from %d to %d bytes under churn (%v)", built, last, sizes)
	}
	// A reader elsewhere holds the space: the next checkpoint appends.
	ro, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before, seen := size(), decodeView(t, ro, ro.store.Snapshot())
	for round := 0; round < 3; round++ {
		if _, err := ix.Insert(extra.Data[round*300*16 : (round+1)*300*16]); err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if grown := size(); grown <= before {
		t.Fatalf("checkpoints with a reader open: %d -> %d bytes, want appended", before, grown)
	}
	if !maps.EqualFunc(decodeView(t, ro, ro.store.Snapshot()), seen, bytes.Equal) {
		t.Fatal("the reader's postings were overwritten")
	}
	res, err := ro.SearchBatch(f.q.Data, 10, SearchParams{NProbe: 16, Eps: -1}, 1)
	if err != nil || len(res.IDs) == 0 {
		t.Fatalf("the reader's old generation after the checkpoint: %v", err)
	}
	ro.Close()
	if _, err := Check(f.index); err != nil {
		t.Fatal(err)
	}
}

// A directory version a search still holds keeps its postings' pages:
// checkpoints that cannot wait for it append instead of overwriting them,
// and every posting it names still decodes to what it held.
func TestHeldViewKeepsItsPostings(t *testing.T) {
	defer func(w time.Duration) { retiredWait = w }(retiredWait)
	retiredWait = time.Millisecond
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	extra := extraRows(t, 2400, 16, 83)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	churn := func(round int) {
		if _, err := ix.Insert(extra.Data[round*300*16 : (round+1)*300*16]); err != nil {
			t.Fatal(err)
		}
		if err := ix.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 3; round++ { // garbage to reuse
		churn(round)
	}
	held := ix.store.Acquire() // as a search in flight
	want := decodeView(t, ix, held)
	for round := 3; round < 8; round++ {
		churn(round)
	}
	if got := decodeView(t, ix, held); !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatal("postings of a held directory version were overwritten")
	}
	held.Release()
	before, _ := os.Stat(ix.postings)
	for round := 0; round < 3; round++ {
		churn(round) // (the same vectors again, under new ids)
	}
	after, _ := os.Stat(ix.postings)
	if after.Size() > before.Size()+before.Size()/2 {
		t.Fatalf("released, the space is still not reused: %d -> %d bytes", before.Size(), after.Size())
	}
}

// decodeView reads and decodes every posting v names, keyed by head.
func decodeView(t *testing.T, ix *Index, v *posting.View) map[int32][]byte {
	t.Helper()
	out := map[int32][]byte{}
	eachPosting(t, ix, v, func(h int32, ids []uint32, rows []byte) {
		var b bytes.Buffer
		for _, id := range ids {
			fmt.Fprintf(&b, "%d,", id)
		}
		out[h] = append(b.Bytes(), rows...)
	})
	return out
}

// A writer streaming inserts and deletes, with checkpoints, killed with
// SIGKILL at 24 points (inside the log's group commit, in the middle of a
// checkpoint's posting rewrites, and after each of its steps), each
// kill resuming from what the one before left: after every reopening
// each acknowledged insert is stored with its row exactly once (not
// folded and buffered both), each acknowledged delete holds, no stored
// vector is other than a row the writer inserted, and Check passes.
func TestKilledUpdater(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	killUpdates(t, f, extraRows(t, 600, 16, 84), nil)
}

// The same with postings splitting (posting limit 30, inserts crowded
// into one region), killed also in the middle of splits and after the
// new heads are written.
func TestKilledSplitter(t *testing.T) {
	if testing.Short() {
		t.Skip("runs writers in child processes")
	}
	f, _, extra := splitFixture(t)
	killUpdates(t, f, extra, []string{"checkpoint: posting split#1", "checkpoint: posting split#7", "checkpoint: posting split#30",
		"checkpoint: heads written#1", "checkpoint: heads written#2", "checkpoint: manifest written#3"})
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if n := len(ix.eng.headIDs()); n <= 300 {
		t.Fatalf("%d heads: no posting was split", n)
	} else {
		t.Logf("%d heads after the kills, from 300", n)
	}
	checkHeadGraph(t, ix)
}

// killUpdates runs TestKilledUpdater's kill sequence on f with the rows
// of extra, at its points plus more.
func killUpdates(t *testing.T, f *fixture, extra *datasets.Matrix, more []string) {
	t.Helper()
	rows := filepath.Join(t.TempDir(), "rows.u8bin")
	if err := datasets.WriteVectors(rows, extra); err != nil {
		t.Fatal(err)
	}
	inserted := map[string]bool{}
	for i := 0; i < extra.N; i++ {
		inserted[string(extra.Row(i))] = true
	}
	var points []string
	for _, p := range []string{"wal: written", "wal: synced", "wal: batch"} {
		points = append(points, p+"#3", p+"#20", p+"#41")
	}
	for _, p := range []string{"checkpoint: tombstones written", "checkpoint: postings written", "checkpoint: directory written",
		"checkpoint: manifest written", "checkpoint: log reset"} {
		points = append(points, p+"#1", p+"#2")
	}
	points = append(points, "checkpoint: posting rewritten#5", "checkpoint: posting rewritten#60", "checkpoint: posting rewritten#150",
		"checkpoint: posting rewritten#300", "checkpoint: posting rewritten#700")
	points = append(points, more...)
	ackedIns := map[int32]int{} // id -> row
	ackedDel := map[int32]bool{}
	for _, point := range points {
		out := killedChild(t, point, "SPANN_UPDATE_CHILD="+f.index, "SPANN_INSERT_ROWS="+rows)
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			var id, i int
			if _, err := fmt.Sscanf(sc.Text(), "inserted %d row %d", &id, &i); err == nil {
				ackedIns[int32(id)] = i
			} else if _, err := fmt.Sscanf(sc.Text(), "deleted %d", &id); err == nil {
				ackedDel[int32(id)] = true
			}
		}
		ix, err := Open(f.index, Options{Writable: true})
		if err != nil {
			t.Fatalf("%s: reopen: %v", point, err)
		}
		stored := storedRows(t, ix)
		for id, i := range ackedIns {
			if !ackedDel[id] && !bytes.Equal(stored[id], extra.Row(i)) {
				t.Fatalf("%s: acknowledged insert %d (row %d) lost or changed", point, id, i)
			}
		}
		for id := range ackedDel {
			if i, ok := ix.idm.Load().internal(id, ix.total.Load()); !ok || !ix.dead.Load().Contains(uint32(i)) {
				t.Fatalf("%s: acknowledged delete of %d lost", point, id)
			}
		}
		for id, row := range stored {
			if id >= 3000 && !inserted[string(row)] {
				t.Fatalf("%s: stored vector %d is no row the writer inserted", point, id)
			}
		}
		n, dead := ix.N(), ix.Deleted()
		ix.Close()
		if _, err := Check(f.index); err != nil {
			t.Fatalf("%s: %v", point, err)
		}
		t.Logf("%s: %d inserts and %d deletes acknowledged so far; n %d, %d deleted", point, len(ackedIns), len(ackedDel), n, dead)
	}
}

// mixedChild is TestKilledUpdater's child: from 2 goroutines it inserts
// the rows of the vector file rows one at a time (every third under an id
// of its own), deleting after each an
// earlier id (alternately a built one and one just inserted), with a
// checkpoint every 25 operations.
func mixedChild(dir, rows string) {
	m, err := datasets.LoadVectors(rows, 0, 0)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	updateChild(dir, 100000, 25, func(ix *Index, i int) (string, error) {
		var id int32
		var err error
		if i%3 == 0 {
			// An id of our own: unique, as n grows with every insert and
			// the two goroutines differ in i's parity; and below every
			// automatic id, which follow the largest given.
			id = 2_000_000_000 - 2*int32(ix.N()) - int32(i%2)
			err = ix.InsertWithIDs([]int32{id}, m.Row(i%m.N), false)
		} else {
			id, err = ix.Insert(m.Row(i % m.N))
		}
		if err != nil {
			return "", err
		}
		victim := int32(i*37) % 3000
		if i%2 == 1 {
			victim = id
		}
		if err := ix.Delete([]int32{victim}); err != nil {
			return "", err
		}
		return fmt.Sprintf("inserted %d row %d\ndeleted %d", id, i%m.N, victim), nil
	})
}

// Updates go on while a checkpoint folds: an insert and a delete made
// after its freeze (from inside it, which would deadlock if it excluded
// updates throughout) are acknowledged, searchable, left in the log by
// the checkpoint, and there after reopening; the folded ones are in the
// postings.
func TestUpdatesDuringCheckpoint(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	extra := extraRows(t, 400, 16, 85)
	ix, err := Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ix.Close() }()
	if _, err := ix.Insert(extra.Data[:300*16]); err != nil {
		t.Fatal(err)
	}
	var during int32
	defer func() { checkpointFrozen = nil }()
	checkpointFrozen = func(ix *Index) {
		checkpointFrozen = nil
		var err error
		if during, err = ix.Insert(extra.Row(300)); err != nil {
			t.Error(err)
		}
		if err := ix.Delete([]int32{7, 3001}); err != nil {
			t.Error(err)
		}
	}
	if err := ix.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if during != 3300 {
		t.Fatalf("insert during the checkpoint got id %d", during)
	}
	self := func(ix *Index, what string) {
		t.Helper()
		got, err := ix.Search(extra.Row(300), 1, SearchParams{NProbe: 16, HeadList: 256, Eps: -1})
		if err != nil || len(got) != 1 || got[0].ID != during || got[0].Dist != 0 {
			t.Fatalf("%s: the vector inserted during the checkpoint: %v %v", what, got, err)
		}
		if d := ix.dead.Load(); d == nil || !d.Contains(7) || !d.Contains(3001) {
			t.Fatalf("%s: the deletes made during the checkpoint are lost", what)
		}
	}
	self(ix, "after the checkpoint")
	if buf := ix.buf.Load(); buf == nil || buf.prev.Load() != nil || len(*buf.recs.Load()) != 1 {
		t.Fatal("the buffer should hold exactly the insert made during the checkpoint")
	}
	if m, _ := indexfile.ReadManifest(f.index); m.N != 3300 {
		t.Fatalf("manifest n %d, want the 3300 ids frozen", m.N)
	}
	ix.Close()
	ix, err = Open(f.index, Options{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	self(ix, "reopened")
	if ix.N() != 3301 || len(*ix.buf.Load().recs.Load()) != 1 {
		t.Fatalf("reopened: n %d", ix.N())
	}
	stored := storedRows(t, ix)
	for i := 0; i < 300; i++ {
		if id := int32(3000 + i); id != 3001 && !bytes.Equal(stored[id], extra.Row(i)) {
			t.Fatalf("folded insert %d lost", id)
		}
	}
}
