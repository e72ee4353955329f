package spann

import (
	"math/bits"

	"github.com/gospann/spann/iouring"
	"github.com/gospann/spann/posting"
)

// pagePool hands out page-aligned runs of whole pages for one worker's
// posting reads: each query round takes one run for all its postings and
// gives it back once they are scanned.
//
// Why: with one buffer per query slot, each slot keeps the pages of the
// largest round it ever read resident, so a worker with 16 queries in
// flight held 16 × its worst round (≈ 4–5 MiB on realsift-1M with the
// two-round rule). Shared first-fit runs keep only what is in flight at
// once, at the low end of the first arena.
//
// Runs come from arenas of arenaPages pages (mmap'd, so untouched pages
// cost nothing); a round larger than an arena gets a buffer of its own.
// Not safe for concurrent use: a worker owns its pool.
type pagePool struct {
	arenas []*arena
}

// arenaPages is the size of one arena in pages (1 MiB).
const arenaPages = 256

type arena struct {
	mem  []byte
	used [arenaPages / 64]uint64 // bit i set: page i is handed out
}

// span is a run handed out by get; the zero span holds nothing.
type span struct {
	buf   []byte
	a     *arena // nil for a buffer of its own
	first int    // first page in a
	pages int
}

// get returns a run of at least n bytes (n > 0), whole pages.
func (p *pagePool) get(n int) (span, error) {
	pages := (n + posting.PageSize - 1) / posting.PageSize
	if pages > arenaPages {
		b, err := iouring.AlignedBuffer(pages * posting.PageSize)
		return span{buf: b, pages: pages}, err
	}
	for _, a := range p.arenas {
		if first, ok := a.take(pages); ok {
			return a.span(first, pages), nil
		}
	}
	mem, err := iouring.AlignedBuffer(arenaPages * posting.PageSize)
	if err != nil {
		return span{}, err
	}
	a := &arena{mem: mem}
	p.arenas = append(p.arenas, a)
	first, _ := a.take(pages) // an empty arena fits any run up to arenaPages
	return a.span(first, pages), nil
}

// putPart gives back the pages of part, a page-aligned slice of s's
// buffer, as soon as the read into it is scanned, so that a round's
// postings free their pages one by one while its other reads are still
// in flight. A buffer of its own (s.a == nil) is kept until put.
func (p *pagePool) putPart(s span, part []byte) {
	if s.a == nil || len(part) == 0 {
		return
	}
	// part = s.buf[off:off+len(part)], so their capacities differ by off.
	first := s.first + (cap(s.buf)-cap(part))/posting.PageSize
	for i := first; i < first+len(part)/posting.PageSize; i++ {
		s.a.used[i/64] &^= 1 << (i % 64)
	}
}

// put gives a run back; its reads must all have completed, and none of
// its pages may have been given back with putPart.
func (p *pagePool) put(s span) {
	switch {
	case s.buf == nil:
	case s.a == nil:
		iouring.FreeBuffer(s.buf)
	default:
		for i := s.first; i < s.first+s.pages; i++ {
			s.a.used[i/64] &^= 1 << (i % 64)
		}
	}
}

// close unmaps every arena; no run may be in use.
func (p *pagePool) close() error {
	var first error
	for _, a := range p.arenas {
		if err := iouring.FreeBuffer(a.mem); err != nil && first == nil {
			first = err
		}
	}
	p.arenas = nil
	return first
}

func (a *arena) span(first, pages int) span {
	return span{buf: a.mem[first*posting.PageSize : (first+pages)*posting.PageSize], a: a, first: first, pages: pages}
}

// take marks the first run of pages free pages as used (first fit).
func (a *arena) take(pages int) (int, bool) {
	run := 0
	for i := 0; i < arenaPages; {
		w := a.used[i/64]
		if i%64 == 0 && w == 0 && run+64 < pages {
			run += 64 // a whole free word
			i += 64
			continue
		}
		if i%64 == 0 && w == ^uint64(0) {
			run = 0
			i += 64
			continue
		}
		if w&(1<<(i%64)) != 0 {
			run = 0
		} else if run++; run == pages {
			first := i - pages + 1
			for j := first; j <= i; j++ {
				a.used[j/64] |= 1 << (j % 64)
			}
			return first, true
		}
		i++
	}
	return 0, false
}

// inUse returns how many pages of the pool's arenas are handed out.
func (p *pagePool) inUse() int {
	n := 0
	for _, a := range p.arenas {
		for _, w := range a.used {
			n += bits.OnesCount64(w)
		}
	}
	return n
}
