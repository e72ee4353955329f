package posting

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gospann/spann/iouring"
)

// Store is an open postings file with its directory: what search reads
// postings through. It checks the file's header page and that every
// entry's aligned read lies inside the file, plans a round's reads, and
// checks and decodes each completed read.
//
// The directory is versioned so that a posting's location can change
// while searches run (the mutable index rewrites postings elsewhere and
// swaps their entries): Snapshot returns an immutable View, and Replace
// publishes a new one atomically. A search takes one View per round and
// uses it both to plan the reads and to decode them, so it never pairs an
// old read with a new entry. Views share every chunk of entries that a
// Replace did not touch (copy-on-write in chunks of viewChunk entries), so
// replacing k entries costs O(k·viewChunk + n/viewChunk), not O(n).
//
// Reclaiming a replaced posting's old extent, once no View that names it
// can still be read, is the caller's business.
type Store struct {
	file     *iouring.File
	header   FileHeader
	rowBytes int
	size     int64
	view     atomic.Pointer[View]
	mu       sync.Mutex // serialises Replace and WaitRetired
	retired  []*View    // superseded by Replace, perhaps still acquired (space.go)
}

// viewChunk is how many entries a View's chunk holds (64 KiB of them).
const viewChunk = 4096

// View is one version of the directory. It never changes.
type View struct {
	chunks  []*[viewChunk]Entry
	n       int
	maxRead int          // bytes of the largest aligned read
	refs    atomic.Int64 // Acquires not yet Released
	aux     any          // Publish's attachment
}

// ErrBounds marks a directory entry whose pages end past the postings
// file; errors.Is(err, ErrCorrupt) holds too.
var ErrBounds = fmt.Errorf("posting pages past the end of the file: %w", ErrCorrupt)

// OpenStore serves the postings of file, whose directory is entries, for
// vectors of rowBytes bytes. It reads and checks the header page (magic,
// version, CRC, row size) and checks that every entry's aligned read lies
// inside the file. entries is used in place and must not change; the
// Store does not close file.
func OpenStore(file *iouring.File, entries []Entry, rowBytes int) (*Store, error) {
	size, err := file.Size()
	if err != nil {
		return nil, err
	}
	h, err := readHeaderPage(file)
	if err != nil {
		return nil, err
	}
	if int(h.RowBytes) != rowBytes {
		return nil, fmt.Errorf("%s: postings of %d-byte vectors, the index's are %d: %w", file.Path(), h.RowBytes, rowBytes, ErrCorrupt)
	}
	s := &Store{file: file, header: h, rowBytes: rowBytes, size: size}
	v := &View{n: len(entries)}
	for lo := 0; lo < len(entries); lo += viewChunk {
		var c *[viewChunk]Entry
		if hi := lo + viewChunk; hi <= len(entries) {
			c = (*[viewChunk]Entry)(entries[lo:hi]) // in place
		} else {
			c = new([viewChunk]Entry)
			copy(c[:], entries[lo:])
		}
		v.chunks = append(v.chunks, c)
	}
	for i, e := range entries {
		if err := s.checkEntry(i, e); err != nil {
			return nil, err
		}
		v.maxRead = max(v.maxRead, e.ReadBytes())
	}
	s.view.Store(v)
	return s, nil
}

// readHeaderPage reads page 0 with an aligned buffer (the file is opened
// O_DIRECT) and parses it.
func readHeaderPage(f *iouring.File) (FileHeader, error) {
	page, err := iouring.AlignedBuffer(PageSize)
	if err != nil {
		return FileHeader{}, err
	}
	defer iouring.FreeBuffer(page)
	n, err := f.ReadAt(page, 0)
	if err != nil {
		return FileHeader{}, fmt.Errorf("%s: header page: %w", f.Path(), err)
	}
	if n < PageSize {
		return FileHeader{}, fmt.Errorf("%s: header page: %d of %d bytes: %w", f.Path(), n, PageSize, ErrCorrupt)
	}
	h, err := ReadFileHeader(page)
	if err != nil {
		return FileHeader{}, fmt.Errorf("%s: %w", f.Path(), err)
	}
	return h, nil
}

// checkEntry checks that posting i's whole aligned read lies inside the
// file (the writer pads it to a page): O_DIRECT reads whole pages.
func (s *Store) checkEntry(i int, e Entry) error {
	if e.Count > 0 && (e.Offset < PageSize || e.ReadOffset()+uint64(e.ReadBytes()) > uint64(s.size)) {
		return fmt.Errorf("%s: posting %d: %w", s.file.Path(), i, ErrBounds)
	}
	return nil
}

// Header returns the postings file's header (its build id, codec, shared
// table).
func (s *Store) Header() FileHeader { return s.header }

// Path returns the postings file's path, for messages.
func (s *Store) Path() string { return s.file.Path() }

// NewReader returns a reader of the postings file for one search worker
// (see iouring.File.NewReader).
func (s *Store) NewReader(backend string, depth int) (iouring.Reader, string, error) {
	return s.file.NewReader(backend, depth)
}

