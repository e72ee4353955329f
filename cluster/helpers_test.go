package cluster

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gospann/spann/internal/vec"
)

// gaussianMixture returns n rows of dim float32 values drawn from c isotropic
// Gaussian clusters (standard deviation sigma) whose centres are uniform in
// [0, 200)^dim. Cluster sizes are skewed: cluster i gets weight 1/(i+1), so
// the largest is about c times the smallest. Rows are shuffled.
func gaussianMixture(n, dim, c int, sigma float64, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	centres := make([]float64, c*dim)
	for i := range centres {
		centres[i] = rng.Float64() * 200
	}
	var wsum float64
	for i := range c {
		wsum += 1 / float64(i+1)
	}
	out := make([]float32, 0, n*dim)
	for i := range c {
		cnt := int(float64(n) / float64(i+1) / wsum)
		if i == c-1 {
			cnt = n - len(out)/dim
		}
		for range cnt {
			for d := range dim {
				out = append(out, float32(centres[i*dim+d]+rng.NormFloat64()*sigma))
			}
		}
	}
	// Shuffle rows so that clusters are interleaved.
	for i := n - 1; i > 0; i-- {
		j := rng.IntN(i + 1)
		for d := range dim {
			out[i*dim+d], out[j*dim+d] = out[j*dim+d], out[i*dim+d]
		}
	}
	return out
}

// toU8 clamps and rounds float rows to uint8.
func toU8(x []float32) []uint8 {
	out := make([]uint8, len(x))
	for i, v := range x {
		out[i] = uint8(math.Round(math.Min(255, math.Max(0, float64(v)))))
	}
	return out
}

func mustSpace[T vec.Elem](t testing.TB, m vec.Metric) vec.Space[T] {
	t.Helper()
	sp, err := vec.NewSpace[T](m)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// nearestHeadSizes assigns every row to its nearest head (brute force, exact
// metric of sp) and returns the number of rows per head, in heads order.
func nearestHeadSizes[T vec.Elem](sp vec.Space[T], data []T, dim int, heads []int, threads int) []int {
	sizes, _ := nearestHeads(sp, data, dim, heads, threads)
	return sizes
}

// nearestHeads is nearestHeadSizes that also returns the mean distance from a
// row to its nearest head (the quantisation error of the heads).
func nearestHeads[T vec.Elem](sp vec.Space[T], data []T, dim int, heads []int, threads int) ([]int, float64) {
	n := len(data) / dim
	hdata := make([]T, 0, len(heads)*dim)
	for _, h := range heads {
		hdata = append(hdata, data[h*dim:(h+1)*dim]...)
	}
	owner := make([]int32, n)
	dist := make([]float32, n)
	var wg sync.WaitGroup
	for t := range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dists := make([]float32, len(heads))
			for i := t; i < n; i += threads {
				sp.Batch(data[i*dim:(i+1)*dim], hdata, dists)
				best := 0
				for j, d := range dists {
					if d < dists[best] {
						best = j
					}
				}
				owner[i] = int32(best)
				dist[i] = dists[best]
			}
		}()
	}
	wg.Wait()
	sizes := make([]int, len(heads))
	var sum float64
	for i, o := range owner {
		sizes[o]++
		sum += float64(dist[i])
	}
	return sizes, sum / float64(n)
}

// sizeStats summarises a size distribution.
type sizeStats struct {
	min, p50, p99, max int
	mean               float64
}

func statsOf(sizes []int) sizeStats {
	s := slices.Clone(sizes)
	slices.Sort(s)
	var sum int
	for _, v := range s {
		sum += v
	}
	return sizeStats{
		min: s[0], p50: s[len(s)/2], p99: s[min(len(s)-1, len(s)*99/100)], max: s[len(s)-1],
		mean: float64(sum) / float64(len(s)),
	}
}
