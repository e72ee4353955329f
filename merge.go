package spann

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/crash"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

// Folding inserts into postings.bin (a checkpoint's second half).
//
// Every posting that has buffered vectors is rewritten, copy-on-write: its
// extent is read and decoded, its deleted ids dropped, the buffered rows
// under its head added, and the result appended past the committed end of
// postings.bin. Then, in this order, each step durable before the next:
//
//  1. postings.bin is fsynced (the new extents, which no directory names
//     yet);
//  2. directory-G.bin, the whole directory with the new entries, is
//     written atomically (G = the manifest's generation + 1);
//  3. manifest.json is replaced atomically: generation G, n = every
//     acknowledged id, postings.bin's new length (its SHA-256 now of the
//     header page alone, HashedBytes), directory-G.bin's size and SHA-256.
//     This is the commit: a crash before it leaves the previous
//     generation, whose files are untouched, plus a tail of postings.bin
//     that the next writable Open cuts off; a crash after it leaves the
//     new one, and Open's replay skips the log's insert records below n.
//  4. The store publishes the new entries, then the insert buffer is
//     emptied (queries load the buffer before the directory, so none
//     misses a vector), the log is emptied, and the directory of
//     generation G-2 is removed (G-1 stays for read-only Opens that read
//     the previous manifest a moment ago).
//
// A rewritten posting's old extent stays where it was, unreferenced, until
// a later checkpoint reuses its pages (posting.Space): one that finds no
// search of this process still holding an older directory version and no
// other process with the index open (readers.lock, mutable.go). So under
// steady churn postings.bin settles near twice its live size rather than
// growing without bound, unless read-only Opens stay open across every
// checkpoint (then it appends; nothing compacts the file yet).

// rewritePostings rewrites, without dead's ids, the postings of the heads
// of buf and the frozen buffers before it (buf may be nil; n is the ids
// they and the files hold), those that deletes since the last scan left
// with a sixteenth or more of their entries dead, and those that cleaning
// moves, splitting those over the posting limit (split.go), then commits
// a new generation (steps 1–4 above but the log); it does nothing if
// there is nothing to rewrite. Updates may run meanwhile.
func (ix *Index) rewritePostings(buf *insertBuffer, dead *roaring.Bitmap, n int) error {
	cur := ix.state
	pinfo, _ := cur.File(indexfile.PostingsFile)
	heads, err := ix.rewriteSet(buf, dead, pinfo.Bytes)
	if err != nil || len(heads) == 0 {
		return err
	}
	// Space of earlier rewrites is reused only when no search can still
	// read it: none of this process's (every superseded View released)
	// and none of another's (the readers lock, held until the commit).
	reuse := false
	if ix.store.WaitRetired(retiredWait) {
		if unlock, ok := ix.excludeReaders(); ok {
			defer unlock()
			reuse = true
		}
	}
	out, err := ix.writePostings(heads, buf, dead, pinfo.Bytes, reuse)
	if err != nil {
		return err
	}
	crash.Point("checkpoint: postings written")
	next, set, err := ix.nextGeneration(cur, n, out)
	if err != nil {
		return err
	}
	if lab := ix.eng.labels(); lab != nil {
		lab, err := ix.checkpointLabels(lab, next, out, set)
		if err != nil {
			return fmt.Errorf("spann: checkpoint: labels: %w", err)
		}
		set = ix.eng.withLabels(set, lab)
		crash.Point("checkpoint: labels written")
	}
	if err := indexfile.WriteManifest(ix.fs, ix.dir, next); err != nil {
		// Failing after its rename, the write may have committed: what
		// this process holds may no longer be what is on disk.
		ix.ckBroken = fmt.Errorf("spann: checkpoint: write %s: %w (reopen the index to checkpoint again; no update is lost)", filepath.Join(ix.dir, indexfile.ManifestName), err)
		return ix.ckBroken
	}
	crash.Point("checkpoint: manifest written")
	if out.end < pinfo.Bytes {
		// Reuse left the tail unused (nothing can read it: see above); a
		// crash before this leaves it for the next writable Open to cut.
		if err := os.Truncate(ix.postings, out.end); err != nil {
			fmt.Fprintf(os.Stderr, "spann: checkpoint: shorten %s: %v\n", ix.postings, err)
		}
	}
	if err := ix.store.Publish(out.changes, next.Heads, set); err != nil {
		// The files are committed and the next Open serves them; this
		// process cannot (a check that the writer just passed failed).
		ix.ckBroken = fmt.Errorf("spann: checkpoint: publish generation %d: %w (reopen the index)", next.Generation, err)
		return ix.ckBroken
	}
	ix.dmu.Lock()
	if active := ix.buf.Load(); active != nil {
		active.prev.Store(nil) // folded: the postings hold it now
	}
	ix.dmu.Unlock()
	ix.ilab.trim(next.N) // folded: the published labels hold them now
	ix.state = next
	return nil
}

