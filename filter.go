package spann

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/topk"
	"github.com/gospann/spann/memindex"
)

// ErrNoLabels is returned by a filtered search of an index without labels.
var ErrNoLabels = errors.New("spann: the index has no labels (spann-build --labels, spann-update --labels)")

// FilterHomesMax is the largest share of the index a filter may match for
// the homes plan (see filterHeads); above it a filtered search walks heads
// as an unfiltered one does, keeping only matching entries.
const FilterHomesMax = 0.03

// CheckFilter reports whether filter is one this index can search with:
// the index has labels, and filter names at least one, each in range.
// The errors are those a filtered search returns (ErrNoLabels, or one
// naming the label).
func (ix *Index) CheckFilter(filter []int32) error {
	if filter == nil {
		filter = []int32{}
	}
	return ix.checkFilter(&SearchParams{Filter: filter})
}

// checkFilter validates p.Filter against the index's labels.
func (ix *Index) checkFilter(p *SearchParams) error {
	if p.Filter == nil {
		return nil
	}
	lab := ix.eng.labels()
	if lab == nil {
		return ErrNoLabels
	}
	if len(p.Filter) == 0 {
		return fmt.Errorf("the filter names no label (nil means no filter)")
	}
	for _, x := range p.Filter {
		if x < 0 || int(x) >= lab.Vocab() {
			return fmt.Errorf("the filter names label %d, but the index's labels are 0..%d", x, lab.Vocab()-1)
		}
	}
	return nil
}

// matching returns the ids carrying every label of filter: a read-only
// view for one label, their AND for more (allocated: the filtered path
// allocates per query, the unfiltered one never).
func matching(lab *labelState, filter []int32) *roaring.Bitmap {
	if len(filter) == 1 {
		return lab.Bitmap(int(filter[0]))
	}
	sets := make([]*roaring.Bitmap, len(filter))
	for i, x := range filter {
		sets[i] = lab.Bitmap(int(x))
	}
	return roaring.FastAnd(sets...)
}

// filterHeads chooses the postings a filtered query reads, by how many
// vectors match (s.allow), and pushes the matching head vectors it meets
// into the slot's heap:
//
//   - The lists plan, when a label of the filter has label lists
//     (labellists.go) and the filter matches at least a sixteenth of that
//     label's carriers: the lists whose heads are nearest the query are
//     read (see listsFor), and no posting.
//   - The homes plan, for a filter matching at most FilterHomesMax of the
//     index: every matching vector is in its home posting (labels.bin), so
//     the nearest homes hold the nearest matches. Their heads are scored
//     by brute force and the nProbe nearest homes are the candidates —
//     all of them when fewer, which makes a rare filter's answer exact
//     (unless Eps, MaxPostings or FirstRound cut the list). A matching
//     head vector in no posting is scored directly.
//   - The walk, otherwise: the head graph's nearest heads, as unfiltered,
//     with nProbe raised as the filter narrows (nProbe/(4·share), at most
//     4×); scan keeps only matching entries.
func (w *workerT[T]) filterHeads(s *querySlot[T], set *headSet[T], p *SearchParams) []memindex.Neighbor {
	ix := w.e.ix
	n := s.allow.GetCardinality()
	share := float64(n) / float64(max(1, ix.N()))
	if x, nl := w.listsFor(s, p, n); nl > 0 {
		w.rankLists(s, x, nl)
		return nil
	}
	if share > FilterHomesMax {
		boost := min(4, max(1, 1/(4*share)))
		nprobe := min(int(float64(p.NProbe)*boost+0.5), len(set.ids))
		heads := w.hs.Search(s.q, nprobe, max(p.HeadList, nprobe+max(8, nprobe/2)))
		for _, h := range heads {
			if id := set.ids[h.ID]; s.allow.Contains(id) && (s.dead == nil || !s.dead.Contains(id)) {
				s.heap.Push(int32(id), h.Dist)
			}
		}
		return heads
	}
	// The homes plan: mark each matching vector's home once.
	postings := s.view.Len()
	if words := (postings + 63) / 64; len(w.homeMark) < words {
		w.homeMark = make([]uint64, words)
	}
	w.homeList = w.homeList[:0]
	homes := set.labels.Homes
	it := s.allow.ManyIterator()
	for {
		got := it.NextMany(w.idBuf[:])
		if got == 0 {
			break
		}
		for _, id := range w.idBuf[:got] {
			if int(id) >= len(homes) {
				break // inserted since the labels file: scored directly (scoreInserted)
			}
			switch h := homes[id]; {
			case h >= 0:
				if w.homeMark[h>>6]&(1<<(h&63)) == 0 {
					w.homeMark[h>>6] |= 1 << (h & 63)
					w.homeList = append(w.homeList, h)
				}
			case h <= -2: // a head vector in no posting
				if hh := -2 - h; set.ids[hh] == id && (s.dead == nil || !s.dead.Contains(id)) {
					s.heap.Push(int32(id), w.e.sp.Dist(s.q, set.row(hh, ix.dim)))
				}
			}
		}
	}
	if w.homeHeap == nil {
		w.homeHeap = topk.New(p.NProbe)
	}
	w.homeHeap.Reset(p.NProbe)
	// Score the homes' heads in chunks: copying a chunk's rows together
	// lets their cache misses overlap, and one batched kernel call scores
	// them (pprof at 1 %: single Dist calls were 47 % of the CPU).
	const chunk = 64
	if len(w.homeRows) < chunk*ix.dim {
		w.homeRows = make([]T, chunk*ix.dim)
		w.homeScores = make([]float32, chunk)
	}
	for lo := 0; lo < len(w.homeList); lo += chunk {
		part := w.homeList[lo:min(lo+chunk, len(w.homeList))]
		rows := w.homeRows[:0]
		for _, h := range part {
			w.homeMark[h>>6] = 0 // cleared for the next query as we go
			rows = append(rows, set.row(h, ix.dim)...)
		}
		d := w.homeScores[:len(part)]
		w.e.sp.Batch(s.q, rows, d)
		for i, h := range part {
			w.homeHeap.Push(h, d[i])
		}
	}
	got := w.homeHeap.Len()
	if cap(w.homeIDs) < got {
		w.homeIDs, w.homeDists = make([]int32, got), make([]float32, got)
	}
	w.homeHeap.Sorted(w.homeIDs[:got], w.homeDists[:got])
	w.homeNbrs = w.homeNbrs[:0]
	for i := 0; i < got; i++ {
		w.homeNbrs = append(w.homeNbrs, memindex.Neighbor{ID: w.homeIDs[i], Dist: w.homeDists[i]})
	}
	s.stats.HomesPlan = 1
	return w.homeNbrs
}

