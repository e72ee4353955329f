package spann

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
)

// Inserts with labels. An insert's labels travel in its log record (a
// recInsertLabels wrapping the recInsert or recInsertIDs record), are
// kept in memory here until a checkpoint folds them into the next
// generation's labels file (checkpointLabels), and are dropped from here
// once that generation is published. A filtered query ANDs its labels
// here as in the labels file (a vector's labels are all in one or the
// other: one record carries them), and scores the matching inserted
// vectors the labels file does not know yet directly from their rows,
// exactly: the homes and lists plans know nothing of them.

// Record type of an insert with labels in wal.log. Payload
// (little-endian): uint32 n; n uint32 label counts; the labels, int32
// each, row after row; then a uint8 record type (recInsert or
// recInsertIDs) and that record's payload, for the same n vectors.
const recInsertLabels byte = 4

// maxVectorLabels bounds the labels of one inserted vector.
const maxVectorLabels = 1 << 16

// insertedLabels holds the labels of inserted vectors not yet in a labels
// file. Inserts add under mu, queries read under its read lock.
type insertedLabels struct {
	mu   sync.RWMutex
	sets map[int32]*roaring.Bitmap // by label: inserted carriers (internal ids)
	rows map[uint32][]byte         // by id: the row of a labelled inserted vector
}

// add records that vectors first, first+1, … carry labels[i], their rows
// in rows (which must stay unchanged: a log record's payload).
func (il *insertedLabels) add(first int32, labels [][]int32, rows []byte, rowBytes int) {
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.sets == nil {
		il.sets, il.rows = map[int32]*roaring.Bitmap{}, map[uint32][]byte{}
	}
	for i, row := range labels {
		id := uint32(first) + uint32(i)
		for _, x := range row {
			if il.sets[x] == nil {
				il.sets[x] = roaring.New()
			}
			il.sets[x].Add(id)
		}
		if len(row) > 0 {
			il.rows[id] = rows[i*rowBytes : (i+1)*rowBytes]
		}
	}
}

// insertedMatch is the inserted vectors matching a query's filter, with
// their rows, taken together under the read lock: a checkpoint may drop
// the rows (trim) once it publishes the labels file that holds the
// vectors, while the query still searches the labels of before.
type insertedMatch struct {
	ids  *roaring.Bitmap
	rows map[uint32][]byte // the vectors' rows
}

// matching returns the inserted vectors carrying every label of filter,
// nil if none.
func (il *insertedLabels) matching(filter []int32) *insertedMatch {
	il.mu.RLock()
	defer il.mu.RUnlock()
	if len(il.sets) == 0 {
		return nil
	}
	sets := make([]*roaring.Bitmap, len(filter))
	for i, x := range filter {
		if sets[i] = il.sets[x]; sets[i] == nil {
			return nil
		}
	}
	m := roaring.FastAnd(sets...)
	if len(sets) == 1 {
		m = sets[0].Clone()
	}
	if m.IsEmpty() {
		return nil
	}
	im := &insertedMatch{ids: m, rows: make(map[uint32][]byte, m.GetCardinality())}
	for it := m.Iterator(); it.HasNext(); {
		id := it.Next()
		im.rows[id] = il.rows[id]
	}
	return im
}

// below returns label x's inserted carriers with ids below n (nil if
// none): what a checkpoint committing n vectors folds into its labels.
func (il *insertedLabels) below(x int32, n int) *roaring.Bitmap {
	il.mu.RLock()
	defer il.mu.RUnlock()
	bm := il.sets[x]
	if bm == nil {
		return nil
	}
	c := bm.Clone()
	c.RemoveRange(uint64(n), 1<<32)
	return c
}

// trim forgets the vectors below n, which the published labels file
// holds.
func (il *insertedLabels) trim(n int) {
	il.mu.Lock()
	defer il.mu.Unlock()
	for x, bm := range il.sets {
		if bm.RemoveRange(0, uint64(n)); bm.IsEmpty() {
			delete(il.sets, x)
		}
	}
	for id := range il.rows {
		if int(id) < n {
			delete(il.rows, id)
		}
	}
}

