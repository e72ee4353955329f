package memindex

import (
	"fmt"

	"github.com/gospann/spann/internal/vec"
)

// Extend returns a new graph over vectors, whose first g.Len() rows are
// g's nodes and the rest new ones. The nodes in moved, whose rows in
// vectors differ from g's, are inserted again first, then the new nodes,
// each as Build inserts a node (a greedy search of the graph so far,
// robust prune with p's Alpha, reverse edges pruned at the degree), in
// batches of at most 2 % of the nodes; then the graph is connected so
// that every node is reachable. g is not changed and stays usable; the
// new graph keeps g's degree, entry point and Tag. p's Degree, Passes and
// Seed are ignored. An updated index adds and moves the heads of split
// postings this way (spann.Checkpoint).
func (g *Graph[T]) Extend(vectors []T, moved []int32, p Params) (*Graph[T], error) {
	n2, err := checkVectors(vectors, g.dim)
	if err != nil {
		return nil, fmt.Errorf("memindex extend: %w", err)
	}
	if n2 < g.n {
		return nil, fmt.Errorf("memindex extend: %d vectors for a graph of %d", n2, g.n)
	}
	p.Degree = g.degree
	if p, err = p.withDefaults(); err != nil {
		return nil, fmt.Errorf("memindex extend: %w", err)
	}
	h := &Graph[T]{Tag: g.Tag, sp: g.sp, vectors: vectors, dim: g.dim, n: n2, degree: g.degree, entry: g.entry,
		counts: make([]int32, n2), adj: make([]int32, n2*g.degree)}
	var list []int32
	for i := int32(0); int(i) < g.n; i++ {
		list = g.appendNbrs(list[:0], i)
		h.counts[i] = int32(copy(h.adj[int(i)*g.degree:], list))
	}
	b := &builder[T]{g: h, p: p}
	switch g.sp.Metric {
	case vec.IP:
		b.pruneAlphaCap = 1
	case vec.Cosine:
		b.shift = 1
	}
	b.workers = make([]*buildWorker[T], p.Threads)
	for i := range b.workers {
		b.workers[i] = &buildWorker[T]{s: h.NewSearcher()}
	}
	maxBatch := max(1, int(maxBatchFraction*float64(n2)))
	for _, m := range moved {
		if m < 0 || int(m) >= g.n {
			return nil, fmt.Errorf("memindex extend: moved node %d of %d", m, g.n)
		}
	}
	for start := 0; start < len(moved); start += maxBatch {
		b.insertBatch(moved[start:min(len(moved), start+maxBatch)], p.Alpha)
	}
	for start := g.n; start < n2; {
		end := min(n2, start+maxBatch)
		batch := make([]int32, 0, end-start)
		for i := start; i < end; i++ {
			batch = append(batch, int32(i))
		}
		b.insertBatch(batch, p.Alpha)
		start = end
	}
	b.connect()
	h.pack()
	return h, nil
}
