package spann

import (
	"bytes"
	"fmt"
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
// moves, then commits a new generation (steps 1–4 above but the log); it
// does nothing if there is nothing to rewrite. umu is held exclusively.
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
	changes, end, err := ix.writePostings(heads, buf, dead, pinfo.Bytes, reuse)
	if err != nil {
		return err
	}
	crash.Point("checkpoint: postings written")
	next := *cur
	next.Generation++
	next.N = n
	next.Files = slices.Clone(cur.Files)
	dirInfo, err := ix.writeDirectory(next.Directory(), changes)
	if err != nil {
		return err
	}
	crash.Point("checkpoint: directory written")
	// Postings are overwritten in place now: the manifest hashes the
	// header page, which never changes, and records the length.
	header, err := indexfile.PrefixSHA256(ix.postings, posting.PageSize)
	if err != nil {
		return fmt.Errorf("spann: checkpoint: %w", err)
	}
	for i, f := range next.Files {
		switch f.Name {
		case cur.Directory():
			next.Files[i] = dirInfo
		case indexfile.PostingsFile:
			next.Files[i] = indexfile.FileInfo{Name: f.Name, Bytes: end, SHA256: header, HashedBytes: posting.PageSize}
		}
	}
	if err := indexfile.WriteManifest(ix.fs, ix.dir, &next); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(ix.dir, indexfile.ManifestName), err)
	}
	crash.Point("checkpoint: manifest written")
	if end < pinfo.Bytes {
		// Reuse left the tail unused (nothing can read it: see above); a
		// crash before this leaves it for the next writable Open to cut.
		if err := os.Truncate(ix.postings, end); err != nil {
			fmt.Fprintf(os.Stderr, "spann: checkpoint: shorten %s: %v\n", ix.postings, err)
		}
	}
	if err := ix.store.Replace(changes); err != nil {
		// The files are committed and the next Open serves them; this
		// process cannot (a check that the writer just passed failed).
		return fmt.Errorf("spann: checkpoint: publish generation %d: %w", next.Generation, err)
	}
	if active := ix.buf.Load(); active != nil {
		active.prev.Store(nil) // folded: the postings hold it now
	}
	ix.state = &next
	return nil
}

// writePostings writes the rewritten postings of buf's heads into
// postings.bin, whose committed length is committed (cutting off what an
// interrupted checkpoint left past it), syncs the file, and returns the
// new entries and the file's new length. With reuse it fills the pages no
// current entry touches first; otherwise it appends.
func (ix *Index) writePostings(heads []int32, buf *insertBuffer, dead *roaring.Bitmap, committed int64, reuse bool) (map[int]posting.Entry, int64, error) {
	f, err := ix.fs.OpenFile(ix.postings, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("spann: checkpoint: %w", err)
	}
	defer f.Close()
	fail := func(err error) (map[int]posting.Entry, int64, error) {
		return nil, 0, fmt.Errorf("spann: checkpoint: %s: %w", ix.postings, err)
	}
	if err := f.Truncate(committed); err != nil {
		return fail(err)
	}
	h := ix.store.Header()
	enc, err := posting.NewEncoder(ix.rowBytes, h.Codec, h.Table)
	if err != nil {
		return fail(err)
	}
	m, err := ix.newMerger(f, dead)
	if err != nil {
		return fail(err)
	}
	defer m.dec.Close()
	view := ix.store.Snapshot()
	space := posting.NewSpace(view, uint64(committed), reuse)
	changes := map[int]posting.Entry{}
	for _, head := range heads {
		ids, rows, err := m.merge(view.Entry(head), head, buf)
		if err != nil {
			return fail(fmt.Errorf("posting %d: %w", head, err))
		}
		extent, err := enc.Encode(ids, rows)
		if err != nil {
			return fail(fmt.Errorf("posting %d: %w", head, err))
		}
		e := posting.Entry{Offset: space.Alloc(uint32(len(extent))), Bytes: uint32(len(extent)), Count: uint32(len(ids))}
		if _, err := f.WriteAt(extent, int64(e.Offset)); err != nil {
			return fail(err)
		}
		changes[int(head)] = e
		crash.Point("checkpoint: posting rewritten")
	}
	end := int64(space.End())
	if end > committed {
		if err := f.Truncate(end); err != nil { // zeros to the last page's end
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return changes, end, nil
}

// retiredWait bounds how long a checkpoint waits for searches to release
// superseded directory versions before it gives up reusing space.
var retiredWait = 2 * time.Second

// rewriteSet returns, ascending, the heads whose postings a checkpoint
// rewrites: those with buffered vectors; when ids were deleted since the
// last scan, those a sixteenth or more dead (found by decoding every
// posting: 3.5 s for realsift-1M's 1.7 GB); and those that cleaning moves
// out of sparse segments (posting.Victims).
func (ix *Index) rewriteSet(buf *insertBuffer, dead *roaring.Bitmap, fileEnd int64) ([]int32, error) {
	view := ix.store.Snapshot()
	moving := make([]bool, view.Len())
	for h := range moving {
		for b := buf; b != nil && !moving[h]; b = b.prev.Load() {
			moving[h] = len(b.list(int32(h))) > 0
		}
	}
	if n := dead.GetCardinality(); n > ix.scannedDead {
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

// writeDirectory writes the current directory with changes applied as
// dir/name, atomically, and returns its manifest entry.
func (ix *Index) writeDirectory(name string, changes map[int]posting.Entry) (indexfile.FileInfo, error) {
	view := ix.store.Snapshot()
	entries := make([]posting.Entry, view.Len())
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
