package memindex

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gospann/spann/internal/vec"
)

// maxBatchFraction caps an insertion batch at this fraction of the nodes.
// Nodes of one batch do not see each other while they search, so small
// batches approximate sequential insertion; 2% (as in ParlayANN) loses no
// measurable recall while leaving enough parallel work per batch.
const maxBatchFraction = 0.02

// Build constructs a Vamana-style graph (DiskANN's greedy search plus
// robust prune, single layer, medoid entry point) over the n = len(vectors)/dim
// vectors. The Graph keeps a reference to vectors.
//
// Nodes are inserted in a seeded random order, in batches: every node of a
// batch searches the graph as it stood before the batch (in parallel),
// prunes its candidates into its out-list, and then the reverse edges are
// merged into their targets, one goroutine per target (again in parallel,
// pruning targets that overflow). Batches start at one node and double up
// to 2% of n. Because each step is a pure function of the graph before it,
// the result depends only on the vectors and Params minus Threads: the same
// seed gives the same graph with 1 or 64 threads.
func Build[T vec.Elem](sp vec.Space[T], vectors []T, dim int, p Params) (*Graph[T], error) {
	n, err := checkVectors(vectors, dim)
	if err != nil {
		return nil, fmt.Errorf("memindex build: %w", err)
	}
	if sp.Dist == nil || sp.Batch == nil {
		return nil, fmt.Errorf("memindex build: space has no distance functions")
	}
	p, err = p.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("memindex build: %w", err)
	}
	g := &Graph[T]{
		sp:      sp,
		vectors: vectors,
		dim:     dim,
		n:       n,
		degree:  p.Degree,
		counts:  make([]int32, n),
		adj:     make([]int32, n*p.Degree),
	}
	g.entry = medoid(sp, vectors, dim, n)
	if n == 1 {
		g.pack()
		return g, nil
	}

	b := newBuilder(g, p)

	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x6d656d696e646578))
	rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })

	maxBatch := max(1, int(maxBatchFraction*float64(n)))
	total := n * p.Passes
	done := 0
	for pass := 0; pass < p.Passes; pass++ {
		alpha := p.Alpha
		if pass < p.Passes-1 {
			alpha = 1
		}
		for start := 0; start < n; {
			size := maxBatch
			if pass == 0 {
				size = min(max(1, start), maxBatch)
			}
			end := min(n, start+size)
			b.insertBatch(order[start:end], alpha)
			done += end - start
			start = end
			if p.Progress != nil {
				p.Progress(done, total)
			}
		}
	}
	b.connect()
	g.pack()
	return g, nil
}

// newBuilder returns a builder of g with p's threads.
func newBuilder[T vec.Elem](g *Graph[T], p Params) *builder[T] {
	b := &builder[T]{g: g, p: p}
	// Robust prune compares alpha-scaled distances, which needs distances
	// that behave like squared lengths: squared L2 does, and for unit
	// vectors -dot+1 = |a-b|²/2 does (Cosine). Raw IP does not.
	switch g.sp.Metric {
	case vec.IP:
		b.pruneAlphaCap = 1
	case vec.Cosine:
		b.shift = 1
	}
	b.workers = make([]*buildWorker[T], p.Threads)
	for i := range b.workers {
		b.workers[i] = &buildWorker[T]{s: g.NewSearcher()}
	}
	return b
}

type builder[T vec.Elem] struct {
	g       *Graph[T]
	p       Params
	workers []*buildWorker[T]
	// shift is added to distances before alpha scaling (1 for Cosine).
	shift float32
	// pruneAlphaCap, when non-zero, caps alpha (1 for IP).
	pruneAlphaCap float32
	// removed marks the nodes Extend cut out: kept unreachable.
	removed []bool
	// Per-batch buffers, reused across batches.
	outLists  []int32
	outCounts []int32
	pairs     []uint64
	groups    []int
}