// NewDecoder returns a decoder for this file's postings (with its shared
// table), for one worker.
func (s *Store) NewDecoder() (*Decoder, error) {
	d, err := NewDecoder(s.rowBytes)
	if err != nil {
		return nil, err
	}
	d.SetTable(s.header.Table)
	return d, nil
}

// Snapshot returns the current directory.
func (s *Store) Snapshot() *View { return s.view.Load() }

// Replace publishes a new directory in which posting h has entry e for
// every (h, e) in changes, each checked as OpenStore checks them against
// the file's size now (it may have grown). Views taken before keep the
// old entries. Safe to call while searches run; calls are serialised.
func (s *Store) Replace(changes map[int]Entry) error {
	return s.Publish(changes, -1, nil)
}

// Publish is Replace that may also grow the directory to n postings (n <
// 0: as many as now), every new one needing its entry in changes, and
// attach aux to the new View (nil: keep the current View's): an updated
// index attaches its head set, so that a query's heads and postings are
// always of one version.
func (s *Store) Publish(changes map[int]Entry, n int, aux any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	size, err := s.file.Size()
	if err != nil {
		return err
	}
	s.size = size
	old := s.view.Load()
	if n < 0 {
		n = old.n
	}
	if n < old.n {
		return fmt.Errorf("posting: publish %d entries, fewer than the %d there are", n, old.n)
	}
	for h, e := range changes {
		if h < 0 || h >= n {
			return fmt.Errorf("posting: replace entry %d of %d", h, n)
		}
		if err := s.checkEntry(h, e); err != nil {
			return err
		}
	}
	for h := old.n; h < n; h++ {
		if _, ok := changes[h]; !ok {
			return fmt.Errorf("posting: new posting %d has no entry", h)
		}
	}
	v := &View{chunks: append([]*[viewChunk]Entry(nil), old.chunks...), n: n, maxRead: old.maxRead, aux: old.aux}
	if aux != nil {
		v.aux = aux
	}
	for len(v.chunks)*viewChunk < n {
		v.chunks = append(v.chunks, new([viewChunk]Entry))
	}
	copied := map[int]bool{}
	for h, e := range changes {
		c := h / viewChunk
		if !copied[c] && c < len(old.chunks) {
			fresh := *v.chunks[c]
			v.chunks[c] = &fresh
		}
		copied[c] = true
		v.chunks[c][h%viewChunk] = e
		v.maxRead = max(v.maxRead, e.ReadBytes())
	}
	s.view.Store(v)
	s.retired = append(s.retired, old)
	return nil
}

// Aux returns what the Publish that made v attached (nil if none).
func (v *View) Aux() any { return v.aux }

// Len returns the number of postings (heads).
func (v *View) Len() int { return v.n }

// Entry returns posting h's entry (0 ≤ h < Len).
func (v *View) Entry(h int32) Entry { return v.chunks[h/viewChunk][h%viewChunk] }

// MaxRead returns the bytes of the largest aligned read of this version.
func (v *View) MaxRead() int { return v.maxRead }

// Plan keeps the heads of probe whose postings are not empty, in order,
// in place, and returns them with the bytes their aligned reads need.
func (v *View) Plan(probe []int32) ([]int32, int) {
	n, total := 0, 0
	for _, h := range probe {
		if e := v.Entry(h); e.Count > 0 {
			probe[n] = h
			n++
			total += e.ReadBytes()
		}
	}
	return probe[:n], total
}

// Requests appends to reqs one aligned read per head of planned (as Plan
// returned them), laid out one after another in buf, which must hold the
// bytes Plan counted.
func (v *View) Requests(planned []int32, buf []byte, reqs []iouring.Request) []iouring.Request {
	off := 0
	for _, h := range planned {
		e := v.Entry(h)
		n := e.ReadBytes()
		reqs = append(reqs, iouring.Request{Offset: int64(e.ReadOffset()), Buf: buf[off : off+n]})
		off += n
	}
	return reqs
}

// Decode checks a completed read of posting h (planned with v) and decodes
// it with dec: the ids and rows are dec's scratch, valid until its next
// use. A failed read's error is returned as it is (wrapped with the
// posting and file); a short read or a damaged extent is ErrCorrupt.
func (s *Store) Decode(dec *Decoder, v *View, h int32, r *iouring.Request) (ids []uint32, rows []byte, err error) {
	e := v.Entry(h)
	if r.Err != nil {
		return nil, nil, fmt.Errorf("posting %d of %s: %w", h, s.file.Path(), r.Err)
	}
	if r.N < len(r.Buf) {
		return nil, nil, fmt.Errorf("posting %d of %s: short read (%d of %d bytes): %w", h, s.file.Path(), r.N, len(r.Buf), ErrCorrupt)
	}
	ids, rows, err = dec.Decode(r.Buf[e.Offset-e.ReadOffset():], e)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, nil, fmt.Errorf("posting %d of %s: %w", h, s.file.Path(), err)
	}
	return ids, rows, nil
}
