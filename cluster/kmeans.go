package cluster

import (
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/gospann/spann/internal/vec"
)

// lambdaScale multiplies the data-derived balance penalty (see deriveLambda).
// It was chosen on realsift-100k (docs/bench-cluster.md): 0.1 leaves more
// rows in clusters too small to earn a head, 0.5 and above makes k-means
// converge slowly, with no gain in the nearest-head size distribution.
const lambdaScale = 0.3

// scratch holds one goroutine's reusable buffers, so that splitting a node
// allocates nothing once the buffers have grown to their working size.
// A scratch is owned by one goroutine at a time.
type scratch struct {
	row   []float32 // one row converted to float32 (dim)
	dists []float32 // distances from row to every centroid (Branch)

	// Buffers of the goroutine that owns a split (not used by helpers
	// assisting with a parallel assignment).
	sample  []float32 // fitting sample rows as float32 (s·dim)
	best    []float32 // distance of each sample row to its assigned centroid (s)
	cent    []float32 // centroids (k·dim)
	sums    []float64 // per-centroid coordinate sums (k·dim)
	counts  []int     // rows per cluster (k)
	offsets []float32 // balance penalty per cluster, λ·|C_k| (k)
	starts  []int     // counting-sort cursors (k)
	prev    []int32   // sample labels of the previous iteration (s)
}

func newScratch(dim, branch int) *scratch {
	return &scratch{
		row:     make([]float32, dim),
		dists:   make([]float32, branch),
		cent:    make([]float32, branch*dim),
		sums:    make([]float64, branch*dim),
		counts:  make([]int, branch),
		offsets: make([]float32, branch),
		starts:  make([]int, branch),
	}
}

// grow returns buf resized to n, reallocating only when its capacity is short.
func grow[E any](buf []E, n int) []E {
	if cap(buf) < n {
		return make([]E, n)
	}
	return buf[:n]
}

// toF32 converts a row of any element type to float32.
func toF32[T vec.Elem](dst []float32, src []T) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float32(v)
	}
}

// u8ToF32 maps every uint8 value to its float32; a table lookup is faster than
// Go's scalar integer-to-float conversion.
var u8ToF32 = func() (t [256]float32) {
	for i := range t {
		t[i] = float32(i)
	}
	return t
}()

// convU8 is toF32 for uint8 rows, by table lookup, eight at a time (the
// fixed-length sub-slices let the compiler drop the bounds checks).
func convU8(dst []float32, src []uint8) {
	dst = dst[:len(src)]
	i := 0
	for ; i+8 <= len(src); i += 8 {
		s := src[i : i+8 : i+8]
		d := dst[i : i+8 : i+8]
		d[0], d[1], d[2], d[3] = u8ToF32[s[0]], u8ToF32[s[1]], u8ToF32[s[2]], u8ToF32[s[3]]
		d[4], d[5], d[6], d[7] = u8ToF32[s[4]], u8ToF32[s[5]], u8ToF32[s[6]], u8ToF32[s[7]]
	}
	for ; i < len(src); i++ {
		dst[i] = u8ToF32[src[i]]
	}
}

// converter returns the fastest row-to-float32 conversion for T.
func converter[T vec.Elem]() func(dst []float32, src []T) {
	var zero T
	if _, ok := any(zero).(uint8); ok {
		return any(convU8).(func([]float32, []T))
	}
	return toF32[T]
}

// centroidDists sets out[j] to the metric's distance between x and centroid j
// (of k), in float32 arithmetic.
func (b *builder[T]) centroidDists(x, cent []float32, k int, out []float32) {
	if b.ip {
		vec.DotF32Batch(x, cent[:k*b.dim], out[:k])
		for j := range out[:k] {
			out[j] = -out[j]
		}
		return
	}
	vec.L2F32Batch(x, cent[:k*b.dim], out[:k])
}

// nearest returns the cluster minimising dist + offset (lowest index on ties)
// and the raw distance to it.
func nearest(dists, offsets []float32) (int32, float32) {
	bj, bv := 0, float32(math.Inf(1))
	for j, d := range dists {
		if v := d + offsets[j]; v < bv {
			bj, bv = j, v
		}
	}
	return int32(bj), dists[bj]
}

