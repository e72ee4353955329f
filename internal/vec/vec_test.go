package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// The differential tests compare the dispatched kernels (L2F32, ...: the
// assembly when Implementation() is "avx2") against the pure-Go references
// (*Go). Integer results must match exactly; float results to within a
// tolerance scaled by the summed magnitude of the terms, since the
// summation order differs.

// testLengths covers every length up to 300 (all tail shapes of the 8-, 16-,
// 32- and 64-element steps) plus common embedding dimensions.
func testLengths() []int {
	var ns []int
	for n := 0; n <= 300; n++ {
		ns = append(ns, n)
	}
	return append(ns, 384, 512, 768, 960, 1000, 1024)
}

// withImpl runs f under the pure-Go kernels and, if different, under the
// kernels chosen at start-up, restoring the latter afterwards.
func withImpl(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer useBestKernels()
	useGoKernels()
	t.Run("impl=go", f)
	useBestKernels()
	if Implementation() != "go" {
		t.Run("impl="+Implementation(), f)
	}
}

// unaligned returns a slice of length n starting off elements into a larger
// backing array, so that kernels see every misalignment.
func unaligned[T Elem](n, off int) []T {
	return make([]T, n+off+8)[off : off+n : off+n]
}

func randF32(rng *rand.Rand, v []float32) {
	scale := []float64{1e-3, 1, 1e3}[rng.IntN(3)]
	for i := range v {
		switch rng.IntN(10) {
		case 0:
			v[i] = 0
		default:
			v[i] = float32(rng.NormFloat64() * scale)
		}
	}
}

// randU8 fills v with random bytes, or with only the extremes 0 and 255.
func randU8(rng *rand.Rand, v []uint8, extremes bool) {
	for i := range v {
		if extremes {
			v[i] = []uint8{0, 255}[rng.IntN(2)]
		} else {
			v[i] = uint8(rng.Uint32())
		}
	}
}

// randI8 fills v with random int8s, or with only the extremes -128 and 127.
func randI8(rng *rand.Rand, v []int8, extremes bool) {
	for i := range v {
		if extremes {
			v[i] = []int8{-128, 127}[rng.IntN(2)]
		} else {
			v[i] = int8(rng.Uint32())
		}
	}
}

// l2Magnitude and dotMagnitude are the summed magnitudes of the terms, the
// scale of the rounding error of any summation order.
func l2Magnitude(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return s
}

func dotMagnitude(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += math.Abs(float64(a[i]) * float64(b[i]))
	}
	return s
}

// closeF32 reports whether got and want agree to the float32 rounding error
// of summing n terms of total magnitude mag (relative 1e-5, more for very
// long vectors).
func closeF32(got, want float32, n int, mag float64) bool {
	rel := max(1e-5, float64(n+8)*1.2e-7)
	return math.Abs(float64(got)-float64(want)) <= rel*max(1, mag)
}

func TestKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range testLengths() {
		for off := 0; off < 8; off++ {
			offB := (off*3 + 1) % 8

			fa, fb := unaligned[float32](n, off), unaligned[float32](n, offB)
			randF32(rng, fa)
			randF32(rng, fb)
			if got, want := L2F32(fa, fb), L2F32Go(fa, fb); !closeF32(got, want, n, l2Magnitude(fa, fb)) {
				t.Fatalf("L2F32 n=%d off=%d: got %v, want %v", n, off, got, want)
			}
			if got, want := DotF32(fa, fb), DotF32Go(fa, fb); !closeF32(got, want, n, dotMagnitude(fa, fb)) {
				t.Fatalf("DotF32 n=%d off=%d: got %v, want %v", n, off, got, want)
			}

			extremes := off%2 == 1
			ua, ub := unaligned[uint8](n, off), unaligned[uint8](n, offB)
			randU8(rng, ua, extremes)
			randU8(rng, ub, extremes)
			if got, want := L2U8(ua, ub), L2U8Go(ua, ub); got != want {
				t.Fatalf("L2U8 n=%d off=%d: got %d, want %d", n, off, got, want)
			}
			if got, want := DotU8(ua, ub), DotU8Go(ua, ub); got != want {
				t.Fatalf("DotU8 n=%d off=%d: got %d, want %d", n, off, got, want)
			}

			ia, ib := unaligned[int8](n, off), unaligned[int8](n, offB)
			randI8(rng, ia, extremes)
			randI8(rng, ib, extremes)
			if got, want := L2I8(ia, ib), L2I8Go(ia, ib); got != want {
				t.Fatalf("L2I8 n=%d off=%d: got %d, want %d", n, off, got, want)
			}
			if got, want := DotI8(ia, ib), DotI8Go(ia, ib); got != want {
				t.Fatalf("DotI8 n=%d off=%d: got %d, want %d", n, off, got, want)
			}
		}
	}
}

