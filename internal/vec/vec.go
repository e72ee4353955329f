// Package vec holds the distance kernels of the engine: squared L2 and inner
// product for float32, uint8 and int8 vectors, one pair at a time and batched
// (one query against many vectors stored contiguously, which is what posting
// scans and brute force do).
//
// Conventions, shared by every caller:
//   - L2 means squared Euclidean distance; no square root is ever taken.
//   - Inner-product "distance" is the negated dot product, so that smaller is
//     always closer for every metric.
//   - Cosine is inner product on vectors normalised to unit length at ingest
//     (Normalize); it is defined for float32 only, since integer vectors cannot
//     be normalised without changing their type.
//   - Integer kernels are exact: uint8/int8 squared L2 and uint8 dot products
//     accumulate in uint32, int8 dot products in int32; neither overflows for
//     vectors of up to MaxIntDim elements. Batched kernels return float32
//     distances, which are exact integers below 2^24 (SIFT's maximum is
//     128·255² ≈ 8.3e6).
//
// On amd64 the kernels use AVX2+FMA assembly, chosen once at start-up from the
// CPU's features (Implementation reports the choice); a pure-Go reference (the
// *Go functions) is always compiled, and the build tag noasm forces it. All
// functions are safe for concurrent use.
package vec

import (
	"fmt"
	"math"
	"strings"
)

// MaxIntDim is the largest vector length for which the integer kernels are
// guaranteed not to overflow their 32-bit accumulators (255² · 66051 < 2^32).
const MaxIntDim = 65536

// Elem is the set of vector element types the engine stores.
type Elem interface{ float32 | uint8 | int8 }

// Metric is a distance function over vectors.
type Metric uint8

const (
	// L2 is squared Euclidean distance.
	L2 Metric = iota + 1
	// IP is inner product; the distance is its negation.
	IP
	// Cosine is inner product on unit-normalised float32 vectors.
	Cosine
)

// String returns the metric's name as used on command lines and in manifests.
func (m Metric) String() string {
	switch m {
	case L2:
		return "l2"
	case IP:
		return "ip"
	case Cosine:
		return "cosine"
	}
	return fmt.Sprintf("metric(%d)", uint8(m))
}

// ParseMetric parses "l2", "ip" or "cosine" (case-insensitive).
func ParseMetric(s string) (Metric, error) {
	switch strings.ToLower(s) {
	case "l2":
		return L2, nil
	case "ip", "dot", "mips":
		return IP, nil
	case "cosine", "cos", "angular":
		return Cosine, nil
	}
	return 0, fmt.Errorf("unknown metric %q (want l2, ip or cosine)", s)
}

// Implementation variables: the pure-Go reference by default, replaced at
// init by assembly where the CPU supports it (see impl.go and
// kernels_amd64.go).
var (
	l2F32Impl  = L2F32Go
	dotF32Impl = DotF32Go
	l2U8Impl   = L2U8Go
	dotU8Impl  = DotU8Go
	l2I8Impl   = L2I8Go
	dotI8Impl  = DotI8Go

	l2F32BatchImpl  = L2F32BatchGo
	dotF32BatchImpl = DotF32BatchGo
	l2U8BatchImpl   = L2U8BatchGo
	dotU8BatchImpl  = DotU8BatchGo
	l2I8BatchImpl   = L2I8BatchGo
	dotI8BatchImpl  = DotI8BatchGo
)

// L2F32 returns the squared Euclidean distance between a and b (len(a) == len(b)).
func L2F32(a, b []float32) float32 { return l2F32Impl(a, b) }

// DotF32 returns the dot product of a and b.
func DotF32(a, b []float32) float32 { return dotF32Impl(a, b) }

// L2U8 returns the exact squared Euclidean distance between a and b.
func L2U8(a, b []uint8) uint32 { return l2U8Impl(a, b) }

// DotU8 returns the exact dot product of a and b.
func DotU8(a, b []uint8) uint32 { return dotU8Impl(a, b) }

// L2I8 returns the exact squared Euclidean distance between a and b.
func L2I8(a, b []int8) uint32 { return l2I8Impl(a, b) }

// DotI8 returns the exact dot product of a and b.
func DotI8(a, b []int8) int32 { return dotI8Impl(a, b) }

// L2F32Batch sets out[i] to L2F32(q, data[i*d:(i+1)*d]) with d = len(q), for
// every i < len(out). data must hold at least len(out)*len(q) elements.
func L2F32Batch(q, data, out []float32) { l2F32BatchImpl(q, data, out) }

// DotF32Batch sets out[i] to DotF32(q, row i of data).
func DotF32Batch(q, data, out []float32) { dotF32BatchImpl(q, data, out) }

// L2U8Batch sets out[i] to L2U8(q, row i of data), as float32.
func L2U8Batch(q, data []uint8, out []float32) { l2U8BatchImpl(q, data, out) }

// DotU8Batch sets out[i] to DotU8(q, row i of data), as float32.
func DotU8Batch(q, data []uint8, out []float32) { dotU8BatchImpl(q, data, out) }

// L2I8Batch sets out[i] to L2I8(q, row i of data), as float32.
func L2I8Batch(q, data []int8, out []float32) { l2I8BatchImpl(q, data, out) }

// DotI8Batch sets out[i] to DotI8(q, row i of data), as float32.
func DotI8Batch(q, data []int8, out []float32) { dotI8BatchImpl(q, data, out) }

// Normalize scales v in place to unit L2 norm; a zero vector is left as is.
// It reports whether v was non-zero.
func Normalize(v []float32) bool {
	n := DotF32(v, v)
	if n == 0 {
		return false
	}
	inv := float32(1 / math.Sqrt(float64(n)))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// NormalizeRows normalises every dim-element row of rows in place when T is
// float32 (cosine ingest); integer rows are left alone, since cosine is only
// defined for float32.
func NormalizeRows[T Elem](rows []T, dim int) {
	if f, ok := any(rows).([]float32); ok {
		for i := 0; i+dim <= len(f); i += dim {
			Normalize(f[i : i+dim])
		}
	}
}
