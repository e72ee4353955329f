//go:build !noasm && gc

package vec

import (
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestAVX2Selected makes sure the differential tests really exercise the
// assembly on machines that have it, instead of comparing Go with Go.
func TestAVX2Selected(t *testing.T) {
	want := "go"
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		want = "avx2"
	}
	if got := Implementation(); got != want {
		t.Fatalf("Implementation() = %q, want %q (AVX2=%v FMA=%v)", got, want, cpu.X86.HasAVX2, cpu.X86.HasFMA)
	}
}

// BenchmarkBatchLoop compares the batched assembly loop with a Go loop that
// calls the single-pair assembly kernel once per row, which is what the
// batch kernels would be without their own row loop.
func BenchmarkBatchLoop(b *testing.B) {
	if _, ok := asmKernels(); !ok {
		b.Skip("no AVX2/FMA")
	}
	const n, d = 1024, 128
	rng := rand.New(rand.NewPCG(15, 16))
	fq, fdata := make([]float32, d), make([]float32, n*d)
	randF32(rng, fq)
	randF32(rng, fdata)
	uq, udata := make([]uint8, d), make([]uint8, n*d)
	randU8(rng, uq, false)
	randU8(rng, udata, false)
	out := make([]float32, n)
	b.Run("l2f32/how=asmbatch", func(b *testing.B) {
		for b.Loop() {
			l2F32BatchAVX2(fq, fdata, out)
		}
	})
	b.Run("l2f32/how=goloop", func(b *testing.B) {
		for b.Loop() {
			for i := range out {
				out[i] = l2F32AVX2(fq, fdata[i*d:(i+1)*d])
			}
		}
	})
	b.Run("l2u8/how=asmbatch", func(b *testing.B) {
		for b.Loop() {
			l2U8BatchAVX2(uq, udata, out)
		}
	})
	b.Run("l2u8/how=goloop", func(b *testing.B) {
		for b.Loop() {
			for i := range out {
				out[i] = float32(l2U8AVX2(uq, udata[i*d:(i+1)*d]))
			}
		}
	})
}