// TestKernelsKnownValues pins a few results computed by hand, so that a
// bug shared by the reference and the assembly is caught too.
func TestKernelsKnownValues(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		fa := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
		fb := []float32{9, 8, 7, 6, 5, 4, 3, 2, 1}
		if got := L2F32(fa, fb); got != 240 {
			t.Errorf("L2F32 = %v, want 240", got)
		}
		if got := DotF32(fa, fb); got != 165 {
			t.Errorf("DotF32 = %v, want 165", got)
		}
		ua := []uint8{0, 255, 10, 200, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}
		ub := []uint8{255, 0, 20, 100, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
		var wantL2, wantDot uint32
		for i := range ua {
			d := int(ua[i]) - int(ub[i])
			wantL2 += uint32(d * d)
			wantDot += uint32(ua[i]) * uint32(ub[i])
		}
		if wantL2 != 2*65025+100+10000+1496 || wantDot != 200+20000+153 {
			t.Fatalf("test arithmetic is wrong: %d %d", wantL2, wantDot)
		}
		if got := L2U8(ua, ub); got != wantL2 {
			t.Errorf("L2U8 = %d, want %d", got, wantL2)
		}
		if got := DotU8(ua, ub); got != wantDot {
			t.Errorf("DotU8 = %d, want %d", got, wantDot)
		}
		ia := []int8{-128, 127, -1, 1, 0, 5, -5, 100, -100}
		ib := []int8{127, -128, 1, -1, 0, 5, 5, -100, -100}
		if got, want := L2I8(ia, ib), uint32(2*65025+4+4+0+0+100+40000+0); got != want {
			t.Errorf("L2I8 = %d, want %d", got, want)
		}
		if got, want := DotI8(ia, ib), int32(-16256-16256-1-1+0+25-25-10000+10000); got != want {
			t.Errorf("DotI8 = %d, want %d", got, want)
		}
	})
}

