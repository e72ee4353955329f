package cluster

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/internal/vec"
)

func TestValidate(t *testing.T) {
	bad := []struct {
		p    Params
		want string
	}{
		{Params{Heads: -1}, "Heads"},
		{Params{Heads: 10, Branch: 1}, "Branch"},
		{Params{Heads: 10, Branch: -3}, "Branch"},
		{Params{Heads: 10, LeafSize: -1}, "LeafSize"},
		{Params{Heads: 10, Iterations: -1}, "Iterations"},
		{Params{Heads: 10, Lambda: -0.5}, "Lambda"},
		{Params{Heads: 10, Lambda: math.NaN()}, "Lambda"},
		{Params{Heads: 10, Lambda: math.Inf(1)}, "Lambda"},
		{Params{Heads: 10, SampleSize: -1}, "SampleSize"},
		{Params{Heads: 10, SampleSize: 16}, "SampleSize"}, // below the default Branch 32
		{Params{Heads: 10, Threads: -2}, "Threads"},
	}
	for _, c := range bad {
		err := c.p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", c.p, err, c.want)
		}
	}
	good := []Params{
		{Heads: 10},
		{}, // Heads derived from LeafSize
		{Heads: 5, Branch: 2, LeafSize: 1, Iterations: 1, Lambda: 3, SampleSize: 2, Seed: -7, Threads: 8},
	}
	for _, p := range good {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
}

func TestSelectHeadsInputErrors(t *testing.T) {
	sp := mustSpace[float32](t, vec.L2)
	data := make([]float32, 40)
	p := Params{Heads: 3}
	if _, err := SelectHeads(sp, data, 0, p); err == nil {
		t.Error("dim 0 accepted")
	}
	if _, err := SelectHeads(sp, data, 3, p); err == nil {
		t.Error("len(data) not a multiple of dim accepted")
	}
	if _, err := SelectHeads(sp, nil, 4, p); err == nil {
		t.Error("empty data accepted")
	}
	if _, err := SelectHeads(vec.Space[float32]{}, data, 4, p); err == nil {
		t.Error("zero Space accepted")
	}
	if _, err := SelectHeads(sp, data, 4, Params{Heads: 3, Branch: 1}); err == nil {
		t.Error("invalid params accepted")
	}
}

func TestSmallInputReturnsAllRows(t *testing.T) {
	sp := mustSpace[uint8](t, vec.L2)
	data := toU8(gaussianMixture(50, 8, 3, 5, 1))
	for _, h := range []int{50, 51, 1000} {
		got, err := SelectHeads(sp, data, 8, Params{Heads: h})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 50 {
			t.Fatalf("Heads=%d: got %d heads, want all 50", h, len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("Heads=%d: heads[%d]=%d, want %d", h, i, v, i)
			}
		}
	}
}

// checkHeads asserts that heads are exactly want strictly increasing valid rows.
func checkHeads(t *testing.T, heads []int, n, want int) {
	t.Helper()
	if len(heads) != want {
		t.Fatalf("got %d heads, want exactly %d", len(heads), want)
	}
	for i, h := range heads {
		if h < 0 || h >= n {
			t.Fatalf("head %d = %d out of range [0,%d)", i, h, n)
		}
		if i > 0 && h <= heads[i-1] {
			t.Fatalf("heads not strictly increasing at %d: %d after %d", i, h, heads[i-1])
		}
	}
}

// The number of heads is exact (not approximate) whenever n > Heads.
func TestExactCountFloat32AndUint8(t *testing.T) {
	const dim = 12
	f := gaussianMixture(3000, dim, 7, 6, 2)
	u := toU8(f)
	spF := mustSpace[float32](t, vec.L2)
	spU := mustSpace[uint8](t, vec.L2)
	cases := []Params{
		{Heads: 1},
		{Heads: 2, Branch: 2},
		{Heads: 31},
		{Heads: 33},
		{Heads: 360, Threads: 2},
		{Heads: 1111, Branch: 5, SampleSize: 100},
		{Heads: 2999},
		{Heads: 0, LeafSize: 8}, // ceil(3000/8) = 375
	}
	for _, p := range cases {
		want := p.Heads
		if want == 0 {
			want = 375
		}
		hf, err := SelectHeads(spF, f, dim, p)
		if err != nil {
			t.Fatalf("float32 %+v: %v", p, err)
		}
		checkHeads(t, hf, 3000, want)
		hu, err := SelectHeads(spU, u, dim, p)
		if err != nil {
			t.Fatalf("uint8 %+v: %v", p, err)
		}
		checkHeads(t, hu, 3000, want)
	}
}

func TestOtherMetricsAndInt8(t *testing.T) {
	const dim = 16
	f := gaussianMixture(2000, dim, 5, 8, 3)
	for _, m := range []vec.Metric{vec.IP, vec.Cosine} {
		g := slices.Clone(f)
		if m == vec.Cosine {
			for i := 0; i < len(g); i += dim {
				vec.Normalize(g[i : i+dim])
			}
		}
		h, err := SelectHeads(mustSpace[float32](t, m), g, dim, Params{Heads: 150, Threads: 2})
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		checkHeads(t, h, 2000, 150)
	}
	i8 := make([]int8, len(f))
	for i, v := range f {
		i8[i] = int8(math.Max(-128, math.Min(127, float64(v)-100)))
	}
	h, err := SelectHeads(mustSpace[int8](t, vec.L2), i8, dim, Params{Heads: 150})
	if err != nil {
		t.Fatal(err)
	}
	checkHeads(t, h, 2000, 150)
	if _, err := SelectHeads(mustSpace[uint8](t, vec.IP), toU8(f), dim, Params{Heads: 150}); err != nil {
		t.Fatalf("uint8 IP: %v", err)
	}
}