// nextGeneration writes the files of the generation after cur that the
// rewrite out makes — its directory, and with splits its heads and graph —
// and returns its manifest (not yet written) and, with splits, its head
// set (else nil).
func (ix *Index) nextGeneration(cur *indexfile.Manifest, n int, out *rewrite) (*indexfile.Manifest, any, error) {
	next := *cur
	next.Generation++
	next.N = n
	next.Files = slices.Clone(cur.Files)
	dirInfo, err := ix.writeDirectory(next.Directory(), out.changes, next.Heads+len(out.newIDs))
	if err != nil {
		return nil, nil, err
	}
	crash.Point("checkpoint: directory written")
	var set any
	var headFiles []indexfile.FileInfo
	if out.splits() {
		if set, err = ix.eng.extendHeads(out); err != nil {
			return nil, nil, err
		}
		if headFiles, err = ix.eng.writeHeadFiles(set, next.Generation); err != nil {
			return nil, nil, err
		}
		next.Heads += len(out.newIDs)
		crash.Point("checkpoint: heads written")
	}
	// Postings are overwritten in place now: the manifest hashes the
	// header page, which never changes, and records the length.
	header, err := indexfile.PrefixSHA256(ix.postings, posting.PageSize)
	if err != nil {
		return nil, nil, fmt.Errorf("spann: checkpoint: %w", err)
	}
	for i, f := range next.Files {
		switch {
		case f.Name == cur.Directory():
			next.Files[i] = dirInfo
		case f.Name == indexfile.PostingsFile:
			next.Files[i] = indexfile.FileInfo{Name: f.Name, Bytes: out.end, SHA256: header, HashedBytes: posting.PageSize}
		case len(headFiles) == 2 && f.Name == cur.Current(indexfile.HeadsFile):
			next.Files[i] = headFiles[0]
		case len(headFiles) == 2 && f.Name == cur.Current(indexfile.GraphFile):
			next.Files[i] = headFiles[1]
		}
	}
	return &next, set, nil
}

// rewrite is what writePostings wrote.
type rewrite struct {
	changes map[int]posting.Entry // new entries, by head (new heads' too)
	end     int64                 // postings.bin's new length
	newIDs  []uint32              // base ids of the heads of split postings, in head order from the current count
	newRows []byte                // and their vectors
	moved   map[int32]movedHead   // heads of split postings now on another of their vectors
	removed []int32               // heads whose postings deletes emptied, merged away (ascending)
	taken   *roaring.Bitmap       // base ids made heads by this checkpoint's splits
}

// splits reports whether the rewrite changed the heads.
func (r *rewrite) splits() bool { return len(r.newIDs) > 0 || len(r.moved) > 0 || len(r.removed) > 0 }

