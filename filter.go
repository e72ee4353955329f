package spann

import (
	"errors"
	"fmt"

	"github.com/RoaringBitmap/roaring/v2"

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
	if ix.labels == nil {
		return ErrNoLabels
	}
	if len(p.Filter) == 0 {
		return fmt.Errorf("the filter names no label (nil means no filter)")
	}
	for _, x := range p.Filter {
		if x < 0 || int(x) >= ix.labels.Vocab() {
			return fmt.Errorf("the filter names label %d, but the index's labels are 0..%d", x, ix.labels.Vocab()-1)
		}
	}
	return nil
}

// matching returns the ids carrying every label of filter: a read-only
// view for one label, their AND for more (allocated: the filtered path
// allocates per query, the unfiltered one never).
func (ix *Index) matching(filter []int32) *roaring.Bitmap {
	if len(filter) == 1 {
		return ix.labels.Bitmap(int(filter[0]))
	}
	sets := make([]*roaring.Bitmap, len(filter))
	for i, x := range filter {
		sets[i] = ix.labels.Bitmap(int(x))
	}
	return roaring.FastAnd(sets...)
}

// filterHeads chooses the postings a filtered query reads, by how many
// vectors match (s.allow), and pushes the matching head vectors it meets
// into the slot's heap:
//
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
	homes := ix.labels.Homes
	it := s.allow.ManyIterator()
	for {
		got := it.NextMany(w.idBuf[:])
		if got == 0 {
			break
		}
		for _, id := range w.idBuf[:got] {
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

// MatchCount returns how many indexed vectors carry every label of filter
// (checked as SearchParams.Filter is): a filter's selectivity.
func (ix *Index) MatchCount(filter []int32) (int, error) {
	if err := ix.CheckFilter(filter); err != nil {
		return 0, err
	}
	// The bitmaps are views of memory that Close frees once nothing is
	// busy: count as busy meanwhile, as a search does.
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return 0, ErrClosed
	}
	ix.busy++
	ix.mu.Unlock()
	defer func() {
		ix.mu.Lock()
		ix.release()
		ix.mu.Unlock()
	}()
	return int(ix.matching(filter).GetCardinality()), nil
}
