package spann

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// ErrLabelsUpdate is returned by a writable Open of an index with labels:
// updates do not yet keep labels.bin (its bitmaps and homes) in step.
var ErrLabelsUpdate = errors.New("spann: the index has labels, which updates do not maintain yet")

// AttachLabels gives the index in dir its vectors' labels, for filtered
// search: row i of labels is vector i's. It writes labels.bin (layout in
// internal/indexfile/labels.go) with each label's bitmap of carriers, each
// vector's home posting — of the postings holding it, the one whose head
// is nearest to it — found by reading every posting once, and the label
// lists of the labels o chooses (labellists.go) in a lists file of their
// own.
//
// The index must hold exactly labels.Rows() vectors, none inserted since
// its build. Attaching again replaces the labels (even a labels.bin that
// no longer opens) and removes the lists files it no longer names.
func AttachLabels(dir string, labels *datasets.Labels, o LabelOptions) error {
	if err := o.defaults(); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	ix, err := Open(dir, Options{IO: "pread", noLabels: true})
	if err != nil {
		return err
	}
	defer ix.Close()
	if ix.N() != ix.Manifest.N || ix.buf.Load() != nil {
		return fmt.Errorf("%s: labels for an index with inserted vectors are not supported yet", dir)
	}
	if labels.Rows() != ix.N() {
		return fmt.Errorf("%s: labels for %d vectors, the index has %d", dir, labels.Rows(), ix.N())
	}
	var rows []byte // every vector's row, for the lists
	if !o.NoLists {
		rows = make([]byte, ix.N()*ix.rowBytes)
	}
	homes, err := ix.homes(rows, o.Progress)
	if err != nil {
		return err
	}
	bitmaps := labels.Bitmaps()
	var lists *indexfile.LabelLists
	if !o.NoLists {
		if lists, err = ix.buildLabelLists(dir, bitmaps, rows, &o); err != nil {
			return err
		}
	}
	if err := indexfile.WriteLabels(ix.fs, dir, ix.id, bitmaps, homes, ix.store.Snapshot().Len(), lists); err != nil {
		return err
	}
	keep := ""
	if lists != nil {
		keep = indexfile.ListsFile(lists.Gen)
	}
	return removeOldLists(dir, keep)
}

// removeOldLists removes dir's label lists files other than keep: those of
// earlier attaches (and of one interrupted before its labels.bin).
func removeOldLists(dir, keep string) error {
	old, err := filepath.Glob(filepath.Join(dir, "labellists.*.bin"))
	if err != nil {
		return err
	}
	for _, path := range old {
		if filepath.Base(path) != keep {
			if err := os.Remove(path); err != nil {
				return err
			}
		}
	}
	return nil
}

// homes reads every posting and returns each vector's home: the posting
// holding it with the nearest head, or -2-h for head h stored in no
// posting (see internal/indexfile/labels.go). rows, if not nil, gets every
// vector's row (vector i at i·rowBytes; a head in no posting from memory).
func (ix *Index) homes(rows []byte, progress func(done, total int)) ([]int32, error) {
	homes := make([]int32, ix.N())
	best := make([]float32, ix.N())
	for i := range homes {
		homes[i], best[i] = -1, float32(math.Inf(1))
	}
	total := ix.store.Snapshot().Len()
	err := ix.eachPosting(func(h int32, ids []uint32, prows []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: posting %d: %w", ix.postings, h, err)
		}
		if ix.eng.removedHead(h) {
			return nil
		}
		_, head := ix.eng.head(h)
		for j, id := range ids {
			if int(id) >= len(homes) {
				return fmt.Errorf("%s: posting %d holds id %d, not below n = %d: %w", ix.postings, h, id, len(homes), ErrCorrupt)
			}
			row := prows[j*ix.rowBytes : (j+1)*ix.rowBytes]
			if homes[id] == -1 && rows != nil {
				copy(rows[int(id)*ix.rowBytes:], row)
			}
			if d := ix.eng.rowDist(head, row); d < best[id] {
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
	for h, id := range ix.eng.headIDs() {
		if id != indexfile.RemovedHead && int(id) < len(homes) && homes[id] == -1 {
			homes[id] = int32(-2 - h) // a head in no posting: found in memory
			if rows != nil {
				_, row := ix.eng.head(int32(h))
				copy(rows[int(id)*ix.rowBytes:], row)
			}
		}
	}
	return homes, nil
}

// loadLabels reads labels.bin, if the index has one.
func (ix *Index) loadLabels(writable, skip bool) error {
	if skip {
		return nil
	}
	if _, err := os.Stat(filepath.Join(ix.dir, indexfile.LabelsFile)); err == nil && writable {
		return fmt.Errorf("%s: %w", ix.dir, ErrLabelsUpdate)
	}
	l, err := indexfile.ReadLabels(ix.dir, ix.id, ix.Manifest.N, ix.store.Snapshot().Len(), ix.mem)
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
