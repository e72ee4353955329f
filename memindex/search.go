package memindex

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gospann/spann/internal/vec"
)

// candidate is one entry of the search list.
type candidate struct {
	id       int32
	dist     float32
	expanded bool
}

// Searcher runs greedy best-first searches on one Graph. It owns all the
// scratch a search needs (visited stamps, the sorted search list, the result
// buffer), so that after the first few queries a search allocates nothing.
//
// Concurrency: a Searcher is not safe for concurrent use; give each
// goroutine its own (they share the Graph, which is read-only).
type Searcher[T vec.Elem] struct {
	g *Graph[T]
	// visited has bit i set once node i is scored in this search; dirty
	// lists the words set, cleared when the next search starts.
	//
	// Why bits: a search scores a few thousand of hundreds of thousands of
	// nodes at random, and with a uint32 epoch per node (1.4 MB on
	// realsift-1M's 360k heads) nearly every check missed the cache
	// (pprof: 6.5 % of the server's CPU on that one line); as bits the
	// set is 45 KB and stays in L2. Measured on realsift-1M: CPU per query
	// the same within the machine's noise (-1 %), 1.3 MiB less RSS with two
	// workers; at a billion vectors the difference is 32 bits per head per
	// worker.
	visited []uint64
	dirty   []int32
	list    []candidate
	result  []Neighbor
	// expanded records the nodes expanded by the last search when the
	// build asks for it (they are the robust-prune candidates).
	expanded []Neighbor
	// distCount counts distance computations over the Searcher's life, a
	// machine-independent cost measure for tests and benchmarks.
	distCount int64
	// Gather buffers: the unvisited neighbours of the node being expanded,
	// their vectors copied contiguously, and their distances.
	nbAll   []int32 // the expanded node's neighbours, decoded
	nbIDs   []int32
	gather  []T
	nbDists []float32
}

// NewSearcher returns a Searcher for g.
func (g *Graph[T]) NewSearcher() *Searcher[T] {
	return &Searcher[T]{g: g, visited: make([]uint64, (g.n+63)/64)}
}

// Search returns the m nearest nodes to q that a greedy search with a list
// of budget candidates finds, sorted by ascending distance (ties in search
// order). budget is the search list size L: the search keeps the best L
// nodes seen and stops when all of them have been expanded; it costs about
// budget·Degree distance computations, and recall grows with it. A budget
// below m is raised to m. If m exceeds the number of nodes, every reachable
// node is returned.
//
// The returned slice is owned by the Searcher and is valid until its next
// call. Search returns nil when len(q) != g.Dim() or m < 1.
func (s *Searcher[T]) Search(q []T, m int, budget int) []Neighbor {
	g := s.g
	if len(q) != g.dim || m < 1 {
		return nil
	}
	budget = max(budget, m)
	s.run(q, budget, false)
	k := min(m, len(s.list))
	res := s.result[:0]
	for _, c := range s.list[:k] {
		res = append(res, Neighbor{ID: c.id, Dist: c.dist})
	}
	s.result = res
	return res
}