// MatchCount returns how many indexed vectors (not deleted) carry every
// label of filter (checked as SearchParams.Filter is): a filter's
// selectivity.
func (ix *Index) MatchCount(filter []int32) (int, error) {
	if err := ix.CheckFilter(filter); err != nil {
		return 0, err
	}
	// The bitmaps are views of memory that Close frees once nothing is
	// busy: count as busy meanwhile, as a search does.
	if err := ix.enter(); err != nil {
		return 0, err
	}
	defer ix.leave()
	inserted := ix.ilab.matching(filter) // before the labels, as a search (begin)
	m := matching(ix.eng.labels(), filter)
	if inserted != nil {
		m = roaring.Or(m, inserted.ids)
	}
	if dead := ix.dead.Load(); dead != nil {
		return int(roaring.AndNot(m, dead).GetCardinality()), nil
	}
	return int(m.GetCardinality()), nil
}

// The lists plan's thresholds. A filter whose matches are a share m of
// its label's carriers finds its k nearest among about the k/m nearest
// carriers, so it reads more of the label's lists: NProbe·√(1/m), at most
// 8×, and only while m ≥ 1/16 (below, the homes plan). Measured on
// realsift-1M's two-label filters (docs/benchmarks.md), the boost √(1/m)
// and 1/m trace one recall-pages curve, √ reaching the usual nprobe's
// recall with fewer pages; at 0.1 % with m ≥ 1/16 lists beat homes
// (recall@10 0.970 at 30 pages, 0.958 at 34 with homes below m = 1/4).
const (
	listsMinMatch = 1.0 / 16
	listsBoostMax = 8
)