// TestIntegerKernelsNoOverflow drives every integer kernel to its largest
// possible total at MaxIntDim elements (and random extremes there), aligned
// and unaligned, single and batched.
func TestIntegerKernelsNoOverflow(t *testing.T) {
	const n = MaxIntDim
	const maxSq = 255 * 255 * n // 4261478400 < 2^32
	fill := func(v []uint8, x uint8) {
		for i := range v {
			v[i] = x
		}
	}
	fillI := func(v []int8, x int8) {
		for i := range v {
			v[i] = x
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, off := range []int{0, 3} {
		ua, ub := unaligned[uint8](n, off), unaligned[uint8](n, 5)
		fill(ua, 255)
		fill(ub, 0)
		if got := L2U8(ua, ub); got != maxSq {
			t.Errorf("L2U8(255s, 0s) = %d, want %d", got, uint32(maxSq))
		}
		fill(ub, 255)
		if got := DotU8(ua, ub); got != maxSq {
			t.Errorf("DotU8(255s, 255s) = %d, want %d", got, uint32(maxSq))
		}
		randU8(rng, ua, true)
		randU8(rng, ub, true)
		if got, want := L2U8(ua, ub), L2U8Go(ua, ub); got != want {
			t.Errorf("L2U8 extremes: got %d, want %d", got, want)
		}
		if got, want := DotU8(ua, ub), DotU8Go(ua, ub); got != want {
			t.Errorf("DotU8 extremes: got %d, want %d", got, want)
		}

		ia, ib := unaligned[int8](n, off), unaligned[int8](n, 6)
		fillI(ia, 127)
		fillI(ib, -128)
		if got := L2I8(ia, ib); got != maxSq {
			t.Errorf("L2I8(127s, -128s) = %d, want %d", got, uint32(maxSq))
		}
		if got, want := DotI8(ia, ib), int32(-127*128*n); got != want {
			t.Errorf("DotI8(127s, -128s) = %d, want %d", got, want)
		}
		fillI(ia, -128)
		if got, want := DotI8(ia, ib), int32(128*128*n); got != want {
			t.Errorf("DotI8(-128s, -128s) = %d, want %d", got, want)
		}
		randI8(rng, ia, true)
		randI8(rng, ib, true)
		if got, want := L2I8(ia, ib), L2I8Go(ia, ib); got != want {
			t.Errorf("L2I8 extremes: got %d, want %d", got, want)
		}
		if got, want := DotI8(ia, ib), DotI8Go(ia, ib); got != want {
			t.Errorf("DotI8 extremes: got %d, want %d", got, want)
		}
	}

	// Batched: two rows of MaxIntDim, converted to float32 like the reference.
	q := make([]uint8, n)
	data := make([]uint8, 2*n)
	fill(q, 255)
	fill(data[n:], 255)
	out := make([]float32, 2)
	L2U8Batch(q, data, out)
	if out[0] != float32(uint32(maxSq)) || out[1] != 0 {
		t.Errorf("L2U8Batch = %v, want [%v 0]", out, float32(uint32(maxSq)))
	}
	DotU8Batch(q, data, out)
	if out[0] != 0 || out[1] != float32(uint32(maxSq)) {
		t.Errorf("DotU8Batch = %v, want [0 %v]", out, float32(uint32(maxSq)))
	}
	qi := make([]int8, n)
	datai := make([]int8, 2*n)
	fillI(qi, -128)
	fillI(datai[:n], 127)
	fillI(datai[n:], -128)
	L2I8Batch(qi, datai, out)
	if out[0] != float32(uint32(maxSq)) || out[1] != 0 {
		t.Errorf("L2I8Batch = %v", out)
	}
	DotI8Batch(qi, datai, out)
	if out[0] != float32(-128*127*n) || out[1] != float32(128*128*n) {
		t.Errorf("DotI8Batch = %v", out)
	}
}

// batchDims are the dimensions of the batched tests: every tail shape and
// the usual embedding sizes.
var batchDims = []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 100, 127, 128, 200, 256, 384, 768, 960}

// checkBatchSentinel verifies that the batch kernel did not write past
// len(out).
func checkBatchSentinel(t *testing.T, name string, buf []float32, rows int) {
	t.Helper()
	for i := rows; i < len(buf); i++ {
		if buf[i] != -7 {
			t.Fatalf("%s wrote out[%d] beyond len(out)=%d", name, i, rows)
		}
	}
}

func TestBatchMatchesSingle(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, d := range batchDims {
		for _, rows := range []int{0, 1, 2, 5, 17} {
			off := (d + rows) % 4
			// data has one spare row beyond what the batch may read.
			fq, fdata := unaligned[float32](d, off), unaligned[float32]((rows+1)*d, 3-off)
			randF32(rng, fq)
			randF32(rng, fdata)
			buf := make([]float32, rows+3)
			for _, k := range []struct {
				name   string
				batch  func(q, data, out []float32)
				ref    func(q, data, out []float32)
				single func(a, b []float32) float32
				mag    func(a, b []float32) float64
			}{
				{"L2F32Batch", L2F32Batch, L2F32BatchGo, L2F32, l2Magnitude},
				{"DotF32Batch", DotF32Batch, DotF32BatchGo, DotF32, dotMagnitude},
			} {
				for i := range buf {
					buf[i] = -7
				}
				out := buf[:rows]
				k.batch(fq, fdata, out)
				checkBatchSentinel(t, k.name, buf, rows)
				want := make([]float32, rows)
				k.ref(fq, fdata, want)
				for i := range out {
					row := fdata[i*d : (i+1)*d]
					if s := k.single(fq, row); out[i] != s {
						t.Fatalf("%s d=%d row %d: batch %v != single %v", k.name, d, i, out[i], s)
					}
					if !closeF32(out[i], want[i], d, k.mag(fq, row)) {
						t.Fatalf("%s d=%d row %d: got %v, want %v", k.name, d, i, out[i], want[i])
					}
				}
			}

			extremes := rows%2 == 1
			uq, udata := unaligned[uint8](d, off), unaligned[uint8]((rows+1)*d, 3-off)
			randU8(rng, uq, extremes)
			randU8(rng, udata, extremes)
			for _, k := range []struct {
				name   string
				batch  func(q, data []uint8, out []float32)
				ref    func(q, data []uint8, out []float32)
				single func(a, b []uint8) uint32
			}{
				{"L2U8Batch", L2U8Batch, L2U8BatchGo, L2U8},
				{"DotU8Batch", DotU8Batch, DotU8BatchGo, DotU8},
			} {
				for i := range buf {
					buf[i] = -7
				}
				out := buf[:rows]
				k.batch(uq, udata, out)
				checkBatchSentinel(t, k.name, buf, rows)
				want := make([]float32, rows)
				k.ref(uq, udata, want)
				for i := range out {
					if s := float32(k.single(uq, udata[i*d:(i+1)*d])); out[i] != s || out[i] != want[i] {
						t.Fatalf("%s d=%d row %d: batch %v, single %v, reference %v", k.name, d, i, out[i], s, want[i])
					}
				}
			}

			iq, idata := unaligned[int8](d, off), unaligned[int8]((rows+1)*d, 3-off)
			randI8(rng, iq, extremes)
			randI8(rng, idata, extremes)
			for _, k := range []struct {
				name   string
				batch  func(q, data []int8, out []float32)
				ref    func(q, data []int8, out []float32)
				single func(a, b []int8) float32
			}{
				{"L2I8Batch", L2I8Batch, L2I8BatchGo, func(a, b []int8) float32 { return float32(L2I8(a, b)) }},
				{"DotI8Batch", DotI8Batch, DotI8BatchGo, func(a, b []int8) float32 { return float32(DotI8(a, b)) }},
			} {
				for i := range buf {
					buf[i] = -7
				}
				out := buf[:rows]
				k.batch(iq, idata, out)
				checkBatchSentinel(t, k.name, buf, rows)
				want := make([]float32, rows)
				k.ref(iq, idata, want)
				for i := range out {
					if s := k.single(iq, idata[i*d:(i+1)*d]); out[i] != s || out[i] != want[i] {
						t.Fatalf("%s d=%d row %d: batch %v, single %v, reference %v", k.name, d, i, out[i], s, want[i])
					}
				}
			}
		}
	}
}

// mustPanic fails the test unless f panics.
func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", name)
		}
	}()
	f()
}

