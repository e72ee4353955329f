package datasets

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/vec"
)

// LabelParams describes generated labels in the manner of YFCC-10M's tags:
// a vocabulary whose label frequencies follow Zipf's law, a few to a few
// tens of labels per vector, and labels that may correlate with where a
// vector lies. The same parameters and base always give the same labels,
// whatever the thread count.
type LabelParams struct {
	Vocab     int     // labels 0..Vocab-1; 0 = 50,000
	Zipf      float64 // exponent s: the label of rank r is drawn ∝ 1/r^s; 0 = 1
	MinPerRow int     // fewest labels drawn per vector; 0 = 2
	MaxPerRow int     // most labels drawn per vector; 0 = max(20, MinPerRow) (repeats merge, so some rows get fewer)
	// Corr is the fraction of a vector's labels drawn from its group's own
	// ranking of the vocabulary rather than the global one: 0 makes labels
	// independent of the vectors, 1 makes every label's carriers cluster
	// in space (but for the GlobalLabels commonest). Groups are the vectors
	// nearest each of Groups centres sampled from the base.
	Corr   float64
	Groups int // 0 = 64
	Seed   uint64
}

func (p *LabelParams) fill() error {
	if p.Vocab == 0 {
		p.Vocab = 50_000
	}
	if p.Zipf == 0 {
		p.Zipf = 1
	}
	if p.MinPerRow == 0 {
		p.MinPerRow = 2
	}
	if p.MaxPerRow == 0 {
		p.MaxPerRow = max(20, p.MinPerRow)
	}
	if p.Groups == 0 {
		p.Groups = 64
	}
	switch {
	case p.Vocab < 1 || p.Vocab > MaxLabels:
		return fmt.Errorf("labels: vocabulary of %d labels, want 1..%d", p.Vocab, MaxLabels)
	case p.Zipf < 0 || math.IsNaN(p.Zipf):
		return fmt.Errorf("labels: Zipf exponent %g, want ≥ 0", p.Zipf)
	case p.MinPerRow < 0 || p.MaxPerRow < p.MinPerRow:
		return fmt.Errorf("labels: %d to %d labels per vector", p.MinPerRow, p.MaxPerRow)
	case !(p.Corr >= 0 && p.Corr <= 1):
		return fmt.Errorf("labels: correlation %g, want 0..1", p.Corr)
	case p.Groups < 1 || p.Groups > 1<<16:
		return fmt.Errorf("labels: %d groups, want 1..65536", p.Groups)
	}
	return nil
}

// GenerateLabels draws labels for every row of base (see LabelParams).
func GenerateLabels(base *VectorFile, p LabelParams, threads int) (*Labels, error) {
	if err := p.fill(); err != nil {
		return nil, err
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	groups, err := nearestGroups(base, min(p.Groups, base.N), threads)
	if err != nil {
		return nil, err
	}
	cum := make([]float64, p.Vocab) // Zipf's cumulative weights by rank
	total := 0.0
	for r := range cum {
		total += math.Pow(float64(r+1), -p.Zipf)
		cum[r] = total
	}
	// Group g ranks the vocabulary by its own permutation of it, except
	// for the GlobalLabels commonest, which every group shares (as photo
	// tags such as a year are common everywhere and place names only
	// somewhere): so the commonest labels stay as common as Zipf makes
	// them, whatever Corr.
	rng := rand.New(rand.NewPCG(p.Seed, 0x1abe1))
	top := min(GlobalLabels, p.Vocab)
	perms := make([][]int32, p.Groups)
	for g := range perms {
		perms[g] = make([]int32, p.Vocab)
		for i := 0; i < top; i++ {
			perms[g][i] = int32(i)
		}
		for i, j := range rng.Perm(p.Vocab - top) {
			perms[g][top+i] = int32(top + j)
		}
	}
	rows := make([][]int32, base.N)
	var wg sync.WaitGroup
	chunk := (base.N + threads - 1) / threads
	for t := 0; t < threads; t++ {
		lo, hi := t*chunk, min(base.N, (t+1)*chunk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				r := rand.New(rand.NewPCG(p.Seed^0x6c616265, uint64(i)))
				n := p.MinPerRow + r.IntN(p.MaxPerRow-p.MinPerRow+1)
				row := make([]int32, n)
				for j := range row {
					rank, _ := slices.BinarySearch(cum, r.Float64()*total)
					rank = min(rank, p.Vocab-1)
					if r.Float64() < p.Corr {
						row[j] = perms[groups[i]][rank]
					} else {
						row[j] = int32(rank)
					}
				}
				rows[i] = row
			}
		}()
	}
	wg.Wait()
	return NewLabels(rows, p.Vocab)
}

// nearestGroups assigns every row of base to the nearest (L2) of g centres,
// rows sampled evenly across the file.
func nearestGroups(base *VectorFile, g, threads int) ([]uint16, error) {
	switch base.Type {
	case Float32:
		return nearestGroupsOf[float32](base, g, threads)
	case Uint8:
		return nearestGroupsOf[uint8](base, g, threads)
	case Int8:
		return nearestGroupsOf[int8](base, g, threads)
	}
	return nil, fmt.Errorf("%s: unsupported element type %v", base.Path, base.Type)
}

