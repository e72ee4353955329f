package vec

import (
	"syscall"
	"testing"
	"unsafe"
)

// TestKernelsStayInBounds places vectors flush against inaccessible guard
// pages, first starting at a page's first byte and then ending at its last,
// so any read before the start or past the end faults the test binary.
func TestKernelsStayInBounds(t *testing.T) {
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 3*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err) // no anonymous mappings: nothing to test with
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	if err := syscall.Mprotect(mem[2*page:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	usable := mem[page : 2*page]
	for i := range usable {
		usable[i] = byte(i*7 + 1)
	}
	f32 := unsafe.Slice((*float32)(unsafe.Pointer(&usable[0])), page/4)
	u8 := usable
	i8 := unsafe.Slice((*int8)(unsafe.Pointer(&usable[0])), page)
	for i := range f32 {
		f32[i] = float32(i%13) - 6
	}
	out := make([]float32, 4)
	for n := 0; n <= 300; n++ {
		for _, atEnd := range []bool{false, true} {
			fs, us, is := f32[:n], u8[:n], i8[:n]
			if atEnd {
				fs, us, is = f32[len(f32)-n:], u8[len(u8)-n:], i8[len(i8)-n:]
			}
			// Small integer-valued floats: every order of summation is exact.
			if L2F32(fs, fs) != 0 || DotF32(fs, fs) != DotF32Go(fs, fs) {
				t.Fatalf("float kernels wrong at n=%d atEnd=%v", n, atEnd)
			}
			if L2U8(us, us) != 0 || DotU8(us, us) != DotU8Go(us, us) ||
				L2I8(is, is) != 0 || DotI8(is, is) != DotI8Go(is, is) {
				t.Fatalf("integer kernels wrong at n=%d atEnd=%v", n, atEnd)
			}
			// Batches of 4 rows of dimension n/4 that start or end at the
			// boundary.
			d := n / 4
			fd, ud, id := f32[:4*d], u8[:4*d], i8[:4*d]
			if atEnd {
				fd, ud, id = f32[len(f32)-4*d:], u8[len(u8)-4*d:], i8[len(i8)-4*d:]
			}
			L2F32Batch(fd[:d], fd, out)
			DotF32Batch(fd[:d], fd, out)
			L2U8Batch(ud[:d], ud, out)
			DotU8Batch(ud[:d], ud, out)
			L2I8Batch(id[:d], id, out)
			DotI8Batch(id[:d], id, out)
		}
	}
}