// TestShortInputsPanic checks that a b or data slice too short for its
// capacity panics (as the reference's slice expressions do) rather than
// reading out of bounds.
func TestShortInputsPanic(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		f := make([]float32, 64)
		u := make([]uint8, 64)
		i := make([]int8, 64)
		out := make([]float32, 3)
		mustPanic(t, "L2F32", func() { L2F32(f[:40], f[:39:39]) })
		mustPanic(t, "DotF32", func() { DotF32(f[:40], f[:39:39]) })
		mustPanic(t, "L2U8", func() { L2U8(u[:40], u[:39:39]) })
		mustPanic(t, "DotU8", func() { DotU8(u[:40], u[:39:39]) })
		mustPanic(t, "L2I8", func() { L2I8(i[:40], i[:39:39]) })
		mustPanic(t, "DotI8", func() { DotI8(i[:40], i[:39:39]) })
		mustPanic(t, "L2F32Batch", func() { L2F32Batch(f[:20], f[:59:59], out) })
		mustPanic(t, "DotF32Batch", func() { DotF32Batch(f[:20], f[:59:59], out) })
		mustPanic(t, "L2U8Batch", func() { L2U8Batch(u[:20], u[:59:59], out) })
		mustPanic(t, "DotU8Batch", func() { DotU8Batch(u[:20], u[:59:59], out) })
		mustPanic(t, "L2I8Batch", func() { L2I8Batch(i[:20], i[:59:59], out) })
		mustPanic(t, "DotI8Batch", func() { DotI8Batch(i[:20], i[:59:59], out) })

		// A longer b is fine: only len(a) elements are used.
		if got := L2U8(u[:3], u); got != 0 {
			t.Errorf("L2U8 with longer b = %d", got)
		}
		// A shorter b whose capacity covers len(a) is resliced, as in the
		// reference.
		for j := range f {
			f[j], u[j], i[j] = float32(j), uint8(j*5), int8(j*3)
		}
		g := []float32{2: 1, 39: 1}
		v := []uint8{2: 1, 39: 1}
		w := []int8{2: 1, 39: -1}
		if got, want := L2F32(g, f[:39]), L2F32Go(g, f[:40]); got != want {
			t.Errorf("L2F32 short b = %v, want %v", got, want)
		}
		if got, want := DotF32(g, f[:39]), float32(2+39); got != want {
			t.Errorf("DotF32 short b = %v, want %v", got, want)
		}
		if got, want := L2U8(v, u[:39]), L2U8Go(v, u[:40]); got != want {
			t.Errorf("L2U8 short b = %v, want %v", got, want)
		}
		if got, want := DotU8(v, u[:39]), uint32(10+195); got != want {
			t.Errorf("DotU8 short b = %v, want %v", got, want)
		}
		if got, want := L2I8(w, i[:39]), L2I8Go(w, i[:40]); got != want {
			t.Errorf("L2I8 short b = %v, want %v", got, want)
		}
		if got, want := DotI8(w, i[:39]), int32(6-117); got != want {
			t.Errorf("DotI8 short b = %v, want %v", got, want)
		}
		// Exactly rows·dim data elements is enough.
		L2F32Batch(f[:20], f[:60], out)
	})
}

