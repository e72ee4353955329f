package spann

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// AttachLabels gives the index in dir its vectors' labels, for filtered
// search: row i of labels is vector i's. It writes the labels file of the
// index's generation (labels.bin, or labels-G.bin after checkpoints;
// layout in internal/indexfile/labels.go) with each label's bitmap of
// carriers, each vector's home posting — of the postings holding it, the
// one whose head is nearest to it — found by reading every posting once,
// and the label lists of the labels o chooses (labellists.go) in a lists
// file of their own. Checkpoints carry them on (checkpointLabels).
//
// It takes the index's update lock; the index must hold exactly
// labels.Rows() vectors, with no insert waiting in its log for a
// checkpoint. Attaching again replaces the labels (even a labels file
// that no longer opens) and removes the lists files it no longer names.
func AttachLabels(dir string, labels *datasets.Labels, o LabelOptions) error {
	if err := o.defaults(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	ix, err := Open(dir, Options{IO: "pread", Writable: true, noLabels: true})
	if err != nil {
		return err
	}
	defer ix.Close()
	if ix.N() != ix.Manifest.N || ix.buf.Load() != nil {
		return fmt.Errorf("%s: the index has inserts not yet checkpointed: checkpoint it (spann-update --checkpoint) before attaching labels", dir)
	}
	if labels.Rows() != ix.N() {
		return fmt.Errorf("%s: labels for %d vectors, the index has %d", dir, labels.Rows(), ix.N())
	}
	view := ix.store.Snapshot()
	ids, row := ix.eng.headsOf(nil)
	var rows []byte // every vector's row, for the lists
	if !o.NoLists {
		rows = make([]byte, ix.N()*ix.rowBytes)
	}
	homes, err := ix.homes(ix.store, ix.N(), ids, row, rows, o.Progress)
	if err != nil {
		return err
	}
	bitmaps := labels.Bitmaps()
	var lists *indexfile.LabelLists
	if !o.NoLists {
		if lists, err = ix.buildLabelLists(dir, bitmaps, homes, rows, &o); err != nil {
			return err
		}
	}
	name := indexfile.FileName(indexfile.LabelsFile, ix.state.Generation)
	if err := indexfile.WriteLabels(ix.fs, dir, name, ix.id, bitmaps, homes, view.Len(), lists); err != nil {
		return err
	}
	return ix.removeStale()
}

// homes reads every posting of st and returns each of the n vectors'
// home: the posting holding it with the nearest head, or -2-h for head h
// stored in no posting (see internal/indexfile/labels.go), or -1. heads
// are the postings' heads' base ids (indexfile.RemovedHead: removed), row
// gives their rows. rows, if not nil, gets every stored vector's row
// (vector i at i·rowBytes).
func (ix *Index) homes(st *posting.Store, n int, heads []uint32, row func(h int32) []byte, rows []byte, progress func(done, total int)) ([]int32, error) {
	homes := make([]int32, n)
	best := make([]float32, n)
	for i := range homes {
		homes[i], best[i] = -1, float32(math.Inf(1))
	}
	total := st.Snapshot().Len()
	err := eachExtent(st, func(h int32, ids []uint32, prows []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: posting %d: %w", st.Path(), h, err)
		}
		if heads[h] == indexfile.RemovedHead {
			return nil
		}
		head := row(h)
		for j, id := range ids {
			if int(id) >= n {
				return fmt.Errorf("%s: posting %d holds id %d, not below n = %d: %w", st.Path(), h, id, n, ErrCorrupt)
			}
			vrow := prows[j*ix.rowBytes : (j+1)*ix.rowBytes]
			if homes[id] == -1 && rows != nil {
				copy(rows[int(id)*ix.rowBytes:], vrow)
			}
			if d := ix.eng.rowDist(head, vrow); d < best[id] {
				homes[id], best[id] = h, d
			}
		}
		if progress != nil {
			progress(int(h)+1, total)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for h, id := range heads {
		if id != indexfile.RemovedHead && int(id) < n && homes[id] == -1 {
			homes[id] = int32(-2 - h) // a head in no posting: found in memory
			if rows != nil {
				copy(rows[int(id)*ix.rowBytes:], row(int32(h)))
			}
		}
	}
	return homes, nil
}

// labelsName returns the name of the labels file of generation gen in
// dir: labels-G.bin, or labels.bin (generation 0's, and what AttachLabels
// wrote before labels followed checkpoints). When labels-G.bin is missing
// but another generation's is there, a checkpoint has replaced gen while
// it was being opened: that is an error (Open then opens the new
// generation), never an index silently without its labels.
func labelsName(dir string, gen int64) (string, error) {
	name := indexfile.FileName(indexfile.LabelsFile, gen)
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil || gen == 0 {
		return name, nil
	}
	others, _ := filepath.Glob(filepath.Join(dir, strings.TrimSuffix(indexfile.LabelsFile, ".bin")+"-*.bin"))
	if len(others) > 0 {
		return "", fmt.Errorf("%s: %s is gone but %s is there: the index was checkpointed while it opened", dir, name, filepath.Base(others[0]))
	}
	return indexfile.LabelsFile, nil
}

// loadLabels reads labels.bin, if the index has one.
func (ix *Index) loadLabels(writable, skip bool) error {
	if skip {
		return nil
	}
	name, err := labelsName(ix.dir, ix.Manifest.Generation)
	if err != nil {
		return err
	}
	l, err := indexfile.ReadLabels(ix.dir, name, ix.id, ix.Manifest.N, ix.store.Snapshot().Len(), ix.mem)
	if err != nil || l == nil {
		return err
	}
	st, err := ix.newLabelState(l)
	if err != nil {
		return err
	}
	return ix.store.Publish(nil, -1, ix.eng.withLabels(nil, st))
}

// labelState is one version of an index's labels: labels.bin's contents
// and the store of the label lists it names. It hangs off a head set
// (headSet.labels), so that a query's labels, heads and postings are
// always of one version, and a checkpoint publishes new ones with its
// directory. A state made after Open lives on the Go heap, and its lists
// file is closed once nothing refers to it (runtime.AddCleanup): queries
// in flight keep theirs.
type labelState struct {
	*indexfile.Labels
	lists *posting.Store // nil without lists
	lfile *iouring.File
}

// newLabelState opens the lists l names, if any.
func (ix *Index) newLabelState(l *indexfile.Labels) (*labelState, error) {
	st := &labelState{Labels: l}
	if err := ix.openLists(st); err != nil {
		return nil, err
	}
	if st.lfile != nil {
		runtime.AddCleanup(st, func(f *iouring.File) { f.Close() }, st.lfile)
	}
	return st, nil
}

// Labels returns the size of the index's label vocabulary (labels
// 0..Labels()-1), 0 if it has no labels.
func (ix *Index) Labels() int {
	if lab := ix.eng.labels(); lab != nil {
		return lab.Vocab()
	}
	return 0
}

// removeStaleLists removes the label lists files of dir that no labels
// file there names (an earlier attach's, or an interrupted checkpoint's).
func removeStaleLists(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, e := range entries {
		if _, ok := indexfile.FileGeneration(indexfile.LabelsFile, e.Name()); ok {
			gen, ok, err := indexfile.ListsGen(filepath.Join(dir, e.Name()))
			if err != nil {
				return fmt.Errorf("keeping every label lists file: %w", err) // it may name any of them
			}
			if ok {
				keep[indexfile.ListsFile(gen)] = true
			}
		}
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasPrefix(name, "labellists.") && strings.HasSuffix(name, ".bin") && !keep[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
	}
	return nil
}

// checkpointLabels writes the labels of the generation next that a
// checkpoint is committing (its rewrite out, its head set set, nil if
// unchanged), before the manifest that names the generation: each
// vector's home and the label lists are recomputed from the new postings
// (a split moves vectors between postings, a rewrite drops deleted ones),
// the bitmaps carried over with the labels of the inserts it folds. It
// returns the new labels, on the Go heap.
//
// The cost is a read of every posting, as at AttachLabels (5 s on
// realsift-1M, and N·rowBytes of memory with lists, their clustering 5 s
// more); an incremental update of the homes of the vectors the rewrite
// moved would make it proportional to the change.
func (ix *Index) checkpointLabels(cur *labelState, next *indexfile.Manifest, out *rewrite, set any) (*labelState, error) {
	view := ix.store.Snapshot()
	entries := make([]posting.Entry, next.Heads)
	for h := range int32(view.Len()) {
		entries[h] = view.Entry(h)
	}
	for h, e := range out.changes {
		entries[h] = e
	}
	st, err := posting.OpenStore(ix.pfile, entries, ix.rowBytes)
	if err != nil {
		return nil, postingError(err)
	}
	ids, row := ix.eng.headsOf(set)
	ll := &cur.Lists
	var rows []byte
	if ll.Max > 0 {
		rows = make([]byte, next.N*ix.rowBytes)
	}
	homes, err := ix.homes(st, next.N, ids, row, rows, nil)
	if err != nil {
		return nil, err
	}
	bitmaps := make([]*roaring.Bitmap, cur.Vocab())
	for x := range bitmaps {
		bitmaps[x] = cur.Bitmap(x)
		if more := ix.ilab.below(int32(x), next.N); more != nil {
			bitmaps[x] = roaring.Or(bitmaps[x], more) // inserted since, and folded now
		}
	}
	var lists *indexfile.LabelLists
	if ll.Max > 0 {
		o := LabelOptions{ListsMin: ll.Min, ListsMax: ll.Max, Threads: 1} // the checkpoint's own thread
		if lists, err = ix.buildLabelLists(ix.dir, bitmaps, homes, rows, &o); err != nil {
			return nil, err
		}
	}
	name := indexfile.FileName(indexfile.LabelsFile, next.Generation)
	if err := indexfile.WriteLabels(ix.fs, ix.dir, name, ix.id, bitmaps, homes, next.Heads, lists); err != nil {
		return nil, err
	}
	l, err := indexfile.ReadLabels(ix.dir, name, ix.id, next.N, next.Heads, nil)
	if err != nil {
		return nil, err
	}
	return ix.newLabelState(l)
}
