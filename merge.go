package spann

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

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
//     acknowledged id, postings.bin's new length (its SHA-256 still of the
//     build-time prefix, HashedBytes), directory-G.bin's size and SHA-256.
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
// A rewritten posting's old extent stays where it was, unreferenced.

// foldInserts rewrites the postings of buf's heads without dead's ids and
// commits a new generation (steps 1–4 above but the log). umu is held
// exclusively.
func (ix *Index) foldInserts(buf *insertBuffer, dead *roaring.Bitmap) error {
	cur := ix.state
	pinfo, _ := cur.File(indexfile.PostingsFile)
	changes, end, err := ix.writePostings(buf, dead, pinfo.Bytes)
	if err != nil {
		return err
	}
	crash.Point("checkpoint: postings written")
	next := *cur
	next.Generation++
	next.N = ix.N()
	next.Files = slices.Clone(cur.Files)
	dirInfo, err := ix.writeDirectory(next.Directory(), changes)
	if err != nil {
		return err
	}
	crash.Point("checkpoint: directory written")
	for i, f := range next.Files {
		switch f.Name {
		case cur.Directory():
			next.Files[i] = dirInfo
		case indexfile.PostingsFile:
			next.Files[i].HashedBytes = f.Hashed()
			next.Files[i].Bytes = end
		}
	}
	if err := indexfile.WriteManifest(ix.fs, ix.dir, &next); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(ix.dir, indexfile.ManifestName), err)
	}
	crash.Point("checkpoint: manifest written")
	if err := ix.store.Replace(changes); err != nil {
		// The files are committed and the next Open serves them; this
		// process cannot (a check that the writer just passed failed).
		return fmt.Errorf("spann: checkpoint: publish generation %d: %w", next.Generation, err)
	}
	ix.dmu.Lock()
	ix.buf.Store(nil)
	ix.dmu.Unlock()
	ix.state = &next
	return nil
}

// writePostings appends the rewritten postings of buf's heads to
// postings.bin from committed, its committed length (cutting off what an
// interrupted checkpoint left past it), syncs the file, and returns the
// new entries and the file's new length.
func (ix *Index) writePostings(buf *insertBuffer, dead *roaring.Bitmap, committed int64) (map[int]posting.Entry, int64, error) {
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
	if _, err := f.Seek(committed, io.SeekStart); err != nil {
		return fail(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	h := ix.store.Header()
	w, err := posting.ResumeWriter(bw, ix.rowBytes, h.Codec, h.Table, uint64(committed), 0)
	if err != nil {
		return fail(err)
	}
	m, err := ix.newMerger(f, dead)
	if err != nil {
		return fail(err)
	}
	defer m.dec.Close()
	view := ix.store.Snapshot()
	changes := map[int]posting.Entry{}
	for head := range buf.lists {
		added := buf.list(int32(head))
		if len(added) == 0 {
			continue
		}
		ids, rows, err := m.merge(view.Entry(int32(head)), added, buf)
		if err != nil {
			return fail(fmt.Errorf("posting %d: %w", head, err))
		}
		e, err := w.Add(ids, rows)
		if err != nil {
			return fail(err)
		}
		changes[head] = e
	}
	if err := w.Finish(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return changes, int64(w.Offset()), nil
}

// merger reads postings and merges buffered vectors into them.
type merger struct {
	f    vfs.File
	dead *roaring.Bitmap
	dec  *posting.Decoder
	raw  []byte
	ids  []uint32
	rows []byte
}

func (ix *Index) newMerger(f vfs.File, dead *roaring.Bitmap) (*merger, error) {
	dec, err := ix.store.NewDecoder()
	if err != nil {
		return nil, err
	}
	return &merger{f: f, dead: dead, dec: dec}, nil
}

// merge returns the live vectors of the posting at e followed by the live
// buffered ones (scratch, valid until the next call).
func (m *merger) merge(e posting.Entry, added []bufEntry, buf *insertBuffer) ([]uint32, []byte, error) {
	m.raw = slices.Grow(m.raw[:0], int(e.Bytes))[:e.Bytes]
	if _, err := m.f.ReadAt(m.raw, int64(e.Offset)); err != nil {
		return nil, nil, err
	}
	ids, rows, err := m.dec.Decode(m.raw, e)
	if err != nil {
		return nil, nil, err
	}
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
	for _, a := range added {
		if !m.dead.Contains(uint32(a.id)) {
			m.ids = append(m.ids, uint32(a.id))
			m.rows = append(m.rows, buf.row(a)...)
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
