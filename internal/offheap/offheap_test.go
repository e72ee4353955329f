package offheap

import (
	"testing"
	"unsafe"
)

func TestArena(t *testing.T) {
	var a Arena
	b, err := a.Bytes(10_000)
	if err != nil || len(b) != 10_000 {
		t.Fatalf("Bytes: %d bytes, %v", len(b), err)
	}
	if uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
		t.Errorf("not page-aligned")
	}
	for i := range b {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want zero", i, b[i])
		}
	}
	b[9_999] = 1
	type entry struct {
		Off   uint64
		Count uint32
	}
	es, err := Slice[entry](&a, 1000)
	if err != nil || len(es) != 1000 {
		t.Fatalf("Slice: %d, %v", len(es), err)
	}
	es[999] = entry{Off: 1 << 40, Count: 7}
	if es[999].Off != 1<<40 || es[0] != (entry{}) {
		t.Errorf("entries: %+v %+v", es[0], es[999])
	}
	if got, want := a.Mapped(), int64(12288+16384); got != want {
		t.Errorf("Mapped = %d, want %d", got, want)
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if a.Mapped() != 0 || a.Free() != nil {
		t.Errorf("after Free: %d mapped", a.Mapped())
	}
	if _, err := a.Bytes(-1); err == nil {
		t.Error("Bytes(-1) succeeded")
	}
}

// A nil Arena allocates on the heap, so callers need not care.
func TestNilArena(t *testing.T) {
	var a *Arena
	b, err := a.Bytes(5)
	if err != nil || len(b) != 5 {
		t.Fatalf("Bytes: %v %v", b, err)
	}
	s, err := Slice[uint32](a, 3)
	if err != nil || len(s) != 3 {
		t.Fatalf("Slice: %v %v", s, err)
	}
	if a.Free() != nil || a.Mapped() != 0 {
		t.Error("nil Free or Mapped")
	}
}

// Large mappings start on a huge page boundary (so that transparent huge
// pages can back them), are zeroed and writable to their last byte, and
// count and free exactly their own size, not the alignment slack.
func TestArenaHuge(t *testing.T) {
	var a Arena
	const n = hugeMin + 12345
	b, err := a.Bytes(n)
	if err != nil || len(b) != n {
		t.Fatalf("Bytes: len %d cap %d, %v", len(b), cap(b), err)
	}
	if p := uintptr(unsafe.Pointer(&b[0])); p%hugePage != 0 {
		t.Errorf("start %#x not 2 MiB-aligned", p)
	}
	for _, i := range []int{0, hugePage, n - 1} {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want zero", i, b[i])
		}
		b[i] = 7
	}
	small, err := a.Bytes(100)
	if err != nil {
		t.Fatal(err)
	}
	small[99] = 1
	page := 4096
	if got, want := a.Mapped(), int64((n+page-1)/page*page+page); got != want {
		t.Errorf("Mapped = %d, want %d", got, want)
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if a.Mapped() != 0 {
		t.Errorf("after Free: %d mapped", a.Mapped())
	}
}
