package vec

import (
	"encoding/binary"
	"testing"
)

// The fuzz targets turn arbitrary bytes into a pair of vectors (data[0]
// picks the misalignment of the first vector inside its backing array) and
// compare the dispatched kernels, single and batched, with the references.

func fuzzSeeds(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 1, 2, 3})
	f.Add(make([]byte, 80))
	ff := make([]byte, 301)
	for i := range ff {
		ff[i] = 0xff
	}
	f.Add(ff)
	mixed := make([]byte, 259)
	for i := range mixed {
		mixed[i] = []byte{0x80, 0x7f, 0x00, 0xff}[i%4]
	}
	f.Add(mixed)
}

// splitPair splits data into an offset byte and two equal halves.
func splitPair(data []byte) (off int, a, b []byte) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	off, data = int(data[0]%8), data[1:]
	n := len(data) / 2
	return off, data[:n], data[n : 2*n]
}

func FuzzL2F32(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		off, ra, rb := splitPair(data)
		// Two bytes per element, as an int16 scaled to ±128: finite values
		// whose sums cannot overflow.
		n := len(ra) / 2
		a, b := unaligned[float32](n, off), unaligned[float32](n, 0)
		for i := range n {
			a[i] = float32(int16(binary.LittleEndian.Uint16(ra[2*i:]))) / 256
			b[i] = float32(int16(binary.LittleEndian.Uint16(rb[2*i:]))) / 256
		}
		if got, want := L2F32(a, b), L2F32Go(a, b); !closeF32(got, want, n, l2Magnitude(a, b)) {
			t.Fatalf("L2F32 n=%d: got %v, want %v", n, got, want)
		}
		if got, want := DotF32(a, b), DotF32Go(a, b); !closeF32(got, want, n, dotMagnitude(a, b)) {
			t.Fatalf("DotF32 n=%d: got %v, want %v", n, got, want)
		}
		// b as two rows of dimension n/2 against the first half of a.
		d := n / 2
		out := make([]float32, 2)
		L2F32Batch(a[:d], b, out)
		for i := range out {
			row := b[i*d : (i+1)*d]
			if want := L2F32(a[:d], row); out[i] != want {
				t.Fatalf("L2F32Batch row %d: got %v, single %v", i, out[i], want)
			}
		}
		DotF32Batch(a[:d], b, out)
		for i := range out {
			row := b[i*d : (i+1)*d]
			if want := DotF32(a[:d], row); out[i] != want {
				t.Fatalf("DotF32Batch row %d: got %v, single %v", i, out[i], want)
			}
		}
	})
}

func FuzzU8(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		off, ra, rb := splitPair(data)
		n := len(ra)
		a, b := unaligned[uint8](n, off), unaligned[uint8](n, 0)
		copy(a, ra)
		copy(b, rb)
		if got, want := L2U8(a, b), L2U8Go(a, b); got != want {
			t.Fatalf("L2U8 n=%d: got %d, want %d", n, got, want)
		}
		if got, want := DotU8(a, b), DotU8Go(a, b); got != want {
			t.Fatalf("DotU8 n=%d: got %d, want %d", n, got, want)
		}
		d := n / 2
		out, want := make([]float32, 2), make([]float32, 2)
		L2U8Batch(a[:d], b, out)
		L2U8BatchGo(a[:d], b, want)
		if out[0] != want[0] || out[1] != want[1] {
			t.Fatalf("L2U8Batch d=%d: got %v, want %v", d, out, want)
		}
		DotU8Batch(a[:d], b, out)
		DotU8BatchGo(a[:d], b, want)
		if out[0] != want[0] || out[1] != want[1] {
			t.Fatalf("DotU8Batch d=%d: got %v, want %v", d, out, want)
		}
	})
}

func FuzzI8(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		off, ra, rb := splitPair(data)
		n := len(ra)
		a, b := unaligned[int8](n, off), unaligned[int8](n, 0)
		for i := range n {
			a[i], b[i] = int8(ra[i]), int8(rb[i])
		}
		if got, want := L2I8(a, b), L2I8Go(a, b); got != want {
			t.Fatalf("L2I8 n=%d: got %d, want %d", n, got, want)
		}
		if got, want := DotI8(a, b), DotI8Go(a, b); got != want {
			t.Fatalf("DotI8 n=%d: got %d, want %d", n, got, want)
		}
		d := n / 2
		out, want := make([]float32, 2), make([]float32, 2)
		L2I8Batch(a[:d], b, out)
		L2I8BatchGo(a[:d], b, want)
		if out[0] != want[0] || out[1] != want[1] {
			t.Fatalf("L2I8Batch d=%d: got %v, want %v", d, out, want)
		}
		DotI8Batch(a[:d], b, out)
		DotI8BatchGo(a[:d], b, want)
		if out[0] != want[0] || out[1] != want[1] {
			t.Fatalf("DotI8Batch d=%d: got %v, want %v", d, out, want)
		}
	})
}
