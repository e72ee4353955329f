package spann

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/indexfile"
)

// Explicit ids (InsertWithIDs, spann-update --ids). Postings, tombstones,
// the insert buffer and the log hold internal ids: dense, assigned in
// order, never reused. Until an insert gives ids of its own, every id a
// user sees is its internal id. From the first such insert on (internal
// id base), an idMap gives each later internal id its external one; ids
// below base stay their own. Replacing a vector (replace, --upsert) gives
// its external id a new internal id and deletes the old one, so the old
// copies in postings are tombstoned like any deleted vector: no version
// per entry is needed. A deleted external id is never given again.
//
// Searches map their answers through ext (grown in place behind an atomic
// pointer, entries published before the vectors that need them); the
// rest is the writer's, under ix.dmu.
type idMap struct {
	base    int32
	ext     atomic.Pointer[[]int32] // ext[i-base]: the external id of internal id i (-1: an id no insert took)
	intern  map[int32]int32         // external id → its newest internal id ≥ base (or below, replacing one)
	pending map[int32]bool          // external ids of inserts not yet acknowledged
	next    int32                   // the next automatic external id
}

// Record type of an insert with external ids in wal.log. Payload
// (little-endian): uint32 n, n int32 external ids, then a recInsert
// payload for the same n vectors.
const recInsertIDs byte = 3

func newIDMap(base int32) *idMap {
	m := &idMap{base: base, intern: map[int32]int32{}, pending: map[int32]bool{}, next: base}
	m.ext.Store(&[]int32{})
	return m
}

// external returns internal id i's external id.
func (m *idMap) external(i int32) int32 {
	if m == nil || i < m.base {
		return i
	}
	return (*m.ext.Load())[i-m.base]
}

// internal returns the newest internal id of external id x among those
// below total (the ids given out), and whether there is one.
func (m *idMap) internal(x int32, total int64) (int32, bool) {
	if m != nil {
		if i, ok := m.intern[x]; ok {
			return i, true
		}
		if x >= m.base {
			return 0, false
		}
	}
	return x, x >= 0 && int64(x) < total
}

// record gives internal id i external id x (ext must already reach i),
// returning the internal id x had before, if any (to be deleted).
func (m *idMap) record(i, x int32) (prev int32, replaced bool) {
	if p, ok := m.internal(x, int64(i)); ok && p != i {
		prev, replaced = p, true
	}
	m.intern[x] = i
	m.next = max(m.next, x+1)
	return prev, replaced
}

// grow sets the external ids of internal ids first, first+1, … to exts.
// Inserts may be applied out of the order of their ids: the gap before
// one is filled with -1 until the inserts it belongs to are applied.
// Only positions no published vector has are written.
func (m *idMap) grow(first int32, exts []int32) {
	ext := *m.ext.Load()
	if first < m.base {
		// Replay met the first insert that gave ids after a later one
		// that took ids from the map (their log records are in the order
		// of their commits, not of their ids): the map starts there.
		// Every id between was that insert's. (Only at Open: alone.)
		pre := make([]int32, m.base-first)
		for i := range pre {
			pre[i] = -1
		}
		ext = append(pre, ext...)
		m.base = first
	}
	for need := int(first-m.base) + len(exts); len(ext) < need; {
		ext = append(ext, -1)
	}
	copy(ext[first-m.base:], exts)
	m.ext.Store(&ext)
}

// reserveIDs checks and reserves the external ids of an insert whose
// internal ids start at first (ix.dmu held): given ones must be new, or
// present and replace set; none may be deleted or given twice. Without
// ids it picks the next ones (nil: the internal ids, while no insert has
// given ids). It returns them, nil when they are the internal ids.
func (ix *Index) reserveIDs(ids []int32, n int, first int32, replace bool) ([]int32, error) {
	m := ix.idm.Load()
	if ids == nil {
		if m == nil {
			return nil, nil
		}
		exts := make([]int32, n)
		for i := range exts {
			exts[i] = m.next + int32(i)
			m.pending[exts[i]] = true
		}
		m.next += int32(n)
		return exts, nil
	}
	if len(ids) != n {
		return nil, fmt.Errorf("spann: insert: %d ids for %d vectors", len(ids), n)
	}
	seen := make(map[int32]bool, n)
	dead := ix.dead.Load()
	for _, x := range ids {
		switch i, ok := m.internal(x, ix.total.Load()); {
		case x < 0:
			return nil, fmt.Errorf("spann: insert: id %d is negative", x)
		case seen[x]:
			return nil, fmt.Errorf("spann: insert: id %d given twice", x)
		case m != nil && m.pending[x]:
			return nil, fmt.Errorf("spann: insert: id %d is being inserted by another call", x)
		case ok && dead != nil && dead.Contains(uint32(i)):
			return nil, fmt.Errorf("spann: insert: id %d was deleted, and ids are never given again", x)
		case ok && !replace:
			return nil, fmt.Errorf("spann: insert: id %d is already in the index (replace it with upsert)", x)
		}
		seen[x] = true
	}
	if m == nil {
		m = newIDMap(first)
		ix.idm.Store(m)
	}
	for _, x := range ids {
		m.pending[x] = true
		m.next = max(m.next, x+1)
	}
	return ids, nil
}

