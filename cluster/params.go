package cluster

import (
	"errors"
	"fmt"
	"math"
)

// Defaults applied by SelectHeads to zero-valued Params fields.
const (
	DefaultBranch     = 32
	DefaultLeafSize   = 8
	DefaultIterations = 8
	DefaultSampleSize = 16384
)

// Params configures SelectHeads. The zero value of every field except Heads
// (and LeafSize, see below) means "use the default". A Params value is plain
// data and may be shared between goroutines as long as nobody mutates it.
type Params struct {
	// Heads is the number of heads to select. It is met exactly whenever the
	// data set has more rows than Heads; otherwise every row is a head.
	// Zero means "derive from LeafSize": Heads = ceil(n / LeafSize).
	Heads int
	// Branch is the number of clusters each k-means split produces (SPTAG's
	// BKTKmeansK). Default 32; at least 2.
	Branch int
	// LeafSize is the expected number of rows per head. The recursion is
	// driven by the head budget, so LeafSize only matters when Heads is zero,
	// where it sets Heads = ceil(n / LeafSize). Default 8.
	LeafSize int
	// Iterations caps the Lloyd iterations of each k-means split. Default 8.
	Iterations int
	// Lambda is the balance penalty: during k-means a row is assigned to the
	// cluster k minimising dist(x, c_k) + Lambda·|C_k|, |C_k| being the
	// cluster's size smoothed over the previous iterations. Zero derives it
	// per split from the data (see doc.go). Must be finite and not negative.
	Lambda float64
	// SampleSize caps the rows a split fits its centroids on; a larger node
	// is fitted on a seeded random sample and then all its rows are assigned
	// to the fitted centroids in one pass. Default 16384; at least Branch.
	SampleSize int
	// Seed makes the selection reproducible: equal seeds give equal heads,
	// whatever Threads is.
	Seed int64
	// Threads is the number of goroutines doing distance work. Default 1.
	Threads int
	// Progress, if not nil, is called with the number of heads selected so
	// far and the total to select. It is called from the goroutine that
	// called SelectHeads, never concurrently.
	Progress func(done, total int)
}

// Validate reports the first invalid field, if any. Zero fields are valid
// (they mean "default").
func (p Params) Validate() error {
	switch {
	case p.Heads < 0:
		return fmt.Errorf("cluster: Heads %d is negative", p.Heads)
	case p.Branch < 0 || p.Branch == 1:
		return fmt.Errorf("cluster: Branch %d must be at least 2 (or 0 for the default %d)", p.Branch, DefaultBranch)
	case p.LeafSize < 0:
		return fmt.Errorf("cluster: LeafSize %d is negative", p.LeafSize)
	case p.Iterations < 0:
		return fmt.Errorf("cluster: Iterations %d is negative", p.Iterations)
	case math.IsNaN(p.Lambda) || math.IsInf(p.Lambda, 0):
		return errors.New("cluster: Lambda must be finite")
	case p.Lambda < 0:
		return fmt.Errorf("cluster: Lambda %g is negative", p.Lambda)
	case p.SampleSize < 0:
		return fmt.Errorf("cluster: SampleSize %d is negative", p.SampleSize)
	case p.Threads < 0:
		return fmt.Errorf("cluster: Threads %d is negative", p.Threads)
	}
	q := p.withDefaults()
	if q.SampleSize < q.Branch {
		return fmt.Errorf("cluster: SampleSize %d is smaller than Branch %d", q.SampleSize, q.Branch)
	}
	return nil
}

// withDefaults returns p with every zero field (but Heads) replaced by its default.
func (p Params) withDefaults() Params {
	if p.Branch == 0 {
		p.Branch = DefaultBranch
	}
	if p.LeafSize == 0 {
		p.LeafSize = DefaultLeafSize
	}
	if p.Iterations == 0 {
		p.Iterations = DefaultIterations
	}
	if p.SampleSize == 0 {
		p.SampleSize = DefaultSampleSize
	}
	if p.Threads == 0 {
		p.Threads = 1
	}
	return p
}
