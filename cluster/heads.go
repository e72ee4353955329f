package cluster

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gospann/spann/internal/vec"
)

// bigNode is the size from which a node is split by all threads together
// (one node at a time); smaller nodes are split one per goroutine.
const bigNode = 8192

// node is a contiguous range idx[lo:hi] of rows that must yield budget heads
// (1 ≤ budget ≤ hi-lo).
type node struct{ lo, hi, budget int }

// builder holds the state of one SelectHeads call. Its slices are shared by
// the goroutines of a level, each of which only touches its nodes' ranges.
type builder[T vec.Elem] struct {
	sp     vec.Space[T]
	metric vec.Metric
	ip     bool // IP or Cosine: distance is the negated dot product
	data   []T
	dim    int
	p      Params
	conv   func(dst []float32, src []T) // row to float32

	idx    []int32    // a permutation of the rows; every node is a range of it
	labels []int32    // per idx position: cluster label during a split
	tmp    []int32    // per idx position: counting-sort buffer
	scr    []*scratch // one per thread
}

// SelectHeads picks the SPANN head vectors among the n = len(data)/dim rows
// of data (row-major, dim elements per row) by hierarchical balanced k-means
// (see the package documentation). It returns the sorted, distinct indices of
// the chosen rows. When n > p.Heads it returns exactly p.Heads indices; when
// n ≤ p.Heads it returns every row.
//
// The result depends only on data, sp's metric and p (not on p.Threads).
// SelectHeads does not modify data and may run concurrently with other calls.
func SelectHeads[T vec.Elem](sp vec.Space[T], data []T, dim int, p Params) ([]int, error) {
	heads, _, err := selectHeads(sp, data, dim, p)
	return heads, err
}

// selectHeads is SelectHeads that also returns, for every head, the size of
// the leaf cluster it was chosen from (in head order), for tests and reports.
func selectHeads[T vec.Elem](sp vec.Space[T], data []T, dim int, p Params) ([]int, []int, error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if sp.Dist == nil || sp.Batch == nil {
		return nil, nil, errors.New("cluster: vec.Space is not initialised (use vec.NewSpace)")
	}
	switch sp.Metric {
	case vec.L2, vec.IP, vec.Cosine:
	default:
		return nil, nil, fmt.Errorf("cluster: unsupported metric %s", sp.Metric)
	}
	if dim <= 0 {
		return nil, nil, fmt.Errorf("cluster: dimension %d must be positive", dim)
	}
	if len(data) == 0 || len(data)%dim != 0 {
		return nil, nil, fmt.Errorf("cluster: data length %d is not a positive multiple of dimension %d", len(data), dim)
	}
	n := len(data) / dim
	if n > math.MaxInt32 {
		return nil, nil, fmt.Errorf("cluster: %d rows exceed the supported %d", n, math.MaxInt32)
	}
	p = p.withDefaults()
	if p.Heads == 0 {
		p.Heads = (n + p.LeafSize - 1) / p.LeafSize
	}
	if p.Heads >= n {
		all := make([]int, n)
		leaves := make([]int, n)
		for i := range all {
			all[i] = i
			leaves[i] = 1
		}
		if p.Progress != nil {
			p.Progress(n, n)
		}
		return all, leaves, nil
	}

	b := &builder[T]{
		sp: sp, metric: sp.Metric, ip: sp.Metric != vec.L2,
		data: data, dim: dim, p: p, conv: converter[T](),
		idx:    make([]int32, n),
		labels: make([]int32, n),
		tmp:    make([]int32, n),
	}
	for i := range b.idx {
		b.idx[i] = int32(i)
	}
	for range p.Threads {
		b.scr = append(b.scr, newScratch(dim, p.Branch))
	}

	var heads []int32
	var leafSizes []int
	level := []node{{0, n, p.Heads}}
	for len(level) > 0 {
		results := b.runLevel(level)
		var next []node
		for _, r := range results {
			next = append(next, r.children...)
			heads = append(heads, r.heads...)
			leafSizes = append(leafSizes, r.leafSizes...)
		}
		level = next
		if p.Progress != nil {
			p.Progress(len(heads), p.Heads)
		}
	}
	if len(heads) != p.Heads {
		// apportion guarantees the budget adds up; this is a bug if it fires.
		return nil, nil, fmt.Errorf("cluster: internal error: selected %d heads, want %d", len(heads), p.Heads)
	}

	// Sort heads, carrying their leaf sizes along.
	order := make([]int, len(heads))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, c int) int { return int(heads[a]) - int(heads[c]) })
	out := make([]int, len(heads))
	sizes := make([]int, len(heads))
	for i, o := range order {
		out[i] = int(heads[o])
		sizes[i] = leafSizes[o]
		if i > 0 && out[i] == out[i-1] {
			return nil, nil, fmt.Errorf("cluster: internal error: row %d selected twice", out[i])
		}
	}
	return out, sizes, nil
}