// assign labels n rows with their penalised-nearest of k centroids, using one
// goroutine per scratch in scr. row(i, buf) returns row i as float32 (it may fill and
// return buf). It stores each row's raw distance in best (if not nil) and
// returns how many labels changed.
func (b *builder[T]) assign(scr []*scratch, n, k int, cent, offsets []float32, labels []int32, best []float32,
	row func(i int, buf []float32) []float32) int {
	var changed atomic.Int64
	parallelFor(len(scr), n, func(t, lo, hi int) {
		s := scr[t]
		dists := s.dists[:k]
		c := 0
		for i := lo; i < hi; i++ {
			b.centroidDists(row(i, s.row), cent, k, dists)
			j, d := nearest(dists, offsets[:k])
			if labels[i] != j {
				labels[i] = j
				c++
			}
			if best != nil {
				best[i] = d
			}
		}
		changed.Add(int64(c))
	})
	return int(changed.Load())
}

// split partitions the node rows ids into at most k clusters by balanced
// k-means and reorders ids so each cluster is contiguous, in cluster order.
// It returns the sizes of the non-empty clusters in that order. labels and
// tmp are len(ids) buffers owned by this node. The distance work is shared
// by one goroutine per scratch in scr; scr[0] also holds the split's own
// buffers. The result depends only on the rows, k, the params and rng.
func (b *builder[T]) split(scr []*scratch, ids, labels, tmp []int32, k int, rng *rand.Rand) []int {
	s := scr[0]
	dim := b.dim
	m := len(ids)

	// Fitting sample: the first ns ids after a partial Fisher-Yates shuffle.
	ns := min(m, b.p.SampleSize)
	if ns < m {
		for i := range ns {
			j := i + rng.IntN(m-i)
			ids[i], ids[j] = ids[j], ids[i]
		}
	}
	s.sample = grow(s.sample, ns*dim)
	s.best = grow(s.best, ns)
	sample, best := s.sample, s.best
	for i := range ns {
		r := int(ids[i]) * dim
		b.conv(sample[i*dim:(i+1)*dim], b.data[r:r+dim])
	}
	sampleRow := func(i int, _ []float32) []float32 { return sample[i*dim : (i+1)*dim] }

	k = b.seedCentroids(scr, sample, ns, k, rng)
	cent, offsets, counts := s.cent[:k*dim], s.offsets[:k], s.counts[:k]
	clear(offsets)
	lab := labels[:ns]
	for i := range lab {
		lab[i] = -1
	}
	lambda := float32(b.p.Lambda)
	s.prev = grow(s.prev, ns)
	prev := s.prev
	clear(counts)
	clear(s.sums[:k*dim])
	for it := range b.p.Iterations {
		copy(prev, lab)
		changed := b.assign(scr, ns, k, cent, offsets, lab, best, sampleRow)
		if changed == 0 {
			break // converged: centroids are already the means of these clusters
		}
		b.moveRows(s, sample, prev, lab, k)
		if it == 0 && b.p.Lambda == 0 {
			lambda = deriveLambda(lab, best, counts)
		}
		b.updateCentroids(s, sample, lab, best, k)
		// Penalty λ·|C_k| with |C_k| smoothed over iterations (the mean of
		// the previous smoothed size and the new one). SPTAG uses the raw
		// size of the previous iteration; with a penalty strong enough to
		// balance, that oscillates (on SIFT 40-80% of rows changed cluster
		// every iteration and k-means never converged); the smoothing damps
		// it (3-7% after a few iterations).
		for j := range offsets {
			offsets[j] = 0.5*offsets[j] + 0.5*lambda*float32(counts[j])
		}
	}

	if ns < m {
		// One pass over the whole node with the fitted centroids and the
		// penalty of the last sample iteration.
		rowOf := func(i int, buf []float32) []float32 {
			r := int(ids[i]) * dim
			b.conv(buf, b.data[r:r+dim])
			return buf
		}
		b.assign(scr, m, k, cent, offsets, labels[:m], nil, rowOf)
	}

	// Counting sort of ids by label (stable, so deterministic).
	clear(counts)
	for _, l := range labels[:m] {
		counts[l]++
	}
	starts := s.starts[:k]
	pos := 0
	var sizes []int
	for j, c := range counts {
		starts[j] = pos
		pos += c
		if c > 0 {
			sizes = append(sizes, c)
		}
	}
	for i, l := range labels[:m] {
		tmp[starts[l]] = ids[i]
		starts[l]++
	}
	copy(ids, tmp[:m])
	return sizes
}

