package vec

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Paired benchmarks: every kernel under impl=go (the reference) and
// impl=asm (the assembly, skipped where unavailable), so that
//
//	go test -run XXX -bench . -count 5 ./internal/vec | benchstat -col /impl -
//
// shows the speed-up. SetBytes counts the vector bytes read per operation.

// benchImpls returns the kernel sets to compare.
func benchImpls() []struct {
	name string
	k    kernelSet
	ok   bool
} {
	asm, ok := asmKernels()
	return []struct {
		name string
		k    kernelSet
		ok   bool
	}{{"go", goKernels, true}, {"asm", asm, ok}}
}

var benchDims = []int{128, 960}

// sink keeps results alive so the calls are not optimised away.
var sink float32

func BenchmarkKernels(b *testing.B) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, kernel := range []string{"l2f32", "dotf32", "l2u8", "dotu8", "l2i8", "doti8"} {
		b.Run(kernel, func(b *testing.B) {
			for _, impl := range benchImpls() {
				b.Run("impl="+impl.name, func(b *testing.B) {
					for _, d := range benchDims {
						b.Run(fmt.Sprintf("dim=%d", d), func(b *testing.B) {
							if !impl.ok {
								b.Skip("no assembly kernels in this build or on this CPU")
							}
							benchSingle(b, rng, kernel, impl.k, d)
						})
					}
				})
			}
		})
	}
}

func benchSingle(b *testing.B, rng *rand.Rand, kernel string, k kernelSet, d int) {
	fa, fb := make([]float32, d), make([]float32, d)
	randF32(rng, fa)
	randF32(rng, fb)
	ua, ub := make([]uint8, d), make([]uint8, d)
	randU8(rng, ua, false)
	randU8(rng, ub, false)
	ia, ib := make([]int8, d), make([]int8, d)
	randI8(rng, ia, false)
	randI8(rng, ib, false)
	var run func()
	var elemSize int64 = 1
	switch kernel {
	case "l2f32":
		run, elemSize = func() { sink += k.l2F32(fa, fb) }, 4
	case "dotf32":
		run, elemSize = func() { sink += k.dotF32(fa, fb) }, 4
	case "l2u8":
		run = func() { sink += float32(k.l2U8(ua, ub)) }
	case "dotu8":
		run = func() { sink += float32(k.dotU8(ua, ub)) }
	case "l2i8":
		run = func() { sink += float32(k.l2I8(ia, ib)) }
	case "doti8":
		run = func() { sink += float32(k.dotI8(ia, ib)) }
	}
	b.SetBytes(2 * int64(d) * elemSize)
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
}

// BenchmarkBatch scans n rows of dimension dim with one query, as brute
// force and posting-list scans do. The data (n·dim elements, 128 KiB for
// n=1024, dim=128 uint8) stays in cache.
func BenchmarkBatch(b *testing.B) {
	const n = 1024
	rng := rand.New(rand.NewPCG(13, 14))
	for _, kernel := range []string{"l2f32", "dotf32", "l2u8", "dotu8", "l2i8", "doti8"} {
		b.Run(kernel, func(b *testing.B) {
			for _, impl := range benchImpls() {
				b.Run("impl="+impl.name, func(b *testing.B) {
					for _, d := range benchDims {
						b.Run(fmt.Sprintf("dim=%d/n=%d", d, n), func(b *testing.B) {
							if !impl.ok {
								b.Skip("no assembly kernels in this build or on this CPU")
							}
							benchBatch(b, rng, kernel, impl.k, d, n)
						})
					}
				})
			}
		})
	}
}

func benchBatch(b *testing.B, rng *rand.Rand, kernel string, k kernelSet, d, n int) {
	out := make([]float32, n)
	var run func()
	var elemSize int64 = 1
	switch kernel {
	case "l2f32", "dotf32":
		q, data := make([]float32, d), make([]float32, n*d)
		randF32(rng, q)
		randF32(rng, data)
		f := k.l2F32Batch
		if kernel == "dotf32" {
			f = k.dotF32Batch
		}
		run, elemSize = func() { f(q, data, out) }, 4
	case "l2u8", "dotu8":
		q, data := make([]uint8, d), make([]uint8, n*d)
		randU8(rng, q, false)
		randU8(rng, data, false)
		f := k.l2U8Batch
		if kernel == "dotu8" {
			f = k.dotU8Batch
		}
		run = func() { f(q, data, out) }
	case "l2i8", "doti8":
		q, data := make([]int8, d), make([]int8, n*d)
		randI8(rng, q, false)
		randI8(rng, data, false)
		f := k.l2I8Batch
		if kernel == "doti8" {
			f = k.dotI8Batch
		}
		run = func() { f(q, data, out) }
	}
	b.SetBytes(int64(n*d) * elemSize)
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	sink += out[0]
}
