package spann

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/internal/wal"
	"github.com/gospann/spann/memindex"
)

// Inserts: an inserted vector is assigned to its heads as a built one is
// (the head graph's candidate heads, the RNG rule, up to the build's
// replicas), logged with its heads in one wal.log record, and once
// durable added to an in-memory insert buffer that searches scan next to
// the postings of the heads they probe (no I/O). Open rebuilds the buffer
// from the log; Checkpoint folds it into the postings (merge.go) and
// empties both.

// Record type of an insert in wal.log. Payload (little-endian): uint32
// first id, uint32 n; per row a uint8 head count c and c uint32 heads;
// then the n rows.
const recInsert byte = 2

// bufEntry is one inserted vector under one of its heads: its id and the
// record that holds its row (an index into insertBuffer.recs).
type bufEntry struct {
	id  int32
	rec int32
}

// insertBuffer holds the inserted vectors by head. Each head's list, and
// the list of records, is replaced behind its own atomic pointer and only
// ever grows: a new list may share its predecessor's backing array, into
// which only indices past every older list's length are written, so a
// query that loaded an older list never reads what an Insert is writing.
// An Insert publishes a head's longer list without copying any other
// head's; a query reads each list it needs once. (A query that started
// before an Insert returned may see that Insert under some heads and not
// others.) One writer at a time: ix.dmu held, or Open.
//
// Why: a first form copied a map of every touched head per Insert and
// kept a 32-byte entry (id and row slice) per head of each vector:
// replaying 100,000 realsift-1M inserts at Open allocated 1.07 GB and the
// buffer held 57 MB (heap profile). Entries are now 8 bytes, and the rows
// stay in the records' payloads, which checkpoints keep anyway.
type insertBuffer struct {
	lists []atomic.Pointer[[]bufEntry] // by head
	recs  atomic.Pointer[[]*insertRecord]
	// prev is the buffer a checkpoint is folding into postings, from
	// when it froze it (nothing is added to a frozen buffer, and a
	// frozen buffer's own prev never changes: an earlier checkpoint
	// that failed) until it has published the postings that hold it.
	prev atomic.Pointer[insertBuffer]
}

func newInsertBuffer(heads int) *insertBuffer {
	return &insertBuffer{lists: make([]atomic.Pointer[[]bufEntry], heads)}
}

// list returns head h's inserted vectors (none from a nil buffer, or for
// a head newer than the buffer).
func (b *insertBuffer) list(h int32) []bufEntry {
	if b == nil || int(h) >= len(b.lists) {
		return nil
	}
	if l := b.lists[h].Load(); l != nil {
		return *l
	}
	return nil
}

// row returns the row of an entry of a list loaded from b. (The records
// were published before the lists that name them.)
func (b *insertBuffer) row(e bufEntry) []byte {
	r := (*b.recs.Load())[e.rec]
	return r.row(int(e.id - r.first))
}

// grown returns b with lists for n heads (a checkpoint split postings):
// the lists and records are shared, and only the new buffer grows them
// from now on (so, as within one buffer, nobody reads what is written).
func (b *insertBuffer) grown(n int) *insertBuffer {
	g := newInsertBuffer(n)
	for h := range b.lists {
		g.lists[h].Store(b.lists[h].Load())
	}
	g.recs.Store(b.recs.Load())
	g.prev.Store(b.prev.Load())
	return g
}

// add publishes rec's vectors under their heads.
func (b *insertBuffer) add(rec *insertRecord) {
	var recs []*insertRecord
	if cur := b.recs.Load(); cur != nil {
		recs = *cur
	}
	recs = append(recs, rec)
	b.recs.Store(&recs)
	ri := int32(len(recs) - 1)
	byHead := map[int32][]bufEntry{}
	for i := 0; i < rec.n; i++ {
		e := bufEntry{id: rec.first + int32(i), rec: ri}
		for _, h := range rec.heads[i] {
			byHead[h] = append(byHead[h], e)
		}
	}
	for h, es := range byHead {
		next := append(b.list(h), es...)
		b.lists[h].Store(&next)
	}
}

// insertRecord is a decoded insert record.
type insertRecord struct {
	first    int32
	n        int
	heads    [][]int32
	rows     []byte
	rowBytes int
}

func (r *insertRecord) row(i int) []byte { return r.rows[i*r.rowBytes : (i+1)*r.rowBytes] }

func encodeInsert(first int32, heads [][]int32, rows []byte) []byte {
	p := binary.LittleEndian.AppendUint32(nil, uint32(first))
	p = binary.LittleEndian.AppendUint32(p, uint32(len(heads)))
	for _, hs := range heads {
		p = append(p, byte(len(hs)))
		for _, h := range hs {
			p = binary.LittleEndian.AppendUint32(p, uint32(h))
		}
	}
	return append(p, rows...)
}