// nodeResult is what processing one node produces.
type nodeResult struct {
	children  []node
	heads     []int32
	leafSizes []int // per head: the size of the node it was picked from
}

// runLevel processes every node of one tree level and returns their results
// in node order. Big nodes go one at a time with all threads splitting them;
// the rest are spread over the threads, one node per goroutine at a time.
func (b *builder[T]) runLevel(level []node) []nodeResult {
	results := make([]nodeResult, len(level))
	var small []int
	for i, nd := range level {
		if nd.hi-nd.lo >= bigNode && b.p.Threads > 1 {
			results[i] = b.processNode(nd, b.p.Threads, 0)
		} else {
			small = append(small, i)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for t := range min(b.p.Threads, len(small)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := int(next.Add(1) - 1)
				if s >= len(small) {
					return
				}
				i := small[s]
				results[i] = b.processNode(level[i], 1, t)
			}
		}()
	}
	wg.Wait()
	return results
}

// processNode splits one node, or picks its heads if it is a leaf. With
// threads == 1 it uses only b.scr[worker]; with more (then worker is 0) it
// uses b.scr[:threads].
func (b *builder[T]) processNode(nd node, threads, worker int) nodeResult {
	ids := b.idx[nd.lo:nd.hi]
	m := len(ids)
	if nd.budget >= m {
		leaves := make([]int, m)
		for i := range leaves {
			leaves[i] = 1
		}
		return nodeResult{heads: slices.Clone(ids), leafSizes: leaves}
	}
	if nd.budget == 1 {
		return nodeResult{heads: []int32{b.medoid(ids, b.scr[worker])}, leafSizes: []int{m}}
	}

	// Seed from the node's identity, so the result does not depend on the
	// order in which nodes are processed.
	rng := rand.New(rand.NewPCG(uint64(b.p.Seed), uint64(nd.lo)<<32|uint64(nd.hi)))
	k := min(b.p.Branch, nd.budget)
	scr := b.scr[worker : worker+1]
	if threads > 1 {
		scr = b.scr[:threads]
	}
	sizes := b.split(scr, ids, b.labels[nd.lo:nd.hi], b.tmp[nd.lo:nd.hi], k, rng)
	if len(sizes) < 2 {
		// Degenerate data (all rows equal, or nearly): any split is as good
		// as another, so cut the range into equal parts.
		parts := min(k, m)
		sizes = sizes[:0]
		for i := range parts {
			sizes = append(sizes, (i+1)*m/parts-i*m/parts)
		}
	}
	budgets := apportion(nd.budget, sizes)
	var res nodeResult
	lo := nd.lo
	for i, sz := range sizes {
		if budgets[i] > 0 {
			res.children = append(res.children, node{lo, lo + sz, budgets[i]})
		}
		lo += sz
	}
	return res
}

// apportion divides budget among clusters of the given sizes in proportion to
// size by the largest-remainder (Hamilton) method: every cluster gets the
// floor or the ceiling of its quota budget·size/total, and the shares add up
// to budget exactly. A share never exceeds its cluster's size when budget ≤
// total. A cluster whose quota is below 1 may get 0 and then yields no head:
// its rows (outliers, typically) will be served by a neighbouring head, and
// the budget goes where the rows are. Ties go to the lower index.
func apportion(budget int, sizes []int) []int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	out := make([]int, len(sizes))
	rem := make([]int, len(sizes)) // remainder numerators: quota = out + rem/total
	sum := 0
	for i, s := range sizes {
		q := budget * s
		out[i], rem[i] = q/total, q%total
		sum += out[i]
	}
	for ; sum < budget; sum++ {
		best := 0
		for i := range rem {
			if rem[i] > rem[best] {
				best = i
			}
		}
		out[best]++
		rem[best] = -1 // at most one extra unit each
	}
	return out
}

// medoid returns the row of ids nearest (by the metric, in float32) to the
// mean of those rows: the real vector that best stands for the cluster.
func (b *builder[T]) medoid(ids []int32, s *scratch) int32 {
	dim := b.dim
	sums := s.sums[:dim]
	clear(sums)
	for _, id := range ids {
		r := int(id) * dim
		for d, v := range b.data[r : r+dim] {
			sums[d] += float64(v)
		}
	}
	c := s.cent[:dim]
	inv := 1 / float64(len(ids))
	for d, v := range sums {
		c[d] = float32(v * inv)
	}
	if b.metric == vec.Cosine {
		vec.Normalize(c)
	}
	bestID, bestD := ids[0], float32(math.Inf(1))
	var one [1]float32
	for _, id := range ids {
		r := int(id) * dim
		b.conv(s.row, b.data[r:r+dim])
		b.centroidDists(s.row, c, 1, one[:])
		if one[0] < bestD {
			bestID, bestD = id, one[0]
		}
	}
	return bestID
}
