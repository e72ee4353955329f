package posting

import (
	"cmp"
	"slices"
	"time"
)

// Reusing the space of rewritten postings.
//
// An updated index rewrites a posting at a new place and swaps its entry
// (Store.Replace); the old extent may be overwritten once nothing can
// read it any more. Within one process that is a reference count per
// View: a search Acquires the View it plans and decodes with and Releases
// it when done, and WaitRetired tells the writer when every View that
// Replace superseded is out of use. (Other processes reading the same
// file are the caller's business.) Space then finds room for new extents
// in the pages that no entry of the current View touches.

// Acquire returns the current directory and counts it in use until
// Release: WaitRetired waits for it once a Replace supersedes it.
func (s *Store) Acquire() *View {
	for {
		v := s.view.Load()
		v.refs.Add(1)
		// Still current: a Replace after this is waited for. Otherwise a
		// writer may already have seen the count at zero: retry.
		if s.view.Load() == v {
			return v
		}
		v.refs.Add(-1)
	}
}

// Release ends an Acquire.
func (v *View) Release() { v.refs.Add(-1) }

// WaitRetired waits, for at most timeout, until no View superseded by a
// Replace is acquired, and reports whether that happened; then the space
// of every entry that only those Views named may be reused.
func (s *Store) WaitRetired(timeout time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for {
		live := s.retired[:0]
		for _, v := range s.retired {
			if v.refs.Load() > 0 {
				live = append(live, v)
			}
		}
		clear(s.retired[len(live):])
		s.retired = live
		if len(live) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond) // searches hold a View for a query's duration
	}
}

// Space allocates room for new extents in a postings file: first the
// whole pages that no extent of a directory touches, in file order (next
// fit: an extent that does not fit the rest of a free run goes on to the
// next, and the remainder waits for a later rewrite), then the end of the
// file. Every extent is placed by the Writer's packing rule (Place).
type Space struct {
	runs [][2]uint64 // free page runs [start, end), in file order
	cur  int         // the run being filled
	at   uint64      // next free byte in runs[cur]
	end  uint64      // next free byte past the file's end
	free uint64      // bytes in runs
}

// NewSpace returns the room in a postings file of fileEnd bytes (page
// aligned) around the extents of v's entries: the gaps between them, then
// from the end of the last one on. With reuse false it offers only the
// end of the file.
func NewSpace(v *View, fileEnd uint64, reuse bool) *Space {
	sp := &Space{end: (fileEnd + PageSize - 1) &^ (PageSize - 1)}
	if !reuse {
		return sp
	}
	used := make([][2]uint64, 0, v.Len())
	for h := range int32(v.Len()) {
		e := v.Entry(h)
		used = append(used, [2]uint64{e.ReadOffset(), e.ReadOffset() + uint64(e.ReadBytes())})
	}
	slices.SortFunc(used, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	next := uint64(PageSize) // page 0 is the header
	for _, u := range used {
		if u[0] > next {
			sp.runs = append(sp.runs, [2]uint64{next, u[0]})
		}
		next = max(next, u[1])
	}
	// Past the last live extent everything is garbage: allocation
	// continues from there, and End may come out below fileEnd (the
	// caller then shortens the file, once nothing can read the tail).
	sp.end = next
	for _, r := range sp.runs {
		sp.free += r[1] - r[0]
	}
	if len(sp.runs) > 0 {
		sp.at = sp.runs[0][0]
	}
	return sp
}

// Free returns the bytes of whole free pages NewSpace found.
func (sp *Space) Free() uint64 { return sp.free }

// Alloc returns where to write an extent of n bytes.
func (sp *Space) Alloc(n uint32) uint64 {
	for sp.cur < len(sp.runs) {
		if off := Place(sp.at, n); off+uint64(n) <= sp.runs[sp.cur][1] {
			sp.at = off + uint64(n)
			return off
		}
		sp.cur++
		if sp.cur < len(sp.runs) {
			sp.at = sp.runs[sp.cur][0]
		}
	}
	off := Place(sp.end, n)
	sp.end = off + uint64(n)
	return off
}

// End returns the file's length after the allocations, page aligned.
func (sp *Space) End() uint64 { return (sp.end + PageSize - 1) &^ (PageSize - 1) }

// Cleaning. Reuse alone does not bound the file: a page is free only once
// every extent on it has moved, and a posting that is never rewritten pins
// its pages, and the garbage around it, for ever. So, as a log-structured
// file system cleans segments, a checkpoint also moves the postings of
// sparse segments (live extents filling under half of them) once the file
// holds more than 1.5 times its live bytes; the next checkpoint finds
// those segments free.

// CleanSegment is the size of the segments Victims weighs (256 KiB: about
// 50 average realsift-1M postings).
const CleanSegment = 64 * PageSize

// Victims returns, in ascending order, the postings other than those
// moving anyway whose extents start in sparse segments of segBytes bytes
// of a postings file of fileEnd bytes, or none while it holds no more than
// 1.5 times its live bytes (counting the moving postings at their current
// size).
func Victims(v *View, moving func(h int32) bool, fileEnd, segBytes uint64) []int32 {
	if segBytes == 0 || fileEnd <= PageSize {
		return nil
	}
	nseg := (fileEnd + segBytes - 1) / segBytes
	live := make([]uint64, nseg)
	var total uint64
	for h := range int32(v.Len()) {
		e := v.Entry(h)
		total += uint64(e.Bytes)
		if !moving(h) && e.Offset < fileEnd {
			live[e.Offset/segBytes] += uint64(e.Bytes)
		}
	}
	if 2*fileEnd <= 3*total {
		return nil
	}
	var out []int32
	for h := range int32(v.Len()) {
		e := v.Entry(h)
		if moving(h) || e.Offset >= fileEnd {
			continue
		}
		s := e.Offset / segBytes
		span := min(segBytes, fileEnd-s*segBytes)
		if s == 0 {
			span -= min(span, PageSize) // the header page is not garbage
		}
		if 2*live[s] < span {
			out = append(out, h)
		}
	}
	return out
}