// seedCentroids picks k initial centroids among the ns sample rows by
// k-means++ (D² sampling, always under L2: it is only a way of spreading the
// seeds out) and returns how many it found; fewer than k only when the sample
// has fewer than k distinct rows.
func (b *builder[T]) seedCentroids(scr []*scratch, sample []float32, ns, k int, rng *rand.Rand) int {
	s := scr[0]
	dim := b.dim
	// best doubles as the D² weights: squared distance to the nearest seed.
	minD := s.best[:ns]
	first := rng.IntN(ns)
	copy(s.cent[:dim], sample[first*dim:(first+1)*dim])
	got := 1
	for {
		c := s.cent[(got-1)*dim : got*dim]
		parallelFor(len(scr), ns, func(_, lo, hi int) {
			for i := lo; i < hi; i++ {
				d := vec.L2F32(sample[i*dim:(i+1)*dim], c)
				if got == 1 || d < minD[i] {
					minD[i] = d
				}
			}
		})
		if got == k {
			return k
		}
		var total float64
		for _, d := range minD {
			total += float64(d)
		}
		if total == 0 {
			return got // every sample row coincides with a seed
		}
		r := rng.Float64() * total
		pick := -1
		for i, d := range minD {
			if d == 0 {
				continue
			}
			pick = i
			if r -= float64(d); r < 0 {
				break
			}
		}
		copy(s.cent[got*dim:(got+1)*dim], sample[pick*dim:(pick+1)*dim])
		got++
	}
}

// moveRows updates the per-cluster coordinate sums and counts for the sample
// rows whose label changed from prev (-1: none yet) to lab. Only moved rows
// cost anything, so late iterations, where few rows move, are cheap. Sums are
// float64: exact for integer data, and sequential so deterministic.
func (b *builder[T]) moveRows(s *scratch, sample []float32, prev, lab []int32, k int) {
	dim := b.dim
	counts, sums := s.counts[:k], s.sums[:k*dim]
	for i, l := range lab {
		p := prev[i]
		if p == l {
			continue
		}
		row := sample[i*dim : (i+1)*dim]
		if p >= 0 {
			counts[p]--
			acc := sums[int(p)*dim : (int(p)+1)*dim]
			for d, v := range row {
				acc[d] -= float64(v)
			}
		}
		counts[l]++
		acc := sums[int(l)*dim : (int(l)+1)*dim]
		for d, v := range row {
			acc[d] += float64(v)
		}
	}
}

// updateCentroids moves each centroid to the mean of its sample rows (from
// the sums and counts kept by moveRows). An empty cluster is re-seeded at the
// sample row farthest from its own centroid, taken from a cluster with more
// than one row; that row's best is then set to -Inf so it is not picked twice.
func (b *builder[T]) updateCentroids(s *scratch, sample []float32, lab []int32, best []float32, k int) {
	dim := b.dim
	counts, sums, cent := s.counts[:k], s.sums[:k*dim], s.cent[:k*dim]
	for j := range k {
		c := cent[j*dim : (j+1)*dim]
		if counts[j] == 0 {
			far, fd := -1, float32(math.Inf(-1))
			for i, l := range lab {
				if counts[l] > 1 && best[i] > fd {
					far, fd = i, best[i]
				}
			}
			if far >= 0 {
				copy(c, sample[far*dim:(far+1)*dim])
				best[far] = float32(math.Inf(-1))
			}
			continue
		}
		inv := 1 / float64(counts[j])
		for d, v := range sums[j*dim : (j+1)*dim] {
			c[d] = float32(v * inv)
		}
		if b.metric == vec.Cosine {
			vec.Normalize(c)
		}
	}
}

// deriveLambda computes the balance penalty from an unpenalised assignment of
// ns sample rows: take the largest cluster, the spread of its members'
// distances (farthest minus mean), and charge that spread, times lambdaScale,
// for every mean-cluster-size of extra members. SPTAG's adjusted lambda uses
// the same spread divided by the sample size (that is, k times weaker), and
// then caps it further; we charge more (see doc.go). The result is ≥ 0 for
// every metric, since it depends on distance differences only. counts holds
// the cluster sizes of lab.
func deriveLambda(lab []int32, best []float32, counts []int) float32 {
	big := 0
	for j, c := range counts {
		if c > counts[big] {
			big = j
		}
	}
	maxD, sum := float32(math.Inf(-1)), 0.0
	for i, l := range lab {
		if int(l) == big {
			sum += float64(best[i])
			maxD = max(maxD, best[i])
		}
	}
	spread := float64(maxD) - sum/float64(counts[big])
	if spread <= 0 || math.IsNaN(spread) || math.IsInf(spread, 0) {
		return 0
	}
	meanSize := float64(len(lab)) / float64(len(counts))
	return float32(lambdaScale * spread / meanSize)
}
