package vec

// kernelSet is one complete implementation of the twelve kernels. The
// package-level *Impl variables in vec.go are filled from one set at init and
// never change afterwards (tests may swap them, but only from a single
// goroutine before any concurrent use).
type kernelSet struct {
	name string

	l2F32  func(a, b []float32) float32
	dotF32 func(a, b []float32) float32
	l2U8   func(a, b []uint8) uint32
	dotU8  func(a, b []uint8) uint32
	l2I8   func(a, b []int8) uint32
	dotI8  func(a, b []int8) int32

	l2F32Batch  func(q, data, out []float32)
	dotF32Batch func(q, data, out []float32)
	l2U8Batch   func(q, data []uint8, out []float32)
	dotU8Batch  func(q, data []uint8, out []float32)
	l2I8Batch   func(q, data []int8, out []float32)
	dotI8Batch  func(q, data []int8, out []float32)
}

// goKernels is the pure-Go reference set, available on every platform.
var goKernels = kernelSet{
	name:        "go",
	l2F32:       L2F32Go,
	dotF32:      DotF32Go,
	l2U8:        L2U8Go,
	dotU8:       DotU8Go,
	l2I8:        L2I8Go,
	dotI8:       DotI8Go,
	l2F32Batch:  L2F32BatchGo,
	dotF32Batch: DotF32BatchGo,
	l2U8Batch:   L2U8BatchGo,
	dotU8Batch:  DotU8BatchGo,
	l2I8Batch:   L2I8BatchGo,
	dotI8Batch:  DotI8BatchGo,
}

// implName is the name of the installed kernel set.
var implName = goKernels.name

// Implementation names the kernel set chosen at start-up: "avx2" for the
// AVX2+FMA assembly on amd64, "go" for the pure-Go reference (other
// platforms, CPUs without AVX2/FMA, or the noasm build tag).
func Implementation() string { return implName }

func init() { useBestKernels() }

// useBestKernels installs the assembly kernels if this build and CPU have
// them, otherwise the pure-Go ones. It is what init does; tests call it to
// undo useGoKernels.
func useBestKernels() {
	if k, ok := asmKernels(); ok {
		install(k)
		return
	}
	install(goKernels)
}

// useGoKernels forces the pure-Go reference kernels (for tests and
// benchmarks). Not safe to call while other goroutines use the package.
func useGoKernels() { install(goKernels) }

func install(k kernelSet) {
	implName = k.name
	l2F32Impl, dotF32Impl = k.l2F32, k.dotF32
	l2U8Impl, dotU8Impl = k.l2U8, k.dotU8
	l2I8Impl, dotI8Impl = k.l2I8, k.dotI8
	l2F32BatchImpl, dotF32BatchImpl = k.l2F32Batch, k.dotF32Batch
	l2U8BatchImpl, dotU8BatchImpl = k.l2U8Batch, k.dotU8Batch
	l2I8BatchImpl, dotI8BatchImpl = k.l2I8Batch, k.dotI8Batch
}
