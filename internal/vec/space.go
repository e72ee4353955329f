package vec

import (
	"fmt"
	"math"
)

// Space bundles the distance functions of one metric for one element type,
// so that generic engine code (clustering, graphs, scans) is written once.
// Distances are "smaller is closer": squared L2, or the negated dot product
// for IP and Cosine.
type Space[T Elem] struct {
	Metric Metric
	// Dist returns the distance between a and b.
	Dist func(a, b []T) float32
	// Batch sets out[i] to Dist(q, row i of data) for i < len(out).
	Batch func(q, data []T, out []float32)
}

// NewSpace returns the Space for metric m and element type T. Cosine is only
// defined for float32 (callers normalise vectors at ingest).
func NewSpace[T Elem](m Metric) (Space[T], error) {
	var zero T
	s := Space[T]{Metric: m}
	var d any
	var b any
	switch any(zero).(type) {
	case float32:
		switch m {
		case L2:
			d, b = L2F32, L2F32Batch
		case IP, Cosine:
			d = func(x, y []float32) float32 { return -DotF32(x, y) }
			b = func(q, data, out []float32) {
				DotF32Batch(q, data, out)
				negate(out)
			}
		}
	case uint8:
		switch m {
		case L2:
			d = func(x, y []uint8) float32 { return float32(L2U8(x, y)) }
			b = L2U8Batch
		case IP:
			d = func(x, y []uint8) float32 { return -float32(DotU8(x, y)) }
			b = func(q, data []uint8, out []float32) {
				DotU8Batch(q, data, out)
				negate(out)
			}
		}
	case int8:
		switch m {
		case L2:
			d = func(x, y []int8) float32 { return float32(L2I8(x, y)) }
			b = L2I8Batch
		case IP:
			d = func(x, y []int8) float32 { return -float32(DotI8(x, y)) }
			b = func(q, data []int8, out []float32) {
				DotI8Batch(q, data, out)
				negate(out)
			}
		}
	}
	if d == nil {
		return s, fmt.Errorf("metric %s is not supported for %T vectors (cosine needs float32)", m, zero)
	}
	s.Dist = d.(func(a, b []T) float32)
	s.Batch = b.(func(q, data []T, out []float32))
	return s, nil
}

func negate(v []float32) {
	for i := range v {
		v[i] = -v[i]
	}
}

// CheckRadius validates a range search's radius under metric m: a finite
// number, and for L2 (squared distances, never negative) at least 0.
// Inner-product and cosine distances are negated similarities, so their
// radii may well be negative.
func CheckRadius(m Metric, r float64) error {
	switch {
	case math.IsNaN(r) || math.IsInf(r, 0):
		return fmt.Errorf("radius %v: must be a finite distance", r)
	case m == L2 && r < 0:
		return fmt.Errorf("radius %v: must be ≥ 0 (l2 distances are squared, never negative)", r)
	}
	return nil
}

// ArgMin returns the index of the smallest of d (the first, if tied): the
// nearest row after a Batch call. d must not be empty.
func ArgMin(d []float32) int {
	best := 0
	for i, x := range d {
		if x < d[best] {
			best = i
		}
	}
	return best
}