func TestDeterministicAcrossThreads(t *testing.T) {
	const dim = 16
	// Large enough that the top split samples (SampleSize) and that nodes
	// above bigNode are split by several goroutines at once.
	u := toU8(gaussianMixture(20000, dim, 10, 10, 4))
	sp := mustSpace[uint8](t, vec.L2)
	p := Params{Heads: 2000, SampleSize: 4000, Seed: 42}
	var ref []int
	for _, threads := range []int{1, 2, 3, 4} {
		p.Threads = threads
		h, err := SelectHeads(sp, u, dim, p)
		if err != nil {
			t.Fatal(err)
		}
		checkHeads(t, h, 20000, 2000)
		if ref == nil {
			ref = h
		} else if !slices.Equal(ref, h) {
			t.Fatalf("Threads=%d gives different heads than Threads=1", threads)
		}
	}
	again, err := SelectHeads(sp, u, dim, p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ref, again) {
		t.Fatal("same seed, different heads")
	}
	p.Seed = 43
	other, err := SelectHeads(sp, u, dim, p)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(ref, other) {
		t.Fatal("different seeds gave identical heads")
	}
}

// With well separated, equally sized, tight clusters and one head per
// cluster, every cluster must get exactly one head.
func TestOneHeadPerSeparatedCluster(t *testing.T) {
	const dim, c, per = 8, 40, 50
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]float32, 0, c*per*dim)
	label := make([]int, 0, c*per)
	for i := range c {
		for range per {
			for d := range dim {
				// Cluster i sits at 1000·i on axis i%dim (and i/dim on axis 0).
				base := 0.0
				if d == i%dim {
					base = 1000 * float64(i/dim+1)
				}
				data = append(data, float32(base+rng.NormFloat64()))
			}
			label = append(label, i)
		}
	}
	heads, err := SelectHeads(mustSpace[float32](t, vec.L2), data, dim, Params{Heads: c, Branch: 4})
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, c)
	for _, h := range heads {
		if seen[label[h]] {
			t.Fatalf("cluster %d got two heads", label[h])
		}
		seen[label[h]] = true
	}
}

// All rows identical: k-means cannot split, the fallback must still deliver
// exactly Heads distinct rows.
func TestDegenerateIdenticalRows(t *testing.T) {
	data := make([]uint8, 500*4)
	for i := range data {
		data[i] = 7
	}
	h, err := SelectHeads(mustSpace[uint8](t, vec.L2), data, 4, Params{Heads: 60, Branch: 8})
	if err != nil {
		t.Fatal(err)
	}
	checkHeads(t, h, 500, 60)
}

func TestProgress(t *testing.T) {
	u := toU8(gaussianMixture(4000, 8, 4, 6, 7))
	var calls, last, total int
	p := Params{Heads: 400, Progress: func(done, tot int) {
		if done < last {
			t.Errorf("progress went backwards: %d after %d", done, last)
		}
		calls, last, total = calls+1, done, tot
	}}
	if _, err := SelectHeads(mustSpace[uint8](t, vec.L2), u, 8, p); err != nil {
		t.Fatal(err)
	}
	if calls < 2 || last != 400 || total != 400 {
		t.Fatalf("progress: %d calls, last %d/%d, want ≥2 calls ending at 400/400", calls, last, total)
	}
}

func TestApportion(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for range 2000 {
		parts := 1 + rng.IntN(40)
		sizes := make([]int, parts)
		total := 0
		for i := range sizes {
			sizes[i] = 1 + rng.IntN(1+rng.IntN(300))
			total += sizes[i]
		}
		budget := 1 + rng.IntN(total)
		got := apportion(budget, sizes)
		sum := 0
		for i, g := range got {
			q := float64(budget) * float64(sizes[i]) / float64(total)
			if float64(g) < math.Floor(q) || float64(g) > math.Ceil(q) || g > sizes[i] {
				t.Fatalf("apportion(%d, %v)[%d] = %d, quota %.3f, size %d", budget, sizes, i, g, q, sizes[i])
			}
			sum += g
		}
		if sum != budget {
			t.Fatalf("apportion(%d, %v) sums to %d", budget, sizes, sum)
		}
	}
	if got := apportion(10, []int{50, 30, 20}); !slices.Equal(got, []int{5, 3, 2}) {
		t.Fatalf("apportion(10, 50/30/20) = %v, want [5 3 2]", got)
	}
	// Largest remainders win; an outlier cluster can get nothing.
	if got := apportion(3, []int{40, 40, 19, 1}); !slices.Equal(got, []int{1, 1, 1, 0}) {
		t.Fatalf("apportion(3, 40/40/19/1) = %v, want [1 1 1 0]", got)
	}
}