// spaceCase checks NewSpace[T](m) against the reference distance want.
func spaceCase[T Elem](t *testing.T, m Metric, a, b []T, want func(a, b []T) float32) {
	t.Helper()
	s, err := NewSpace[T](m)
	if err != nil {
		t.Fatalf("NewSpace[%T](%s): %v", a, m, err)
	}
	if s.Metric != m {
		t.Errorf("Metric = %s, want %s", s.Metric, m)
	}
	w := want(a, b)
	got := s.Dist(a, b)
	if math.Abs(float64(got-w)) > 1e-4*max(1, math.Abs(float64(w))) {
		t.Errorf("%T %s Dist = %v, want %v", a, m, got, w)
	}
	// Batch over rows a, b, a.
	d := len(a)
	data := slices.Concat(a, b, a)
	out := make([]float32, 3)
	s.Batch(a, data, out)
	for i, row := range [][]T{a, b, a} {
		ri := want(a, row)
		if math.Abs(float64(out[i]-ri)) > 1e-4*max(1, math.Abs(float64(ri))) {
			t.Errorf("%T %s Batch[%d] = %v, want %v", a, m, i, out[i], ri)
		}
		if s.Dist(a, data[i*d:(i+1)*d]) != out[i] {
			t.Errorf("%T %s Batch[%d] = %v differs from Dist", a, m, i, out[i])
		}
	}
	if allocs := testing.AllocsPerRun(10, func() { s.Batch(a, data, out); _ = s.Dist(a, b) }); allocs != 0 {
		t.Errorf("%T %s: %v allocations per call", a, m, allocs)
	}
}