// writePostings writes the rewritten postings of heads into
// postings.bin, whose committed length is committed (cutting off what an
// interrupted checkpoint left past it), splitting those over the posting
// limit, and syncs the file. With reuse it fills the pages no current
// entry touches first; otherwise it appends.
func (ix *Index) writePostings(heads []int32, buf *insertBuffer, dead *roaring.Bitmap, committed int64, reuse bool) (*rewrite, error) {
	f, err := ix.fs.OpenFile(ix.postings, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spann: checkpoint: %w", err)
	}
	defer f.Close()
	fail := func(err error) (*rewrite, error) {
		return nil, fmt.Errorf("spann: checkpoint: %s: %w", ix.postings, err)
	}
	if err := f.Truncate(committed); err != nil {
		return fail(err)
	}
	w, err := ix.newPostingWriter(f, dead, committed, reuse)
	if err != nil {
		return fail(err)
	}
	defer w.close()
	for _, head := range heads {
		ids, rows, err := w.m.merge(w.view.Entry(head), head, buf)
		if err != nil {
			return fail(fmt.Errorf("posting %d: %w", head, err))
		}
		if err := ix.putSplitting(w, head, ids, rows); err != nil {
			return fail(err)
		}
		crash.Point("checkpoint: posting rewritten")
	}
	if err := ix.mergeAway(w); err != nil {
		return fail(err)
	}
	w.out.end = int64(w.space.End())
	if w.out.end > committed {
		if err := f.Truncate(w.out.end); err != nil { // zeros to the last page's end
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return w.out, nil
}

// mergeAway is LIRE's merge: it removes the heads whose postings this
// checkpoint left empty (all their vectors deleted; never the graph's
// entry point), and moves each one's vector, if it is live (a head is
// stored in no posting), to the posting of its nearest remaining head;
// so too whatever a head removed before received (inserts assigned to it
// before it went).
func (ix *Index) mergeAway(w *postingWriter) error {
	type orphan struct {
		id  uint32
		row []byte
	}
	var orphans []orphan
	gone := map[int32]bool{}
	heads := slices.Sorted(maps.Keys(w.out.changes))
	for _, h32 := range heads {
		h, e := int32(h32), w.out.changes[h32]
		switch {
		case h32 >= w.view.Len() || h == ix.eng.entryHead():
		case ix.eng.removedHead(h) && e.Count > 0:
			ids, rows, err := w.m.merge(e, h, nil)
			if err != nil {
				return fmt.Errorf("posting %d: %w", h, err)
			}
			for i, id := range ids {
				orphans = append(orphans, orphan{id, slices.Clone(rows[i*ix.rowBytes : (i+1)*ix.rowBytes])})
			}
			if err := w.put(h, nil, nil); err != nil {
				return err
			}
		case !ix.eng.removedHead(h) && e.Count == 0:
			gone[h] = true
			if id, row := ix.eng.head(h); !w.m.dead.Contains(id) {
				orphans = append(orphans, orphan{id, slices.Clone(row)})
			}
		}
	}
	skip := func(h int32) bool { return gone[h] || ix.eng.removedHead(h) }
	byTarget := map[int32][]orphan{}
	for _, o := range orphans {
		t := ix.eng.nearestHead(o.row, skip)
		byTarget[t] = append(byTarget[t], o)
	}
	for _, t := range slices.Sorted(maps.Keys(byTarget)) {
		e, ok := w.out.changes[int(t)]
		if !ok {
			e = w.view.Entry(t)
		}
		ids, rows, err := w.m.merge(e, t, nil)
		if err != nil {
			return fmt.Errorf("posting %d: %w", t, err)
		}
		for _, o := range byTarget[t] {
			if !slices.Contains(ids, o.id) {
				ids = append(ids, o.id)
				rows = append(rows, o.row...)
			}
		}
		if err := w.put(t, ids, rows); err != nil {
			return err
		}
	}
	w.out.removed = slices.Sorted(maps.Keys(gone))
	return nil
}

// maxSplits bounds how many times one posting is split in a checkpoint.
const maxSplits = 16

// putSplitting writes head's new posting (ids, rows: merge's scratch),
// first splitting it, and the parts in turn, while they are over the
// posting limit (at most maxSplits times).
func (ix *Index) putSplitting(w *postingWriter, head int32, ids []uint32, rows []byte) error {
	limit := ix.Manifest.Params.PostingLimit
	if limit <= 0 || len(ids) <= limit || ix.noSplit {
		return w.put(head, ids, rows)
	}
	type part struct {
		head int32
		id   uint32 // the head's base id and vector
		row  []byte
		ids  []uint32
		rows []byte
	}
	id, row := ix.eng.head(head)
	todo := []part{{head, id, row, slices.Clone(ids), slices.Clone(rows)}}
	for splits := 0; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if len(p.ids) > limit && splits < maxSplits {
			a := p.head
			if int(a) >= w.view.Len() {
				a = -1 // made by this checkpoint: not in the graph yet
			}
			res, ok, err := ix.eng.split(a, p.id, p.row, w.m.dead.Contains(p.id), p.ids, p.rows, w.readLive, w.out.taken)
			if err != nil {
				return fmt.Errorf("split posting %d: %w", p.head, err)
			}
			if ok {
				splits++
				if res.aID != p.id {
					w.out.moveHead(p.head, w.view.Len(), res.aID, res.aRow)
				}
				w.out.taken.Add(res.aID)
				w.out.taken.Add(res.bID)
				b := int32(w.view.Len() + len(w.out.newIDs))
				w.out.newIDs = append(w.out.newIDs, res.bID)
				w.out.newRows = append(w.out.newRows, res.bRow...)
				todo = append(todo, part{p.head, res.aID, res.aRow, res.idsA, res.rowsA}, part{b, res.bID, res.bRow, res.idsB, res.rowsB})
				crash.Point("checkpoint: posting split")
				continue
			}
		}
		if err := w.put(p.head, p.ids, p.rows); err != nil {
			return err
		}
	}
	return nil
}

// moveHead records that head h (of n before this checkpoint, or one it
// made) now has base id id and vector row.
func (r *rewrite) moveHead(h int32, n int, id uint32, row []byte) {
	if int(h) >= n {
		k := int(h) - n
		r.newIDs[k] = id
		copy(r.newRows[k*len(row):(k+1)*len(row)], row)
		return
	}
	if r.moved == nil {
		r.moved = map[int32]movedHead{}
	}
	r.moved[h] = movedHead{id, row}
}

// movedHead is a head's new base id and vector.
type movedHead struct {
	id  uint32
	row []byte
}

// postingWriter places and writes a checkpoint's postings.
type postingWriter struct {
	f     vfs.File
	enc   *posting.Encoder
	m     *merger // reads the postings being rewritten
	nbr   *merger // reads the neighbours of split postings
	view  *posting.View
	space *posting.Space
	out   *rewrite
}

func (ix *Index) newPostingWriter(f vfs.File, dead *roaring.Bitmap, committed int64, reuse bool) (*postingWriter, error) {
	h := ix.store.Header()
	enc, err := posting.NewEncoder(ix.rowBytes, h.Codec, h.Table)
	if err != nil {
		return nil, err
	}
	m, err := ix.newMerger(f, dead)
	if err != nil {
		return nil, err
	}
	nbr, err := ix.newMerger(f, dead)
	if err != nil {
		m.dec.Close()
		return nil, err
	}
	view := ix.store.Snapshot()
	return &postingWriter{f: f, enc: enc, m: m, nbr: nbr, view: view, space: posting.NewSpace(view, uint64(committed), reuse),
		out: &rewrite{changes: map[int]posting.Entry{}, taken: roaring.New()}}, nil
}

func (w *postingWriter) close() {
	w.m.dec.Close()
	w.nbr.dec.Close()
}

// put writes head's new posting where the space allows.
func (w *postingWriter) put(head int32, ids []uint32, rows []byte) error {
	extent, err := w.enc.Encode(ids, rows)
	if err != nil {
		return fmt.Errorf("posting %d: %w", head, err)
	}
	e := posting.Entry{Offset: w.space.Alloc(uint32(len(extent))), Bytes: uint32(len(extent)), Count: uint32(len(ids))}
	if _, err := w.f.WriteAt(extent, int64(e.Offset)); err != nil {
		return err
	}
	w.out.changes[int(head)] = e
	return nil
}

// readLive returns the live entries of head's committed posting (scratch
// of w.nbr).
func (w *postingWriter) readLive(head int32) ([]uint32, []byte, error) {
	return w.nbr.merge(w.view.Entry(head), head, nil)
}

// retiredWait bounds how long a checkpoint waits for searches to release
// superseded directory versions before it gives up reusing space.
var retiredWait = 2 * time.Second

// rewriteSet returns, ascending, the heads whose postings a checkpoint
// rewrites: those with buffered vectors; when ids were deleted since the
// last scan (a hundredth of them, if there are inserts to fold), those a
// sixteenth or more dead (found by decoding every posting); and those that cleaning moves
// out of sparse segments (posting.Victims).
func (ix *Index) rewriteSet(buf *insertBuffer, dead *roaring.Bitmap, fileEnd int64) ([]int32, error) {
	view := ix.store.Snapshot()
	moving := make([]bool, view.Len())
	for h := range moving {
		for b := buf; b != nil && !moving[h]; b = b.prev.Load() {
			moving[h] = len(b.list(int32(h))) > 0
		}
	}
	// The scan decodes every posting (realsift-1M: 3–4 s), so a
	// checkpoint with inserts to fold runs it only once a hundredth of
	// the ids were deleted since the last; one with nothing else to do
	// runs it for any new delete.
	folding := slices.Contains(moving, true)
	if n := dead.GetCardinality(); n > ix.scannedDead && (!folding || 100*(n-ix.scannedDead) >= uint64(ix.N())) {
		if err := ix.markSparse(view, dead, moving); err != nil {
			return nil, err
		}
		ix.scannedDead = n
	}
	var heads []int32
	for h, m := range moving {
		if m {
			heads = append(heads, int32(h))
		}
	}
	if len(heads) == 0 {
		return nil, nil // cleaning alone is no reason for a generation
	}
	victims := posting.Victims(view, func(h int32) bool { return moving[h] }, uint64(fileEnd), posting.CleanSegment)
	heads = append(heads, victims...)
	slices.Sort(heads)
	return heads, nil
}

// markSparse marks in moving the postings of view that dead leaves with a
// sixteenth or more of their entries dead.
func (ix *Index) markSparse(view *posting.View, dead *roaring.Bitmap, moving []bool) error {
	f, err := ix.fs.Open(ix.postings)
	if err != nil {
		return fmt.Errorf("spann: checkpoint: %w", err)
	}
	defer f.Close()
	m, err := ix.newMerger(f, dead)
	if err != nil {
		return err
	}
	defer m.dec.Close()
	for h := range int32(view.Len()) {
		if moving[h] {
			continue
		}
		ids, err := m.read(view.Entry(h))
		if err != nil {
			return fmt.Errorf("spann: checkpoint: %s: posting %d: %w", ix.postings, h, err)
		}
		n := 0
		for _, id := range ids {
			if dead.Contains(id) {
				n++
			}
		}
		moving[h] = n > 0 && 16*n >= len(ids)
	}
	return nil
}

// merger reads postings and merges buffered vectors into them.
type merger struct {
	f     vfs.File
	dead  *roaring.Bitmap
	dec   *posting.Decoder
	raw   []byte
	rows0 []byte // the rows of the last read
	ids   []uint32
	rows  []byte
}

func (ix *Index) newMerger(f vfs.File, dead *roaring.Bitmap) (*merger, error) {
	dec, err := ix.store.NewDecoder()
	if err != nil {
		return nil, err
	}
	return &merger{f: f, dead: dead, dec: dec}, nil
}

// read reads and decodes the posting at e, returning its ids (the rows
// are m.dec.Rows(), both valid until the next read).
func (m *merger) read(e posting.Entry) ([]uint32, error) {
	m.raw = slices.Grow(m.raw[:0], int(e.Bytes))[:e.Bytes]
	if _, err := m.f.ReadAt(m.raw, int64(e.Offset)); err != nil {
		return nil, err
	}
	ids, rows, err := m.dec.Decode(m.raw, e)
	m.rows0 = rows
	return ids, err
}

// merge returns the live vectors of the posting at e followed by the live
// ones buffered under its head in buf and the frozen buffers before it
// (scratch, valid until the next call).
func (m *merger) merge(e posting.Entry, head int32, buf *insertBuffer) ([]uint32, []byte, error) {
	ids, err := m.read(e)
	if err != nil {
		return nil, nil, err
	}
	rows := m.rows0
	rowBytes := 0
	if len(ids) > 0 {
		rowBytes = len(rows) / len(ids)
	}
	m.ids, m.rows = m.ids[:0], m.rows[:0]
	for i, id := range ids {
		if !m.dead.Contains(id) {
			m.ids = append(m.ids, id)
			m.rows = append(m.rows, rows[i*rowBytes:(i+1)*rowBytes]...)
		}
	}
	for b := buf; b != nil; b = b.prev.Load() {
		for _, a := range b.list(head) {
			if !m.dead.Contains(uint32(a.id)) {
				m.ids = append(m.ids, uint32(a.id))
				m.rows = append(m.rows, b.row(a)...)
			}
		}
	}
	return m.ids, m.rows, nil
}

// writeDirectory writes the current directory with changes applied,
// grown to n postings, as dir/name, atomically, and returns its manifest
// entry.
func (ix *Index) writeDirectory(name string, changes map[int]posting.Entry, n int) (indexfile.FileInfo, error) {
	view := ix.store.Snapshot()
	entries := make([]posting.Entry, n)
	for h := range entries {
		if e, ok := changes[h]; ok {
			entries[h] = e
		} else {
			entries[h] = view.Entry(int32(h))
		}
	}
	var b bytes.Buffer
	if err := posting.WriteDirectory(&b, entries, ix.id); err != nil {
		return indexfile.FileInfo{}, err
	}
	path := filepath.Join(ix.dir, name)
	if err := vfs.WriteFileAtomic(ix.fs, path, b.Bytes()); err != nil {
		return indexfile.FileInfo{}, fmt.Errorf("spann: checkpoint: write %s: %w", path, err)
	}
	return indexfile.DescribeBytes(name, b.Bytes()), nil
}
