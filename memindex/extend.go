package memindex

import (
	"fmt"
	"slices"
)

// Extend returns a new graph over vectors, whose first g.Len() rows are
// g's nodes and the rest new ones. The nodes in moved, whose rows in
// vectors differ from g's, are inserted again first, then the new nodes,
// and the nodes in removed are cut out of the graph: every edge into one
// is replaced by its out-neighbours (pruned to the degree), its own list
// emptied, and it stays unreachable (removed must hold every node removed
// so far, and not the entry point);
// moved and new nodes are each inserted as Build inserts a node (a greedy search of the graph so far,
// robust prune with p's Alpha, reverse edges pruned at the degree), in
// batches of at most 2 % of the nodes; then the graph is connected so
// that every node is reachable. g is not changed and stays usable; the
// new graph keeps g's degree, entry point and Tag. p's Degree, Passes and
// Seed are ignored. An updated index adds and moves the heads of split
// postings this way (spann.Checkpoint).
func (g *Graph[T]) Extend(vectors []T, moved, removed []int32, p Params) (*Graph[T], error) {
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
	b := newBuilder(h, p)
	if err := b.remove(removed); err != nil {
		return nil, err
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

// remove cuts the nodes in removed out of the graph (see Extend).
func (b *builder[T]) remove(removed []int32) error {
	g := b.g
	if len(removed) == 0 {
		return nil
	}
	b.removed = make([]bool, g.n)
	for _, r := range removed {
		if r < 0 || int(r) >= g.n || r == g.entry {
			return fmt.Errorf("memindex extend: cannot remove node %d (of %d, entry %d)", r, g.n, g.entry)
		}
		b.removed[r] = true
	}
	w := b.workers[0]
	for u := int32(0); int(u) < g.n; u++ {
		if b.removed[u] {
			continue
		}
		list := g.nbrs(u)
		if !slices.ContainsFunc(list, func(v int32) bool { return b.removed[v] }) {
			continue
		}
		// Through a removed node u reached its out-neighbours: reach them
		// directly, keeping the best by robust prune.
		ids := w.ids[:0]
		for _, v := range list {
			if !b.removed[v] {
				ids = append(ids, v)
				continue
			}
			for _, x := range g.nbrs(v) {
				if x != u && !b.removed[x] && !slices.Contains(ids, x) {
					ids = append(ids, x)
				}
			}
		}
		w.ids = ids
		q := g.row(u)
		cands := w.cands[:0]
		for _, id := range ids {
			cands = append(cands, Neighbor{ID: id, Dist: g.sp.Dist(q, g.row(id))})
		}
		w.cands = cands
		slot := g.adj[int(u)*g.degree : (int(u)+1)*g.degree]
		g.counts[u] = int32(len(b.prune(u, cands, b.p.Alpha, slot[:0])))
	}
	for _, r := range removed {
		g.counts[r] = 0
	}
	return nil
}
