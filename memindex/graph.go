package memindex

import (
	"fmt"
	"runtime"

	"github.com/gospann/spann/internal/vec"
)

// Neighbor is one search result: the index of a vector in the slice the
// graph was built over, and its distance to the query (smaller is closer).
type Neighbor struct {
	ID   int32
	Dist float32
}

// Params controls Build. Zero fields take the defaults documented on each
// field (see doc.go for the measurements behind them).
type Params struct {
	// Degree is the maximum number of out-neighbours per node (R). Default 48.
	Degree int
	// BuildList is the search list size (L) of the greedy search run for
	// every node while building; larger gives a better graph, slower.
	// Default 64; values below Degree are raised to Degree.
	BuildList int
	// Alpha is the robust-prune slack (≥ 1) of the last pass, applied to
	// squared L2 distances: a candidate c is dropped when an already kept
	// neighbour r has Alpha·d(r,c) ≤ d(p,c). Larger keeps more long edges.
	// Default 1.2. Ignored (treated as 1) for the IP metric, whose
	// distances are not a scaled metric.
	Alpha float32
	// Passes is the number of insertion passes over all nodes. The first
	// pass uses alpha 1, the later ones Alpha (as in DiskANN). Default 2.
	Passes int
	// Threads is the number of goroutines. Default runtime.GOMAXPROCS(0).
	// The graph does not depend on it (see Build).
	Threads int
	// Seed drives the insertion order. The same seed and parameters give
	// the same graph.
	Seed int64
	// Progress, if non-nil, is called from the goroutine running Build
	// after each insertion batch with the number of insertions done and
	// the total (n·Passes).
	Progress func(done, total int)
}

const (
	defaultDegree    = 48
	defaultBuildList = 64
	defaultAlpha     = 1.2
	defaultPasses    = 2
	// maxDegree bounds Degree so that a corrupt file cannot ask for huge
	// adjacency allocations and so that builds stay sensible.
	maxDegree = 1 << 12
)

func (p Params) withDefaults() (Params, error) {
	if p.Degree == 0 {
		p.Degree = defaultDegree
	}
	if p.BuildList == 0 {
		p.BuildList = defaultBuildList
	}
	if p.Alpha == 0 {
		p.Alpha = defaultAlpha
	}
	if p.Passes == 0 {
		p.Passes = defaultPasses
	}
	if p.Threads == 0 {
		p.Threads = runtime.GOMAXPROCS(0)
	}
	switch {
	case p.Degree < 1 || p.Degree > maxDegree:
		return p, fmt.Errorf("degree %d out of range [1, %d]", p.Degree, maxDegree)
	case p.BuildList < 1:
		return p, fmt.Errorf("build list %d must be positive", p.BuildList)
	case !(p.Alpha >= 1) || p.Alpha > 10:
		return p, fmt.Errorf("alpha %v out of range [1, 10]", p.Alpha)
	case p.Passes < 1 || p.Passes > 16:
		return p, fmt.Errorf("passes %d out of range [1, 16]", p.Passes)
	case p.Threads < 1:
		return p, fmt.Errorf("threads %d must be positive", p.Threads)
	}
	if p.BuildList < p.Degree {
		p.BuildList = p.Degree
	}
	return p, nil
}

// Graph is a single-layer proximity graph over a set of vectors, searched
// greedily from a fixed entry point (the medoid).
//
// Concurrency: a built or loaded Graph is read-only and safe for concurrent
// use by any number of Searchers, each owned by one goroutine. The vectors
// slice is referenced, not copied; the caller must not modify it while the
// Graph is in use.
type Graph[T vec.Elem] struct {
	// Tag is opaque data stored in the file's header by WriteTo and set by
	// Load (zero for version 1 files): the index stores its build id here,
	// so that a graph file from another build is recognised.
	Tag [16]byte

	sp      vec.Space[T]
	vectors []T
	dim     int
	n       int
	degree  int
	entry   int32
	// While building, node i's out-neighbours are stored in
	// adj[i*degree : i*degree+counts[i]] (fixed-size slots, so that the
	// build can rewrite one node's list without moving the others). A
	// finished or loaded graph is packed instead: adj and counts are nil
	// and the lists are in lists (see adjacency).
	counts []int32
	adj    []int32
	lists  *adjacency
}

// nbrs returns node i's out-neighbours in the building layout.
func (g *Graph[T]) nbrs(i int32) []int32 {
	base := int(i) * g.degree
	return g.adj[base : base+int(g.counts[i])]
}

