//go:build !noasm && gc

package vec

import (
	"fmt"

	"golang.org/x/sys/cpu"
)

// AVX2+FMA kernels, implemented in kernels_amd64.s.
//
// Exactness of the integer kernels. Bytes are widened to 16-bit words and
// VPMADDWD multiplies adjacent word pairs and adds each pair into a 32-bit
// lane, so one step adds at most 2·255² = 130050 (uint8 and int8 squared
// differences, uint8 products) or a value in [-32512, 32768] (int8 products)
// to a lane; the pair sums themselves never overflow. The lanes are then
// added with wrapping 32-bit adds. Wrapping addition is exact modulo 2^32, so
// the final sum is right whenever the true total fits the result type:
// squared L2 and uint8 dot totals are at most 255²·n ≤ 65025·65536 < 2^32
// for n ≤ MaxIntDim, and int8 dot totals lie in [-2^30, 2^30] for
// n ≤ MaxIntDim, inside int32. Individual lanes may pass 2^31 on the way;
// that is harmless because only the modular total is used.
//
// The assembly reads exactly len(a) elements of a and b (masked loads and a
// scalar tail, never past the end), and no alignment is required. A b
// shorter than a is handed to the reference kernel (a tail jump in the
// assembly), which reslices b like the API promises: it panics unless b's
// capacity covers len(a). The batch wrappers below check that data holds
// len(out) rows before the assembly runs, so a short data slice panics
// instead of being read out of bounds.

//go:noescape
func l2F32AVX2(a, b []float32) float32

//go:noescape
func dotF32AVX2(a, b []float32) float32

//go:noescape
func l2U8AVX2(a, b []uint8) uint32

//go:noescape
func dotU8AVX2(a, b []uint8) uint32

//go:noescape
func l2I8AVX2(a, b []int8) uint32

//go:noescape
func dotI8AVX2(a, b []int8) int32

//go:noescape
func l2F32BatchAVX2(q, data, out []float32)

//go:noescape
func dotF32BatchAVX2(q, data, out []float32)

//go:noescape
func l2U8BatchAVX2(q, data []uint8, out []float32)

//go:noescape
func dotU8BatchAVX2(q, data []uint8, out []float32)

//go:noescape
func l2I8BatchAVX2(q, data []int8, out []float32)

//go:noescape
func dotI8BatchAVX2(q, data []int8, out []float32)

// asmKernels returns the AVX2 set if the CPU (and OS) support AVX2 and FMA.
func asmKernels() (kernelSet, bool) {
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return kernelSet{}, false
	}
	return avx2Kernels, true
}

var avx2Kernels = kernelSet{
	name: "avx2",
	// The single-pair kernels are installed directly, without a Go
	// wrapper: at dimension 128 the extra call would cost about a quarter
	// of the kernel's time.
	l2F32:  l2F32AVX2,
	dotF32: dotF32AVX2,
	l2U8:   l2U8AVX2,
	dotU8:  dotU8AVX2,
	l2I8:   l2I8AVX2,
	dotI8:  dotI8AVX2,

	l2F32Batch: func(q, data, out []float32) {
		checkBatch(len(q), len(data), len(out))
		l2F32BatchAVX2(q, data, out)
	},
	dotF32Batch: func(q, data, out []float32) {
		checkBatch(len(q), len(data), len(out))
		dotF32BatchAVX2(q, data, out)
	},
	l2U8Batch: func(q, data []uint8, out []float32) {
		checkBatch(len(q), len(data), len(out))
		l2U8BatchAVX2(q, data, out)
	},
	dotU8Batch: func(q, data []uint8, out []float32) {
		checkBatch(len(q), len(data), len(out))
		dotU8BatchAVX2(q, data, out)
	},
	l2I8Batch: func(q, data []int8, out []float32) {
		checkBatch(len(q), len(data), len(out))
		l2I8BatchAVX2(q, data, out)
	},
	dotI8Batch: func(q, data []int8, out []float32) {
		checkBatch(len(q), len(data), len(out))
		dotI8BatchAVX2(q, data, out)
	},
}

// checkBatch panics, as the reference kernels' slice expressions do, when
// data holds fewer than rows·dim elements. The division avoids overflow in
// rows·dim.
func checkBatch(dim, dataLen, rows int) {
	if dim > 0 && rows > 0 && dataLen/dim < rows {
		panic(fmt.Sprintf("vec: batch of %d rows of dim %d needs %d elements, data has %d", rows, dim, rows*dim, dataLen))
	}
}