// listsFor picks the lists plan's label for a filter matching n vectors:
// of the filter's labels with lists, the one with fewest carriers c, if n
// is at least listsMinMatch of them. It returns the label and how many of
// its lists to read (see listsBoostMax); 0 lists for no lists plan.
func (w *workerT[T]) listsFor(s *querySlot[T], p *SearchParams, n uint64) (int, int) {
	ll := &s.lab.Lists
	if ll.Len() == 0 || n == 0 {
		return 0, 0
	}
	best, bestC := -1, uint64(0)
	for _, x := range p.Filter {
		if lo, hi := ll.Of(int(x)); hi > lo {
			c := n // a one-label filter's carriers are its matches
			if len(p.Filter) > 1 {
				c = s.lab.Bitmap(int(x)).GetCardinality()
			}
			if best < 0 || c < bestC {
				best, bestC = int(x), c
			}
		}
	}
	if best < 0 || float64(n) < listsMinMatch*float64(bestC) {
		return 0, 0
	}
	lo, hi := ll.Of(best)
	boost := min(listsBoostMax, math.Sqrt(float64(bestC)/float64(n)))
	return best, min(hi-lo, int(math.Ceil(float64(p.NProbe)*boost)))
}

// rankLists scores label x's list heads against the query by brute force
// (one batched kernel call: they are contiguous) and keeps the nl nearest
// in s.lists, nearest first, for readLists.
func (w *workerT[T]) rankLists(s *querySlot[T], x, nl int) {
	ix := w.e.ix
	ll := &s.lab.Lists
	lo, hi := ll.Of(x)
	if cap(w.homeScores) < hi-lo {
		w.homeScores = make([]float32, hi-lo)
	}
	d := w.homeScores[:hi-lo]
	w.e.sp.Batch(s.q, datasets.Rows[T](ll.Heads[lo*ix.rowBytes:hi*ix.rowBytes]), d)
	if w.homeHeap == nil {
		w.homeHeap = topk.New(nl)
	}
	w.homeHeap.Reset(nl)
	for i, dist := range d {
		w.homeHeap.Push(int32(lo+i), dist)
	}
	got := w.homeHeap.Len()
	if cap(w.homeIDs) < got {
		w.homeIDs, w.homeDists = make([]int32, got), make([]float32, got)
	}
	w.homeHeap.Sorted(w.homeIDs[:got], w.homeDists[:got])
	s.lists = append(s.lists[:0], w.homeIDs[:got]...)
	s.stats.ListsPlan = 1
}

// readLists reads and scans the slot's label lists in one batch on the
// worker's lists reader, waiting for it: the lists file has its own
// descriptor, and a second ring polled beside the postings' would
// complicate every search loop for a plan that reads a few pages. The
// reads count as the query's first round.
func (w *workerT[T]) readLists(s *querySlot[T]) error {
	lists := s.lab.lists
	if w.lstate != s.lab { // the worker's first lists plan, or a checkpoint's new lists
		if err := w.openLists(s.lab); err != nil {
			return err
		}
	}
	view := lists.Snapshot()
	probe, total := view.Plan(s.lists)
	if total == 0 {
		return nil
	}
	sp, err := w.pool.get(total)
	if err != nil {
		return err
	}
	defer w.pool.put(sp)
	reqs := view.Requests(probe, sp.buf, w.lreqs[:0])
	w.lreqs = reqs[:0]
	s.ioStart, s.stats.Rounds, s.stats.Postings = time.Now(), 1, s.stats.Postings+len(probe)
	err = w.lreader.ReadEach(reqs, func(i int) {
		if s.err == nil && s.ctx != nil {
			s.err = s.ctx.Err()
		}
		if s.err != nil {
			return
		}
		t0 := time.Now()
		ids, rows, err := lists.Decode(w.ldec, view, probe[i], &reqs[i])
		if err != nil {
			s.err = postingError(err)
			return
		}
		w.score(s, ids, rows, len(reqs[i].Buf), t0)
	})
	if err != nil {
		return fmt.Errorf("reading label lists of %s: %w", lists.Path(), err)
	}
	return nil
}

// openLists gives the worker a reader and decoder of lab's lists file,
// closing those of the lists it read before.
func (w *workerT[T]) openLists(lab *labelState) error {
	w.closeLists()
	ix := w.e.ix
	r, _, err := lab.lists.NewReader(ix.io, ringDepth)
	if err != nil {
		return fmt.Errorf("open %s: %w", lab.lists.Path(), err)
	}
	if ix.wrap != nil {
		r = ix.wrap(r)
	}
	dec, err := lab.lists.NewDecoder()
	if err != nil {
		r.Close()
		return err
	}
	w.lreader, w.ldec, w.lstate = r, dec, lab
	return nil
}

// closeLists closes the worker's lists reader, if it has one.
func (w *workerT[T]) closeLists() error {
	if w.lreader == nil {
		return nil
	}
	w.ldec.Close()
	err := w.lreader.Close()
	w.lreader, w.ldec, w.lstate = nil, nil, nil
	return err
}