func TestNewSpace(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		fa, fb := make([]float32, 100), make([]float32, 100)
		randF32(rng, fa)
		randF32(rng, fb)
		spaceCase(t, L2, fa, fb, L2F32Go)
		spaceCase(t, IP, fa, fb, func(a, b []float32) float32 { return -DotF32Go(a, b) })
		Normalize(fa)
		Normalize(fb)
		spaceCase(t, Cosine, fa, fb, func(a, b []float32) float32 { return -DotF32Go(a, b) })

		ua, ub := make([]uint8, 100), make([]uint8, 100)
		randU8(rng, ua, false)
		randU8(rng, ub, false)
		spaceCase(t, L2, ua, ub, func(a, b []uint8) float32 { return float32(L2U8Go(a, b)) })
		spaceCase(t, IP, ua, ub, func(a, b []uint8) float32 { return -float32(DotU8Go(a, b)) })

		ia, ib := make([]int8, 100), make([]int8, 100)
		randI8(rng, ia, false)
		randI8(rng, ib, false)
		spaceCase(t, L2, ia, ib, func(a, b []int8) float32 { return float32(L2I8Go(a, b)) })
		spaceCase(t, IP, ia, ib, func(a, b []int8) float32 { return -float32(DotI8Go(a, b)) })
	})
}

func TestNewSpaceErrors(t *testing.T) {
	if _, err := NewSpace[uint8](Cosine); err == nil || !strings.Contains(err.Error(), "cosine") {
		t.Errorf("NewSpace[uint8](Cosine) error = %v, want a cosine error", err)
	}
	if _, err := NewSpace[int8](Cosine); err == nil {
		t.Error("NewSpace[int8](Cosine) succeeded")
	}
	for _, m := range []Metric{0, 4, 255} {
		if _, err := NewSpace[float32](m); err == nil {
			t.Errorf("NewSpace[float32](%d) succeeded", m)
		}
		if _, err := NewSpace[uint8](m); err == nil {
			t.Errorf("NewSpace[uint8](%d) succeeded", m)
		}
	}
}

func TestParseMetric(t *testing.T) {
	for _, m := range []Metric{L2, IP, Cosine} {
		got, err := ParseMetric(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMetric("hamming"); err == nil {
		t.Error("ParseMetric(hamming) succeeded")
	}
	if s := Metric(9).String(); s != "metric(9)" {
		t.Errorf("Metric(9).String() = %q", s)
	}
}

func TestNormalize(t *testing.T) {
	withImpl(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, n := range []int{1, 7, 128, 1000} {
			v := make([]float32, n)
			randF32(rng, v)
			v[0] = 3 // never all zero
			orig := slices.Clone(v)
			if !Normalize(v) {
				t.Fatalf("n=%d: Normalize reported a zero vector", n)
			}
			var norm float64
			for _, x := range v {
				norm += float64(x) * float64(x)
			}
			if math.Abs(norm-1) > 1e-5 {
				t.Errorf("n=%d: squared norm after Normalize = %v", n, norm)
			}
			// Same direction: every element scaled by the same factor.
			scale := float64(v[0]) / float64(orig[0])
			for i := range v {
				if math.Abs(float64(v[i])-scale*float64(orig[i])) > 1e-6 {
					t.Fatalf("n=%d: element %d not scaled uniformly", n, i)
				}
			}
		}
		zero := make([]float32, 10)
		if Normalize(zero) {
			t.Error("Normalize(zero) reported non-zero")
		}
		for _, x := range zero {
			if x != 0 {
				t.Fatal("Normalize changed a zero vector")
			}
		}
		if Normalize(nil) {
			t.Error("Normalize(nil) reported non-zero")
		}
	})
}

func TestImplementationName(t *testing.T) {
	switch Implementation() {
	case "go", "avx2":
	default:
		t.Fatalf("Implementation() = %q", Implementation())
	}
	useGoKernels()
	if Implementation() != "go" {
		t.Errorf("after useGoKernels, Implementation() = %q", Implementation())
	}
	useBestKernels()
	if _, ok := asmKernels(); ok != (Implementation() != "go") {
		t.Errorf("Implementation() = %q but asm available = %v", Implementation(), ok)
	}
}