// appendNbrs appends node i's out-neighbours to dst, in either layout
// (ascending by id once packed).
func (g *Graph[T]) appendNbrs(dst []int32, i int32) []int32 {
	if g.lists == nil {
		return append(dst, g.nbrs(i)...)
	}
	return g.lists.appendList(dst, i)
}

// count returns node i's out-degree, in either layout.
func (g *Graph[T]) count(i int32) int {
	if g.lists == nil {
		return int(g.counts[i])
	}
	return g.lists.count(i)
}

// pack switches a finished graph from fixed slots to packed lists.
func (g *Graph[T]) pack() {
	if g.lists != nil {
		return
	}
	edges := 0
	for _, c := range g.counts {
		edges += int(c)
	}
	b, err := newAdjacencyBuilder(g.n, edges, nil)
	if err != nil {
		panic(err) // the heap does not fail
	}
	for i := 0; i < g.n; i++ {
		b.add(g.nbrs(int32(i)))
	}
	lists, err := b.finish()
	if err != nil {
		panic(err) // every node was added above
	}
	g.adj, g.counts, g.lists = nil, nil, &lists
}

// Len returns the number of nodes (vectors).
func (g *Graph[T]) Len() int { return g.n }

// Dim returns the vector dimension.
func (g *Graph[T]) Dim() int { return g.dim }

// Degree returns the maximum out-degree.
func (g *Graph[T]) Degree() int { return g.degree }

// Entry returns the node every search starts from.
func (g *Graph[T]) Entry() int32 { return g.entry }

// Neighbors returns the out-neighbours of node i. While the graph is being
// built the slice aliases it and must not be modified; once it is packed
// (built or loaded) the slice is a new copy.
func (g *Graph[T]) Neighbors(i int32) []int32 {
	if g.lists == nil {
		return g.nbrs(i)
	}
	return g.appendNbrs(nil, i)
}

// row returns vector i.
func (g *Graph[T]) row(i int32) []T {
	base := int(i) * g.dim
	return g.vectors[base : base+g.dim]
}

// Reachable returns how many nodes can be reached from the entry point by
// following edges. Every node should be reachable; nodes that are not can
// never be returned by Search. It allocates and is meant for tests and
// diagnostics.
func (g *Graph[T]) Reachable() int {
	seen := make([]bool, g.n)
	stack := []int32{g.entry}
	seen[g.entry] = true
	count := 1
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var nbs []int32
		for _, nb := range g.appendNbrs(nbs, cur) {
			if !seen[nb] {
				seen[nb] = true
				count++
				stack = append(stack, nb)
			}
		}
	}
	return count
}

// checkVectors validates the shape of a vector set.
func checkVectors[T vec.Elem](vectors []T, dim int) (int, error) {
	if dim <= 0 {
		return 0, fmt.Errorf("dimension %d must be positive", dim)
	}
	if len(vectors) == 0 {
		return 0, fmt.Errorf("no vectors")
	}
	if len(vectors)%dim != 0 {
		return 0, fmt.Errorf("%d elements is not a multiple of dimension %d", len(vectors), dim)
	}
	n := len(vectors) / dim
	if n > 1<<31-1 {
		return 0, fmt.Errorf("%d vectors exceed the int32 id range", n)
	}
	return n, nil
}

// medoid returns the vector closest (under sp) to the element-wise mean,
// which makes a central entry point for greedy search.
func medoid[T vec.Elem](sp vec.Space[T], vectors []T, dim, n int) int32 {
	sum := make([]float64, dim)
	for i := 0; i < n; i++ {
		for j, x := range vectors[i*dim : (i+1)*dim] {
			sum[j] += float64(x)
		}
	}
	center := make([]T, dim)
	for j := range sum {
		center[j] = roundTo[T](sum[j] / float64(n))
	}
	best, bestDist := int32(0), float32(0)
	dists := make([]float32, 1024)
	for start := 0; start < n; start += len(dists) {
		cnt := min(len(dists), n-start)
		sp.Batch(center, vectors[start*dim:(start+cnt)*dim], dists[:cnt])
		for k, d := range dists[:cnt] {
			if (start == 0 && k == 0) || d < bestDist {
				best, bestDist = int32(start+k), d
			}
		}
	}
	return best
}

// roundTo converts a mean back to the element type, rounding for integers.
func roundTo[T vec.Elem](x float64) T {
	var zero T
	switch any(zero).(type) {
	case float32:
		return T(x)
	}
	if x < 0 {
		return T(x - 0.5)
	}
	return T(x + 0.5)
}