// buildWorker is the scratch of one build goroutine.
type buildWorker[T vec.Elem] struct {
	s     *Searcher[T]
	cands []Neighbor
	ids   []int32
}

// parallel runs fn(worker, i) for i in [0, count) on the builder's threads.
func (b *builder[T]) parallel(count int, fn func(w *buildWorker[T], i int)) {
	threads := min(len(b.workers), count)
	if threads <= 1 {
		for i := 0; i < count; i++ {
			fn(b.workers[0], i)
		}
		return
	}
	const chunk = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func(w *buildWorker[T]) {
			defer wg.Done()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= count {
					return
				}
				for i := lo; i < min(lo+chunk, count); i++ {
					fn(w, i)
				}
			}
		}(b.workers[t])
	}
	wg.Wait()
}

// insertBatch (re)inserts the nodes of batch: search, prune, write the new
// out-lists, then add and prune the reverse edges.
func (b *builder[T]) insertBatch(batch []int32, alpha float32) {
	g := b.g
	R := g.degree
	if need := len(batch) * R; cap(b.outLists) < need {
		b.outLists = make([]int32, need)
		b.outCounts = make([]int32, len(batch))
	}
	outLists := b.outLists[:len(batch)*R]
	outCounts := b.outCounts[:len(batch)]

	// Phase 1: every node searches the frozen graph and prunes (reads only).
	b.parallel(len(batch), func(w *buildWorker[T], i int) {
		out := outLists[i*R : i*R : (i+1)*R]
		outCounts[i] = int32(len(b.searchAndPrune(w, batch[i], alpha, out)))
	})
	// Phase 2: publish the new out-lists (each node writes its own slot).
	pairs := b.pairs[:0]
	for i, p := range batch {
		cnt := outCounts[i]
		copy(g.adj[int(p)*R:], outLists[i*R:i*R+int(cnt)])
		g.counts[p] = cnt
		for _, q := range outLists[i*R : i*R+int(cnt)] {
			pairs = append(pairs, uint64(uint32(q))<<32|uint64(uint32(p)))
		}
	}
	// Phase 3: reverse edges q→p, grouped by target q so that each target
	// is rewritten by exactly one goroutine. Sorting makes the merge order
	// independent of scheduling.
	slices.Sort(pairs)
	groups := b.groups[:0]
	for i := range pairs {
		if i == 0 || pairs[i]>>32 != pairs[i-1]>>32 {
			groups = append(groups, i)
		}
	}
	groups = append(groups, len(pairs))
	b.parallel(len(groups)-1, func(w *buildWorker[T], k int) {
		group := pairs[groups[k]:groups[k+1]]
		b.addReverse(w, int32(group[0]>>32), group, alpha)
	})
	b.pairs, b.groups = pairs, groups
}

// searchAndPrune finds p's new out-list: the robust prune of the nodes a
// greedy search for p's vector expands, plus p's current neighbours.
func (b *builder[T]) searchAndPrune(w *buildWorker[T], p int32, alpha float32, out []int32) []int32 {
	g := b.g
	q := g.row(p)
	w.s.run(q, b.p.BuildList, true)
	cands := w.cands[:0]
	for _, e := range w.s.expanded {
		if e.ID != p {
			cands = append(cands, e)
		}
	}
	for _, nb := range g.Neighbors(p) {
		cands = append(cands, Neighbor{ID: nb, Dist: g.sp.Dist(q, g.row(nb))})
	}
	w.cands = cands
	return b.prune(p, cands, alpha, out)
}