// scoreInserted scores the inserted vectors of m (matching the slot's
// filter) that its labels do not know (ids from s.lab.N on) into the
// slot's heap or range answers.
func (w *workerT[T]) scoreInserted(s *querySlot[T], m *insertedMatch) {
	it := m.ids.Iterator()
	it.AdvanceIfNeeded(uint32(s.lab.N))
	for it.HasNext() {
		id := it.Next()
		row := m.rows[id]
		if row == nil || (s.dead != nil && s.dead.Contains(id)) {
			continue
		}
		d := w.e.sp.Dist(s.q, datasets.Rows[T](row))
		switch {
		case s.ranged:
			if d <= s.radius {
				s.found = append(s.found, Neighbor{ID: int32(id), Dist: d})
			}
		case d <= s.heap.Worst():
			s.heap.PushUnique(int32(id), d)
		}
	}
}

// checkInsertLabels checks an insert's labels against the index's
// vocabulary and returns them sorted, without repeats.
func (ix *Index) checkInsertLabels(labels [][]int32, n int) ([][]int32, error) {
	lab := ix.eng.labels()
	if lab == nil {
		return nil, ErrNoLabels
	}
	if len(labels) != n {
		return nil, fmt.Errorf("spann: insert: labels for %d vectors, %d given", len(labels), n)
	}
	out := make([][]int32, n)
	for i, row := range labels {
		out[i] = slices.Compact(slices.Sorted(slices.Values(row)))
		for _, x := range out[i] {
			if x < 0 || int(x) >= lab.Vocab() {
				return nil, fmt.Errorf("spann: insert: vector %d has label %d, but the index's labels are 0..%d", i, x, lab.Vocab()-1)
			}
		}
		if len(out[i]) > maxVectorLabels {
			return nil, fmt.Errorf("spann: insert: vector %d has %d labels, at most %d", i, len(out[i]), maxVectorLabels)
		}
	}
	return out, nil
}

// encodeInsertLabels wraps an insert record (type typ, payload inner)
// with its vectors' labels.
func encodeInsertLabels(labels [][]int32, typ byte, inner []byte) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(len(labels)))
	for _, row := range labels {
		p = binary.LittleEndian.AppendUint32(p, uint32(len(row)))
	}
	for _, row := range labels {
		for _, x := range row {
			p = binary.LittleEndian.AppendUint32(p, uint32(x))
		}
	}
	return append(append(p, typ), inner...)
}

// splitInsertLabels parses the labels off a recInsertLabels payload and
// returns them with the wrapped record's type and payload.
func splitInsertLabels(p []byte) ([][]int32, byte, []byte, error) {
	if len(p) < 4 {
		return nil, 0, nil, fmt.Errorf("labelled insert record of %d bytes", len(p))
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n < 1 || n > (len(p)-4)/4 {
		return nil, 0, nil, fmt.Errorf("labelled insert record: %d vectors in %d bytes", n, len(p))
	}
	off, total := 4+4*n, 0
	counts := make([]int, n)
	for i := range counts {
		counts[i] = int(binary.LittleEndian.Uint32(p[4+4*i:]))
		if total += counts[i]; counts[i] > maxVectorLabels || total > (len(p)-off)/4 {
			return nil, 0, nil, fmt.Errorf("labelled insert record: %d labels for vector %d do not fit", counts[i], i)
		}
	}
	labels := make([][]int32, n)
	for i, c := range counts {
		labels[i] = make([]int32, c)
		for j := range labels[i] {
			if labels[i][j] = int32(binary.LittleEndian.Uint32(p[off:])); labels[i][j] < 0 {
				return nil, 0, nil, fmt.Errorf("labelled insert record: label %d", labels[i][j])
			}
			off += 4
		}
	}
	if off >= len(p) || (p[off] != recInsert && p[off] != recInsertIDs) {
		return nil, 0, nil, fmt.Errorf("labelled insert record: no insert record inside")
	}
	return labels, p[off], p[off+1:], nil
}
