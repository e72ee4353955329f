package cluster

import (
	"testing"

	"github.com/gospann/spann/internal/vec"
)

// TestBalance checks that heads cover skewed data evenly. The data are 20,000
// uint8 rows from 12 Gaussian clusters whose sizes differ 12-fold; 1,000 heads
// means 20 rows per head on average. Bounds (measured values for seeds 11-14
// in brackets; uniformly random heads, for contrast, give nearest-head p99
// 88-89 and max 120-198):
//   - leaf clusters (the node each head was picked from): largest ≤ 2×20
//     [29-35], largest/smallest ≤ 10 [3.6-8.3], and the leaves hold ≥ 95% of
//     the rows [99.9%] (the rest sit in clusters too small to earn a head);
//   - every row assigned to its nearest head: p99 ≤ 3×20 [44-46] and
//     largest ≤ 5×20 [50-62].
func TestBalance(t *testing.T) {
	const dim, n, heads = 16, 20000, 1000
	const mean = n / heads
	u := toU8(gaussianMixture(n, dim, 12, 12, 11))
	sp := mustSpace[uint8](t, vec.L2)
	h, leaves, err := selectHeads(sp, u, dim, Params{Heads: heads, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkHeads(t, h, n, heads)
	ls := statsOf(leaves)
	ns := statsOf(nearestHeadSizes(sp, u, dim, h, 2))
	t.Logf("leaf sizes %+v; nearest-head sizes %+v", ls, ns)
	if ls.max > 2*mean || ls.max > 10*ls.min {
		t.Errorf("leaf sizes unbalanced: min %d max %d (want max ≤ %d and ≤ 10×min)", ls.min, ls.max, 2*mean)
	}
	if covered := ls.mean * heads; covered < 0.95*n {
		t.Errorf("leaves hold %.0f rows, want ≥ 95%% of %d", covered, n)
	}
	if ns.p99 > 3*mean || ns.max > 5*mean {
		t.Errorf("nearest-head sizes unbalanced: p99 %d max %d (want ≤ %d and ≤ %d)", ns.p99, ns.max, 3*mean, 5*mean)
	}
}

func TestConvU8MatchesGeneric(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 128, 131} {
		src := make([]uint8, n)
		for i := range src {
			src[i] = uint8(i * 37)
		}
		a, b := make([]float32, n), make([]float32, n)
		convU8(a, src)
		toF32(b, src)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("n=%d: convU8[%d]=%v, want %v", n, i, a[i], b[i])
			}
		}
	}
	all := make([]uint8, 256)
	for i := range all {
		all[i] = uint8(i)
	}
	out := make([]float32, 256)
	convU8(out, all)
	for i, v := range out {
		if v != float32(i) {
			t.Fatalf("convU8(%d) = %v", i, v)
		}
	}
}

// BenchmarkSelectHeads times 5,000 heads over 50,000 generated uint8 rows of
// dimension 128 (the realsift shape at 1/20 scale), with 2 threads.
func BenchmarkSelectHeads(b *testing.B) {
	const dim, n = 128, 50000
	u := toU8(gaussianMixture(n, dim, 50, 20, 21))
	sp := mustSpace[uint8](b, vec.L2)
	p := Params{Heads: n / 10, Threads: 2}
	b.SetBytes(int64(len(u)))
	for b.Loop() {
		if _, err := SelectHeads(sp, u, dim, p); err != nil {
			b.Fatal(err)
		}
	}
}