// run performs a greedy search with list size L, leaving the best L nodes
// found in s.list (ascending distance). With record set it also appends
// every expanded node to s.expanded.
func (s *Searcher[T]) run(q []T, L int, record bool) {
	g := s.g
	visited := s.visited
	for _, w := range s.dirty {
		visited[w] = 0
	}
	dirty := s.dirty[:0]
	if cap(s.list) < L {
		s.list = make([]candidate, 0, L)
	}
	list := s.list[:0]
	s.expanded = s.expanded[:0]

	visited[g.entry>>6] = 1 << (g.entry & 63)
	dirty = append(dirty, g.entry>>6)
	list = append(list, candidate{id: g.entry, dist: g.sp.Dist(q, g.row(g.entry))})
	for k := 0; k < len(list); {
		cur := list[k].id
		list[k].expanded = true
		if record {
			s.expanded = append(s.expanded, Neighbor{ID: cur, Dist: list[k].dist})
		}
		// lowest is the smallest list position written while expanding
		// cur; if it is above k, the next unexpanded candidate is after k.
		lowest := len(list)
		// Copy the unvisited neighbours' vectors into one buffer and score
		// them with one batched kernel call: the copies are independent
		// loads, so their cache misses overlap instead of each distance
		// call waiting for its own (the head vectors do not fit in cache).
		ids := s.nbIDs[:0]
		buf := s.gather[:0]
		s.nbAll = g.appendNbrs(s.nbAll[:0], cur)
		for _, nb := range s.nbAll {
			w, bit := nb>>6, uint64(1)<<(nb&63)
			if visited[w]&bit != 0 {
				continue
			}
			if visited[w] == 0 {
				dirty = append(dirty, w)
			}
			visited[w] |= bit
			ids = append(ids, nb)
			buf = append(buf, g.row(nb)...)
		}
		s.nbIDs, s.gather = ids, buf
		if cap(s.nbDists) < len(ids) {
			s.nbDists = make([]float32, g.degree)
		}
		dists := s.nbDists[:len(ids)]
		g.sp.Batch(q, buf, dists)
		s.distCount += int64(len(ids))
		for j, nb := range ids {
			d := dists[j]
			if len(list) == L && d >= list[L-1].dist {
				continue
			}
			// Binary search for the first entry farther than d.
			lo, hi := 0, len(list)
			for lo < hi {
				mid := int(uint(lo+hi) >> 1)
				if list[mid].dist <= d {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			if len(list) < L {
				list = append(list, candidate{})
			}
			copy(list[lo+1:], list[lo:len(list)-1])
			list[lo] = candidate{id: nb, dist: d}
			lowest = min(lowest, lo)
		}
		if lowest <= k {
			k = lowest
		} else {
			k++
		}
		for k < len(list) && list[k].expanded {
			k++
		}
	}
	s.list, s.dirty = list, dirty
}

// BruteForce computes the exact m nearest vectors to q by scanning all of
// them, for tests and recall measurement. Results are sorted by ascending
// distance, ties by ascending id; they are appended to out[:0] (pass a
// reused buffer to avoid allocating) and the slice is returned. If m exceeds
// the number of vectors, all of them are returned.
func BruteForce[T vec.Elem](sp vec.Space[T], vectors []T, dim int, q []T, m int, out []Neighbor) ([]Neighbor, error) {
	n, err := checkVectors(vectors, dim)
	if err != nil {
		return out[:0], fmt.Errorf("brute force: %w", err)
	}
	if len(q) != dim {
		return out[:0], fmt.Errorf("brute force: query has %d elements, want %d", len(q), dim)
	}
	if m < 1 {
		return out[:0], fmt.Errorf("brute force: m = %d must be positive", m)
	}
	m = min(m, n)
	// heap is a max-heap by (dist, id) of the best m so far: its root is
	// the current worst kept result.
	heap := out[:0]
	worse := func(a, b Neighbor) bool {
		return a.Dist > b.Dist || (a.Dist == b.Dist && a.ID > b.ID)
	}
	var dists [512]float32
	for start := 0; start < n; start += len(dists) {
		cnt := min(len(dists), n-start)
		sp.Batch(q, vectors[start*dim:(start+cnt)*dim], dists[:cnt])
		for k, d := range dists[:cnt] {
			c := Neighbor{ID: int32(start + k), Dist: d}
			if len(heap) < m {
				heap = append(heap, c)
				siftUp(heap, len(heap)-1, worse)
			} else if worse(heap[0], c) {
				heap[0] = c
				siftDown(heap, 0, worse)
			}
		}
	}
	slices.SortFunc(heap, func(a, b Neighbor) int {
		if c := cmp.Compare(a.Dist, b.Dist); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return heap, nil
}

func siftUp(h []Neighbor, i int, above func(a, b Neighbor) bool) {
	for i > 0 {
		parent := (i - 1) / 2
		if !above(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDown(h []Neighbor, i int, above func(a, b Neighbor) bool) {
	for {
		top := i
		l, r := 2*i+1, 2*i+2
		if l < len(h) && above(h[l], h[top]) {
			top = l
		}
		if r < len(h) && above(h[r], h[top]) {
			top = r
		}
		if top == i {
			return
		}
		h[i], h[top] = h[top], h[i]
		i = top
	}
}