// addReverse adds the edges target→source for every pair in group,
// pruning target's list when it would exceed the degree.
func (b *builder[T]) addReverse(w *buildWorker[T], target int32, group []uint64, alpha float32) {
	g := b.g
	R := g.degree
	ids := append(w.ids[:0], g.Neighbors(target)...)
	for _, pair := range group {
		src := int32(uint32(pair))
		if src != target && !slices.Contains(ids, src) {
			ids = append(ids, src)
		}
	}
	w.ids = ids
	slot := g.adj[int(target)*R : (int(target)+1)*R]
	if len(ids) <= R {
		g.counts[target] = int32(copy(slot, ids))
		return
	}
	q := g.row(target)
	cands := w.cands[:0]
	for _, id := range ids {
		cands = append(cands, Neighbor{ID: id, Dist: g.sp.Dist(q, g.row(id))})
	}
	w.cands = cands
	g.counts[target] = int32(len(b.prune(target, cands, alpha, slot[:0])))
}

// prune is DiskANN's RobustPrune: walk the candidates from nearest to
// farthest and keep c unless a kept r "occludes" it, alpha·d(r,c) ≤ d(p,c);
// stop at Degree. It sorts cands in place and appends to out.
func (b *builder[T]) prune(p int32, cands []Neighbor, alpha float32, out []int32) []int32 {
	g := b.g
	if b.pruneAlphaCap != 0 {
		alpha = min(alpha, b.pruneAlphaCap)
	}
	slices.SortFunc(cands, func(a, b Neighbor) int {
		if c := cmp.Compare(a.Dist, b.Dist); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	kept := out[:0]
	for i, c := range cands {
		if len(kept) == g.degree {
			break
		}
		if c.ID == p || (i > 0 && cands[i-1].ID == c.ID) {
			continue // self, or a duplicate (equal ids sort adjacently)
		}
		cv := g.row(c.ID)
		occluded := false
		for _, r := range kept {
			if alpha*(g.sp.Dist(g.row(r), cv)+b.shift) <= c.Dist+b.shift {
				occluded = true
				break
			}
		}
		if !occluded {
			kept = append(kept, c.ID)
		}
	}
	return kept
}

// connect makes every node reachable from the entry point. Pruning can
// drop a node's last in-edge; such a node could never be returned by a
// search (in SPANN, a head whose posting list is never probed), so for each
// unreachable node u, in id order, it adds an edge r→u from the nearest
// reachable node r (found by searching for u) that has a free slot, or else
// replaces the farthest neighbour of the nearest one. Replacing can cut off
// other nodes, so it repeats until everything is reachable, a bounded
// number of times. It runs single-threaded; typically a few nodes need it.
func (b *builder[T]) connect() {
	g := b.g
	seen := make([]bool, g.n)
	var stack []int32
	mark := func(from int32) {
		if seen[from] {
			return
		}
		seen[from] = true
		stack = append(stack[:0], from)
		for len(stack) > 0 {
			cur := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, nb := range g.Neighbors(cur) {
				if !seen[nb] {
					seen[nb] = true
					stack = append(stack, nb)
				}
			}
		}
	}
	s := b.workers[0].s
	for round := 0; round < 8; round++ {
		clear(seen)
		mark(g.entry)
		fixed := 0
		for u := int32(0); int(u) < g.n; u++ {
			if seen[u] || (b.removed != nil && b.removed[u]) {
				continue
			}
			// The search only walks reachable nodes, so its list holds
			// reachable candidates, nearest first.
			q := g.row(u)
			s.run(q, b.p.BuildList, false)
			r := s.list[0].id
			for _, c := range s.list {
				if c.id != u && int(g.counts[c.id]) < g.degree {
					r = c.id
					break
				}
			}
			base := int(r) * g.degree
			if cnt := int(g.counts[r]); cnt < g.degree {
				g.adj[base+cnt] = u
				g.counts[r]++
			} else {
				far, farDist := 0, float32(-1)
				rv := g.row(r)
				for k, nb := range g.Neighbors(r) {
					if d := g.sp.Dist(rv, g.row(nb)); d > farDist {
						far, farDist = k, d
					}
				}
				g.adj[base+far] = u
			}
			mark(u)
			fixed++
		}
		if fixed == 0 {
			return
		}
	}
}