// decodeInsert parses and checks an insert record's payload; the rows
// alias p.
func decodeInsert(p []byte, rowBytes, nHeads int) (*insertRecord, error) {
	if len(p) < 8 {
		return nil, fmt.Errorf("insert record of %d bytes", len(p))
	}
	r := &insertRecord{first: int32(binary.LittleEndian.Uint32(p)), n: int(binary.LittleEndian.Uint32(p[4:])), rowBytes: rowBytes}
	if r.first < 0 || r.n < 1 || int64(r.first)+int64(r.n) > math.MaxInt32 {
		return nil, fmt.Errorf("insert of %d vectors from id %d", r.n, r.first)
	}
	off := 8
	for i := 0; i < r.n; i++ {
		if off >= len(p) {
			return nil, fmt.Errorf("insert record cut short in its heads")
		}
		c := int(p[off])
		off++
		if c < 1 || off+4*c > len(p) {
			return nil, fmt.Errorf("insert record: vector %d has %d heads", i, c)
		}
		hs := make([]int32, c)
		for j := range hs {
			hs[j] = int32(binary.LittleEndian.Uint32(p[off:]))
			if hs[j] < 0 || int(hs[j]) >= nHeads {
				return nil, fmt.Errorf("insert record: head %d of %d", hs[j], nHeads)
			}
			off += 4
		}
		r.heads = append(r.heads, hs)
	}
	if len(p)-off != r.n*rowBytes {
		return nil, fmt.Errorf("insert record: %d bytes of rows for %d vectors of %d", len(p)-off, r.n, rowBytes)
	}
	r.rows = p[off:]
	return r, nil
}

// applyInsert adds a checked record to the index's state (ix.dmu held,
// or during Open).
func (ix *Index) applyInsert(rec *insertRecord, payload []byte) {
	buf := ix.buf.Load()
	if buf == nil {
		buf = newInsertBuffer(len(ix.eng.headIDs()))
		ix.buf.Store(buf)
	}
	for _, hs := range rec.heads {
		if int(slices.Max(hs)) >= len(buf.lists) { // assigned to a head of a split
			buf = buf.grown(len(ix.eng.headIDs()))
			ix.buf.Store(buf)
			break
		}
	}
	buf.add(rec)
	rec.heads = nil // in the lists now
	end := int64(rec.first) + int64(rec.n)
	if end > ix.total.Load() {
		ix.total.Store(end)
	}
	if end > ix.acked.Load() {
		ix.acked.Store(end)
	}
}

// Insert adds vectors — rows of the index's element type and dimension,
// raw little-endian bytes — under new ids, first to first+n-1 (after the
// largest id so far), which it returns once they are durable in the
// write-ahead log; searches that start afterwards can return them. Needs
// Options.Writable; safe while searches and other updates run.
func (ix *Index) Insert(rows []byte) (first int32, err error) {
	return ix.insert(nil, rows, false, nil)
}

// InsertLabeled is Insert for an index with labels: vector i carries
// labels[i] (each in 0..Labels()-1; none is allowed), logged with it, so
// that filtered searches return it from the moment Insert returns and the
// next checkpoint stores its labels with the others.
func (ix *Index) InsertLabeled(rows []byte, labels [][]int32) (first int32, err error) {
	if labels == nil {
		labels = [][]int32{}
	}
	return ix.insert(nil, rows, false, labels)
}

// InsertWithIDsLabeled is InsertWithIDs with labels, as InsertLabeled.
func (ix *Index) InsertWithIDsLabeled(ids []int32, rows []byte, labels [][]int32, replace bool) error {
	if ids == nil {
		ids = []int32{}
	}
	if labels == nil {
		labels = [][]int32{}
	}
	_, err := ix.insert(ids, rows, replace, labels)
	return err
}

// InsertWithIDs is Insert under the given ids (one per row, each ≥ 0,
// none given twice): an id already in the index is an error unless
// replace is set, when its vector is replaced (its old one deleted, in
// the same log record); an id deleted before is always an error, since a
// deleted id never comes back. Automatic ids continue after the largest
// id given.
func (ix *Index) InsertWithIDs(ids []int32, rows []byte, replace bool) error {
	if ids == nil {
		ids = []int32{}
	}
	_, err := ix.insert(ids, rows, replace, nil)
	return err
}