// applyIDs publishes the external ids exts of internal ids from first on
// and deletes the vectors they replace (ix.dmu held, or during Open with
// dead the bitmap being rebuilt). Called before the vectors are
// published, so no search returns both versions of an id (for a moment
// it may return neither).
func (ix *Index) applyIDs(first int32, exts []int32, dead *roaring.Bitmap) {
	m := ix.idm.Load()
	if m == nil {
		m = newIDMap(first)
		ix.idm.Store(m)
	}
	m.grow(first, exts)
	var gone []uint32
	for k, x := range exts {
		delete(m.pending, x)
		if prev, ok := m.record(first+int32(k), x); ok {
			gone = append(gone, uint32(prev))
		}
	}
	if len(gone) == 0 {
		return
	}
	if dead != nil {
		dead.AddMany(gone)
		return
	}
	next := roaring.New()
	if cur := ix.dead.Load(); cur != nil {
		next = cur.Clone()
	}
	next.AddMany(gone)
	ix.dead.Store(next)
}

// loadIDMap reads ids.bin, the external ids as of the last checkpoint,
// up to the manifest's n: a checkpoint writes it before its commit, so it
// may cover ids that the log, not the files, holds (and will replay).
func (ix *Index) loadIDMap() error {
	f, err := indexfile.ReadIDMap(ix.dir, ix.id)
	if err != nil || f == nil {
		return err
	}
	if int(f.Base) >= ix.Manifest.N {
		return nil // every id it maps is in the log
	}
	m := newIDMap(f.Base)
	m.grow(f.Base, f.Ext[:min(len(f.Ext), ix.Manifest.N-int(f.Base))])
	for k, x := range f.Ext {
		if x >= 0 {
			m.record(f.Base+int32(k), x)
		}
	}
	ix.idm.Store(m)
	return nil
}

// saveIDMap writes ids.bin for the internal ids below n (a checkpoint).
func (ix *Index) saveIDMap(n int) error {
	m := ix.idm.Load()
	if m == nil {
		return nil
	}
	ext := *m.ext.Load()
	ext = ext[:min(len(ext), max(0, n-int(m.base)))]
	return indexfile.WriteIDMap(ix.fs, ix.dir, ix.id, &indexfile.IDMap{Base: m.base, Ext: ext})
}

// externals returns the external ids of the internal ids ids (in place).
func (ix *Index) externals(ids []int32) []int32 {
	if m := ix.idm.Load(); m != nil {
		for k, i := range ids {
			if i >= 0 {
				ids[k] = m.external(i)
			}
		}
	}
	return ids
}

// internals returns the internal ids of external ids (for Delete),
// failing on one the index does not hold.
func (ix *Index) internals(ids []int32) ([]int32, error) {
	m := ix.idm.Load()
	out := make([]int32, len(ids))
	for k, x := range ids {
		i, ok := m.internal(x, ix.acked.Load())
		if !ok {
			return nil, fmt.Errorf("spann: delete %d: no such id", x)
		}
		out[k] = i
	}
	return out, nil
}

func encodeInsertIDs(exts []int32, first int32, heads [][]int32, rows []byte) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(len(exts)))
	for _, x := range exts {
		p = binary.LittleEndian.AppendUint32(p, uint32(x))
	}
	return append(p, encodeInsert(first, heads, rows)...)
}

// splitInsertIDs parses the external ids off a recInsertIDs payload and
// returns them with the recInsert payload that follows.
func splitInsertIDs(p []byte) ([]int32, []byte, error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("insert record of %d bytes", len(p))
	}
	n := int(binary.LittleEndian.Uint32(p))
	if n < 1 || len(p) < 4+4*n+8 || int(binary.LittleEndian.Uint32(p[4+4*n+4:])) != n {
		return nil, nil, fmt.Errorf("insert record: %d external ids that do not match its vectors", n)
	}
	exts := make([]int32, n)
	for k := range exts {
		if exts[k] = int32(binary.LittleEndian.Uint32(p[4+4*k:])); exts[k] < 0 {
			return nil, nil, fmt.Errorf("insert record: external id %d", exts[k])
		}
	}
	return exts, p[4+4*n:], nil
}