func nearestGroupsOf[T vec.Elem](base *VectorFile, g, threads int) ([]uint16, error) {
	sp, err := vec.NewSpace[T](vec.L2)
	if err != nil {
		return nil, err
	}
	rb := base.RowBytes()
	centres := make([]byte, 0, g*rb)
	for c := 0; c < g; c++ {
		row, err := base.ReadRows(int(int64(c)*int64(base.N)/int64(g)), 1, nil)
		if err != nil {
			return nil, err
		}
		centres = append(centres, row...)
	}
	cs := Rows[T](centres)
	groups := make([]uint16, base.N)
	err = base.Stream(max(1024, (16<<20)/rb), func(start int, raw []byte) error {
		rows := Rows[T](raw)
		n := len(raw) / rb
		var wg sync.WaitGroup
		chunk := (n + threads - 1) / threads
		for t := 0; t < threads; t++ {
			lo, hi := t*chunk, min(n, (t+1)*chunk)
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := make([]float32, g)
				for i := lo; i < hi; i++ {
					sp.Batch(rows[i*base.Dim:(i+1)*base.Dim], cs, d)
					groups[start+i] = uint16(vec.ArgMin(d))
				}
			}()
		}
		wg.Wait()
		return nil
	})
	return groups, err
}

// GlobalLabels is how many of the commonest labels Corr leaves global.
const GlobalLabels = 32

// FilterSelectivities are the fractions of the base that generated query
// filters aim at: big-ann-benchmarks' filtered track spans about this range.
var FilterSelectivities = []float64{0.5, 0.1, 0.01, 1e-3, 1e-4, 1e-5}

// GenerateFilters draws nq query filters over base labels whose per-label
// bitmaps are given: query i aims at selectivity
// FilterSelectivities[(i/2) % 6] with one label if i is even and two if it
// is odd. A one-label filter is a random label whose share of the base is
// within a factor 1.5 of the aim (the nearest if there is none); a
// two-label filter is the best of the pairs made of a label 1 to 20 times
// as common as the aim and another label of one of its carriers (up to 32
// such carriers, at random),
// judged by how near (in ratio) the pair's intersection comes to the aim.
// Every filter matches at least one base vector. bitmaps are base's
// (Labels.Bitmaps). It returns the filters and each one's matching count.
func GenerateFilters(base *Labels, bitmaps []*roaring.Bitmap, nq int, seed uint64) (*Labels, []int, error) {
	n := base.Rows()
	byCount := make([]int32, 0, len(bitmaps)) // labels carried by anyone, by ascending count
	counts := make([]int, len(bitmaps))
	for x, bm := range bitmaps {
		counts[x] = int(bm.GetCardinality())
		if counts[x] > 0 {
			byCount = append(byCount, int32(x))
		}
	}
	if len(byCount) == 0 {
		return nil, nil, fmt.Errorf("filters: no base vector carries a label")
	}
	slices.SortStableFunc(byCount, func(a, b int32) int { return counts[a] - counts[b] })
	rng := rand.New(rand.NewPCG(seed, 0xf11e7))
	rows := make([][]int32, nq)
	matches := make([]int, nq)
	for i := range rows {
		aim := max(1, FilterSelectivities[(i/2)%len(FilterSelectivities)]*float64(n))
		if i%2 == 0 {
			x := oneLabelFilter(byCount, counts, aim, rng)
			rows[i], matches[i] = []int32{x}, counts[x]
		} else {
			rows[i], matches[i] = twoLabelFilter(base, bitmaps, byCount, counts, aim, rng)
		}
	}
	l, err := NewLabels(rows, len(bitmaps))
	return l, matches, err
}

// labelsWithin returns the labels of byCount (ascending count) whose count
// lies in [lo, hi].
func labelsWithin(byCount []int32, counts []int, lo, hi float64) []int32 {
	from, _ := slices.BinarySearchFunc(byCount, lo, func(x int32, v float64) int {
		return cmpFloat(float64(counts[x]), v)
	})
	to, _ := slices.BinarySearchFunc(byCount, math.Nextafter(hi, math.Inf(1)), func(x int32, v float64) int {
		return cmpFloat(float64(counts[x]), v)
	})
	return byCount[from:to]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func oneLabelFilter(byCount []int32, counts []int, aim float64, rng *rand.Rand) int32 {
	if near := labelsWithin(byCount, counts, aim/1.5, aim*1.5); len(near) > 0 {
		return near[rng.IntN(len(near))]
	}
	best := byCount[0]
	for _, x := range byCount {
		if ratioOff(float64(counts[x]), aim) < ratioOff(float64(counts[best]), aim) {
			best = x
		}
	}
	return best
}

func twoLabelFilter(base *Labels, bitmaps []*roaring.Bitmap, byCount []int32, counts []int, aim float64, rng *rand.Rand) ([]int32, int) {
	pool := labelsWithin(byCount, counts, aim, 20*aim)
	if len(pool) == 0 {
		pool = labelsWithin(byCount, counts, aim, math.Inf(1))
	}
	if len(pool) == 0 {
		pool = byCount[len(byCount)-1:] // the commonest
	}
	// The second label is one of a random carrier's, so that the pair
	// always matches something.
	var best []int32
	bestCount := 0
	for try := 0; try < 32; try++ {
		a := pool[rng.IntN(len(pool))]
		carrier, err := bitmaps[a].Select(uint32(rng.IntN(counts[a])))
		if err != nil {
			continue
		}
		row := base.Row(int(carrier))
		if len(row) < 2 {
			continue
		}
		for _, b := range row {
			if b == a {
				continue
			}
			c := int(bitmaps[a].AndCardinality(bitmaps[b]))
			if best == nil || ratioOff(float64(c), aim) < ratioOff(float64(bestCount), aim) {
				best, bestCount = []int32{a, b}, c
			}
		}
		if best != nil && ratioOff(float64(bestCount), aim) < math.Log(1.25) {
			break
		}
	}
	if best == nil { // no carrier tried had a second label: one label
		x := oneLabelFilter(byCount, counts, aim, rng)
		return []int32{x}, counts[x]
	}
	return best, bestCount
}

// ratioOff is |log(a/b)|: how far a is from b as a ratio.
func ratioOff(a, b float64) float64 { return math.Abs(math.Log(a / b)) }