// insert is Insert (ids nil) and InsertWithIDs, with labels (nil: none,
// for an index with or without labels).
func (ix *Index) insert(ids []int32, rows []byte, replace bool, labels [][]int32) (first int32, err error) {
	if ix.log == nil {
		return 0, ErrReadOnly
	}
	if len(rows) == 0 || len(rows)%ix.rowBytes != 0 {
		return 0, fmt.Errorf("spann: insert: %d bytes is not a positive whole number of %d-byte vectors", len(rows), ix.rowBytes)
	}
	n := len(rows) / ix.rowBytes
	// The head search reads heads and graph, which Close frees once
	// nothing is busy (a first form crashed in it when Close came first).
	if err := ix.enter(); err != nil {
		return 0, err
	}
	defer ix.leave()
	if labels != nil {
		if labels, err = ix.checkInsertLabels(labels, n); err != nil {
			return 0, err
		}
	}
	heads, rows, err := ix.eng.assign(rows)
	if err != nil {
		return 0, err
	}
	ix.umu.RLock()
	defer ix.umu.RUnlock()
	ix.dmu.Lock()
	if int64(n) > math.MaxInt32-ix.total.Load() {
		ix.dmu.Unlock()
		return 0, fmt.Errorf("spann: insert of %d vectors: ids would pass %d", n, math.MaxInt32)
	}
	// The ids are checked before any is reserved, so that a refused
	// insert leaves no gap.
	first = int32(ix.total.Load())
	exts, err := ix.reserveIDs(ids, n, first, replace)
	if err != nil {
		ix.dmu.Unlock()
		return 0, err
	}
	ix.total.Add(int64(n)) // reserved now, so that concurrent Inserts get other ids
	ix.dmu.Unlock()
	typ, payload := recInsert, encodeInsert(first, heads, rows)
	if exts != nil {
		typ, payload = recInsertIDs, encodeInsertIDs(exts, first, heads, rows)
	}
	if labels != nil {
		typ, payload = recInsertLabels, encodeInsertLabels(labels, typ, payload)
	}
	if _, err := ix.log.Append(typ, payload); err != nil {
		return 0, ix.updateError("insert", err)
	}
	// The rows end the payload; the buffer points into it.
	rec := &insertRecord{first: first, n: n, heads: heads, rows: payload[len(payload)-len(rows):], rowBytes: ix.rowBytes}
	ix.dmu.Lock()
	if exts != nil {
		ix.applyIDs(first, exts, nil)
		first = exts[0]
	}
	if labels != nil {
		ix.ilab.add(rec.first, labels, rec.rows, ix.rowBytes) // before the buffer: a query that sees the vector sees its labels
	}
	ix.applyInsert(rec, payload)
	ix.dmu.Unlock()
	return first, nil
}

// InsertVectors is Insert for typed vectors (len a multiple of Dim); the
// element type must be the index's.
func InsertVectors[T Element](ix *Index, vectors []T) (int32, error) {
	if err := ix.checkElem(elemType[T]()); err != nil {
		return 0, err
	}
	return ix.Insert(datasets.Bytes(vectors))
}

// InsertVectorsWithIDs is InsertWithIDs for typed vectors.
func InsertVectorsWithIDs[T Element](ix *Index, ids []int32, vectors []T, replace bool) error {
	if err := ix.checkElem(elemType[T]()); err != nil {
		return err
	}
	return ix.InsertWithIDs(ids, datasets.Bytes(vectors), replace)
}

// replayInsert applies a logged insert at Open. One whose ids are below
// the manifest's n is in postings.bin already: a checkpoint committed it
// and was cut short before it emptied the log.
func (ix *Index) replayInsert(r wal.Record, dead *roaring.Bitmap) error {
	bad := func(err error) error {
		return fmt.Errorf("%w: %s record %d: %v", ErrCorrupt, filepath.Join(ix.dir, walFile), r.Seq, err)
	}
	var labels [][]int32
	if r.Type == recInsertLabels {
		var err error
		if labels, r.Type, r.Payload, err = splitInsertLabels(r.Payload); err != nil {
			return bad(err)
		}
	}
	var exts []int32
	if r.Type == recInsertIDs {
		var err error
		var rest []byte
		if exts, rest, err = splitInsertIDs(r.Payload); err != nil {
			return bad(err)
		}
		r.Payload = rest
	}
	if len(r.Payload) >= 8 {
		first, n := int64(binary.LittleEndian.Uint32(r.Payload)), int64(binary.LittleEndian.Uint32(r.Payload[4:]))
		switch folded := int64(ix.Manifest.N); {
		case first+n <= folded:
			return nil
		case first < folded:
			return bad(fmt.Errorf("insert of ids %d..%d straddles the %d ids checkpointed", first, first+n-1, folded))
		}
	}
	payload := append([]byte(nil), r.Payload...) // the replay buffer is reused
	rec, err := decodeInsert(payload, ix.rowBytes, len(ix.eng.headIDs()))
	if err != nil {
		return bad(err)
	}
	if exts != nil {
		if len(exts) != rec.n {
			return bad(fmt.Errorf("%d external ids for %d vectors", len(exts), rec.n))
		}
		ix.applyIDs(rec.first, exts, dead)
	}
	if labels != nil {
		if len(labels) != rec.n {
			return bad(fmt.Errorf("labels for %d vectors, %d inserted", len(labels), rec.n))
		}
		ix.ilab.add(rec.first, labels, rec.rows, ix.rowBytes)
	}
	ix.applyInsert(rec, payload)
	return nil
}

// assign finds each row's heads as the build does and returns them with
// the rows as stored (normalised for cosine).
func (e *engineT[T]) assign(raw []byte) ([][]int32, []byte, error) {
	ix := e.ix
	p := ix.Manifest.Params
	replicas, cands := max(p.Replicas, 1), max(p.CandidateHeads, p.Replicas, 1)
	rng := p.RNGFactor
	if rng <= 0 {
		rng = 1
	}
	rows := datasets.Rows[T](raw)
	if ix.metric == vec.Cosine {
		rows = append([]T(nil), rows...)
		vec.NormalizeRows(rows, ix.dim)
	}
	set := e.current()
	headDist := func(x, y int32) float32 { return e.sp.Dist(set.row(x, ix.dim), set.row(y, ix.dim)) }
	out := make([][]int32, len(rows)/ix.dim)
	// The head-graph searches are the cost: split the batch over the
	// cores, each part with its own searcher.
	parts := min(runtime.GOMAXPROCS(0), (len(out)+63)/64)
	per := (len(out) + parts - 1) / parts
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for t := 0; t < parts; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			s := set.graph.NewSearcher()
			for i := t * per; i < min(len(out), (t+1)*per); i++ {
				v := rows[i*ix.dim : (i+1)*ix.dim]
				found := s.Search(v, cands, 2*cands)
				out[i] = build.ChooseReplicas(found, replicas, float32(rng), float32(p.ReplicaEps), headDist, nil)
				if len(out[i]) == 0 || len(out[i]) > 255 {
					errs[t] = fmt.Errorf("spann: insert: vector %d got %d heads", i, len(out[i]))
					return
				}
			}
		}(t)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return out, datasets.Bytes(rows), nil
}

// scanBuffered scores the inserted vectors under the query's candidate
// heads into its heap: those of buf and of the frozen buffers from
// frozen on (loaded with buf, before the query's directory version).
func (w *workerT[T]) scanBuffered(s *querySlot[T], set *headSet[T], buf, frozen *insertBuffer, heads []memindex.Neighbor) {
	w.scanBuffer(s, set, buf, heads)
	for b := frozen; b != nil; b = b.prev.Load() {
		w.scanBuffer(s, set, b, heads)
	}
}

func (w *workerT[T]) scanBuffer(s *querySlot[T], set *headSet[T], buf *insertBuffer, heads []memindex.Neighbor) {
	for _, h := range heads {
		w.scanList(s, buf, buf.list(h.ID))
		if len(set.adopt) > 0 { // removed heads' (see headSet.adopt)
			for _, r := range set.adopt[h.ID] {
				w.scanList(s, buf, buf.list(r))
			}
		}
	}
}

// scanList scores the buffered vectors of one list of buf.
func (w *workerT[T]) scanList(s *querySlot[T], buf *insertBuffer, l []bufEntry) {
	if len(l) == 0 {
		return
	}
	worst := s.heap.Worst()
	recs := *buf.recs.Load() // after the list: it holds every record the list names
	for _, e := range l {
		r := recs[e.rec]
		d := w.e.sp.Dist(s.q, datasets.Rows[T](r.row(int(e.id-r.first))))
		if s.allow != nil && !s.allow.Contains(uint32(e.id)) {
			continue // (a read-only Open may replay inserts logged before labels.bin was attached)
		}
		if s.ranged {
			if d <= s.radius && (s.dead == nil || !s.dead.Contains(uint32(e.id))) {
				s.found = append(s.found, Neighbor{ID: e.id, Dist: d})
			}
			continue
		}
		if d <= worst && (s.dead == nil || !s.dead.Contains(uint32(e.id))) {
			s.heap.PushUnique(e.id, d)
			worst = s.heap.Worst()
		}
	}
}
